"""One classification: a frame (or one region of it) -> crop -> preprocess -> engine ->
postprocess -> the payloads that go out, in two steps.

`infer` (the loop's thread, which owns the engine) hands on an `Inferred`: the engine's output
and the timings so far. `finish` (the finisher's thread, or the loop's) turns it into an
`Outcome`: the classification payload, whether its publish policy lets it out, the retained
state payload when the label changed, and the timings the loop records. No MQTT and no threads
here; `publish.recorder` publishes and records.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ..engine.ladder import ActiveEngine
from ..prepare.preprocess import crop
from ..records import Frame
from ..topics import unit_of
from .schedule import CameraRuntime, RegionRuntime, served

log = logging.getLogger(__name__)

MIN_REGION_PX = 16  # a region smaller than this on a side holds too little to classify


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Inferred:
    """A frame through the engine: what `finish` turns into the payloads."""
    active: ActiveEngine
    cam: CameraRuntime
    region: RegionRuntime
    frame: Frame
    started: float  # monotonic, when the loop took the frame
    prep_ms: float
    infer_ms: float
    image: object  # what the engine saw before preprocessing (the crop, or the frame)
    output: object  # the engine's raw output (a copy), also for a rollout's shadow comparison


@dataclass
class Outcome:
    unit: str  # the camera, or camera/region, whose classification and state these are
    payload: dict
    publish: bool
    state: dict | None  # the new retained state when the label changed
    infer_ms: float
    total_ms: float


def infer(active: ActiveEngine, cam: CameraRuntime, region: RegionRuntime,
          frame: Frame) -> Inferred:
    """The loop's part: take the frame, preprocess it unless its capture thread did, run the
    engine, and set the region's next turn."""
    started = time.monotonic()  # frame times are monotonic; stages use perf_counter
    t0 = time.perf_counter()
    if all(r.last_seq == frame.seq for r in cam.regions if r is not region):
        # The frame's last region: a consumer-paced file decodes the next one meanwhile.
        cam.capture.taken(frame.seq)
    cam.taken(frame)
    image = frame.image
    if region.config is None and frame.prepared is not None \
            and frame.prepared[0] is active.preprocess:
        x, prep_ms = frame.prepared[1], frame.prepared[2]
    else:
        if region.config is not None:
            spec = active.engine.info.input
            image = crop(image, region.config.box, region.config.aspect, (spec.width, spec.height))
            _warn_if_small(cam, region, image, frame)
        x = active.preprocess(image)
        prep_ms = (time.perf_counter() - t0) * 1000
    t1 = time.perf_counter()
    output = active.engine.infer(x)
    infer_ms = (time.perf_counter() - t1) * 1000
    region.last_seq = frame.seq
    served(region, time.monotonic())
    return Inferred(active, cam, region, frame, started, prep_ms, infer_ms, image, output)


def finish(done: Inferred) -> Outcome:
    """The rest, on the finisher's thread or the loop's: postprocess, the publish policy, the
    payload and the retained state when the label changed."""
    active, cam, region, frame = done.active, done.cam, done.region, done.frame
    t2 = time.perf_counter()
    label, score, topk = region.post.apply(done.output, active.engine.info.output_kind)
    post_ms = (time.perf_counter() - t2) * 1000
    now = time.monotonic()
    publish = region.gate.should_publish(label, now)
    if publish:
        region.seq += 1
    payload = {"camera": cam.name}
    if region.name is not None:  # a camera without regions sends exactly what it always did
        payload["region"] = region.name
    payload.update({
        "seq": region.seq, "ts": iso(time.time()),
        "frame_ts": iso(frame.wall_ts), "frame_index": frame.index,
        "label": label, "score": round(score, 4),
        "topk": [{"label": lbl, "score": s} for lbl, s in topk],
        "engine": active.name, "model": active.engine.info.name, "rung": active.rung,
        "degraded": active.rung > 0,
        "latency_ms": {"decode": round(frame.decode_ms, 3),
                       "wait": round(max(done.started - frame.mono_ts, 0.0) * 1000, 3),
                       "preprocess": round(done.prep_ms, 3),
                       "inference": round(done.infer_ms, 3),
                       "postprocess": round(post_ms, 3),
                       "capture_to_publish": round((time.monotonic() - frame.mono_ts) * 1000,
                                                   3)},
    })
    state = None
    if label != region.state_label:
        region.state_label = label
        state = {"label": label, "score": round(score, 4), "since": iso(frame.wall_ts)}
    return Outcome(unit_of(cam.name, region.name), payload, publish, state, done.infer_ms,
                   payload["latency_ms"]["capture_to_publish"])


def _warn_if_small(cam: CameraRuntime, region: RegionRuntime, part, frame: Frame) -> None:
    """A box that is fine as fractions can be a few pixels of this camera's actual frame."""
    if region.warned_small or min(part.shape[:2]) >= MIN_REGION_PX:
        return
    region.warned_small = True
    h, w = frame.image.shape[:2]
    log.warning("camera %s region %s is only %dx%d pixels of the %dx%d frame: too little to "
                "classify well; make its box larger", cam.name, region.name, part.shape[1],
                part.shape[0], w, h, extra={"CAMERA": cam.name})
