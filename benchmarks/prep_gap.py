"""Preprocessing one camera frame on one thread, back to back and with the gaps a realtime
camera leaves between frames: what the frame interval alone adds to the daemon's
`preprocess` figure. A fresh copy of the frame each time (as a decoder hands one over), one
OpenCV thread (as the daemon runs), the demo model's input. Between frames the thread sleeps
the gap, as a capture thread waits for its camera's next frame; its caches and the core's
clock cool meanwhile.

    python -m benchmarks.prep_gap [--frames 300] [-o benchmarks/results/prep-gap.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import emit
from edgeswin.engine import read_model_info
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.scenes import random_scene
from edgeswin.tools.measure import machine

REPO = Path(__file__).resolve().parent.parent
GAPS_MS = (0.0, 5.0, 33.3, 66.7)  # back to back; 200, 30 and 15 frames a second


def median_ms(prep: Preprocessor, frames: list[np.ndarray], gap_s: float, n: int) -> float:
    times = []
    for i in range(n):
        frame = frames[i % len(frames)].copy()
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        prep(frame)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)  # per gap and size
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    prep = Preprocessor(read_model_info(REPO / "models" / "swin-demo-112.onnx").input)
    rng = np.random.default_rng(7)
    sizes = {"640x360": (640, 360), "1920x1080": (1920, 1080)}
    frames = {name: [random_scene(rng, w, h)[0] for _ in range(10)] for name, (w, h) in
              sizes.items()}
    runs: dict[str, dict[str, list[float]]] = {n: {f"{g:g}": [] for g in GAPS_MS} for n in sizes}
    for _ in range(args.rounds):  # alternating, so drift in the machine's speed falls on all
        for name in sizes:
            for gap in GAPS_MS:
                # fewer frames with long gaps: the same information, less waiting
                n = args.frames if gap < 10 else max(args.frames // 4, 30)
                runs[name][f"{gap:g}"].append(median_ms(prep, frames[name], gap / 1000, n))
                print(name, f"gap {gap:g} ms", runs[name][f"{gap:g}"][-1], flush=True)
    report = {"machine": machine(), "input": f"{prep.spec.width}x{prep.spec.height}",
              "opencv_threads": 1, "median_ms": {n: {g: min(v) for g, v in r.items()}
                                                 for n, r in runs.items()},
              "runs": runs}
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
