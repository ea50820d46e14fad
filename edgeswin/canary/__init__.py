"""The end-to-end canary: known images through the serving engine, as a camera frame goes
(preprocess, engine, top-1), every `canary.interval_s` in spare time between frames.

`images` finds and reads an engine's canary images (`canary.images`, else the check images its
model's sidecar names); `run` steps through them one inference at a time and hands on a
`Result` per engine checked: what was wrong, how long it took. The serving side publishes the
serving engine's result on the retained `<root>/canary` and steps away from an engine that
answers wrong (`Serving.canary_result`).
"""
