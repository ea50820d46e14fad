"""A capture decodes into a frame of its own again once nothing holds it (no allocation per
frame), and never into one the loop, a crop or a queue still holds."""

from __future__ import annotations

import time
import weakref

import numpy as np

from edgeswin.capture.camera import Capture
from edgeswin.config import CameraConfig


def test_held_frames_are_never_overwritten_and_released_ones_are_reused(tmp_path, videos):
    cfg = CameraConfig(name="north", source=str(videos["north"]), realtime=False, loop=True)
    capture = Capture(cfg, cfg.source_spec(tmp_path), lambda: None, lambda *a: None)
    capture.start()
    held: list[tuple[np.ndarray, np.ndarray]] = []
    seen: list[weakref.ref] = []  # every frame's array, without keeping it alive
    reused = 0
    taken, seq = 0, 0
    deadline = time.monotonic() + 60
    try:
        while taken < 60 and time.monotonic() < deadline:
            frame = capture.latest()
            if frame is None or frame.seq == seq:
                time.sleep(0.002)
                continue
            seq = frame.seq
            reused += any(ref() is frame.image for ref in seen)
            seen.append(weakref.ref(frame.image))
            if taken % 7 == 0:  # the loop, a snapshot or a queue keeps some for a while
                held.append((frame.image[10:50, 10:50], frame.image[10:50, 10:50].copy()))
            taken += 1
            frame = None
            capture.taken(seq)
    finally:
        capture.stop()
        capture.join(5)
    assert taken == 60
    for crop, copy in held:
        assert np.array_equal(crop, copy), "a frame still held was decoded into"
    assert reused >= 30, f"{reused} of 60 frames decoded into an earlier frame's array"
