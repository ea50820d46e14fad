"""Camera health: whether a camera that still delivers frames shows what it should. Judged on
frames the daemon already decoded, about two a second per camera, against the camera's own
normal: `covered` (a flat view), `frozen` (the same picture again and again), `blurred`
(sharpness far below normal), `moved` (the static view no longer matches the reference view),
`drift` (recent inputs or answers unlike the camera's learned baseline).

`signals` measures a frame (a small grey view: contrast, sharpness, colour, the thumbnail);
`judge` decides per camera with hold times before a problem is raised and before it clears;
`drift` keeps the baseline and the recent window; `store` keeps what a camera learned across
restarts; `board` keeps a judge per camera and hands on the retained `<root>/<camera>/health`
messages.
"""
