"""Camera health: whether a camera that still delivers frames shows what it should. Judged on
frames the daemon already decoded, about two a second per camera, against the camera's own
normal learned after a start: `covered` (a flat view), `frozen` (the same picture again and
again), `blurred` (sharpness far below normal), `moved` (the static view no longer matches the
reference view).

`signals` measures a frame (a small grey view: contrast, sharpness, the thumbnail); `judge`
decides per camera with hold times before a problem is raised and before it clears; `board`
keeps a judge per camera and hands on the retained `<root>/<camera>/health` messages.
"""
