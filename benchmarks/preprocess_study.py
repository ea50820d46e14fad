"""The CPU resize against exact INTER_AREA: how far the daemon's shortcut strays, whether the
demo model notices, and what it costs per frame.

Four ways from a camera frame to the 112x112 input, on rendered scenes of known label at
1920x1080 and 640x360: exact INTER_AREA from the full frame; the first shortcut (shrink
bilinearly to at most 4x the target, then INTER_AREA at whatever factor is left); the second
(shrink bilinearly to a whole multiple, at most 4x, of the target, so INTER_AREA takes its
box-average path); and `preprocess.py` today (`shrink_area`: bilinear to 1, 2 or 4 times the
target per axis, then 2:1 INTER_AREA halvings; normalise with one cv2.transform). Timed on one
OpenCV thread, as the daemon runs (`opencv_threads`).

    .venv/bin/python -m benchmarks.preprocess_study [--scenes 150] [-o results/preprocess-study.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from edgeswin.engine import open_engine
from edgeswin.prepare.preprocess import Preprocessor, shrink_area
from edgeswin.scenes import random_scene

REPO = Path(__file__).resolve().parent.parent


def exact(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def earlier(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    pre = (min(w, 4 * size[0]), min(h, 4 * size[1]))
    if pre != (w, h):
        image = cv2.resize(image, pre, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def whole_multiple(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    pre = (min(w // size[0], 4) * size[0], min(h // size[1], 4) * size[1])
    if pre != (w, h):
        image = cv2.resize(image, pre, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def now(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return shrink_area(image, *size)


def earlier_normalise(prep: Preprocessor, small: np.ndarray) -> np.ndarray:
    x = small[:, :, ::-1].astype(np.float32) * prep._gain + prep._bias
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def fast_normalise(prep: Preprocessor, small: np.ndarray) -> np.ndarray:
    """The preprocessor's own normalisation (one cv2.transform), for timing a resize alone."""
    x = cv2.transform(small.astype(np.float32), prep._affine).reshape(small.shape)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _ms(fn, frames: list[np.ndarray]) -> float:
    fn(frames[0])
    t0 = time.perf_counter()
    for frame in frames:
        fn(frame)
    return round((time.perf_counter() - t0) / len(frames) * 1000, 3)


def study(scenes: int) -> dict:
    engine = open_engine(REPO / "models" / "swin-demo-112.onnx", "onnxruntime")
    spec = engine.info.input
    size = (spec.width, spec.height)
    prep = Preprocessor(spec)
    cv2.setNumThreads(1)
    out: dict = {"model": "swin-demo-112", "scenes": scenes, "opencv": cv2.__version__,
                 "opencv_threads": 1}
    for width, height in ((1920, 1080), (640, 360)):
        rng = np.random.default_rng(2026)
        frames, labels = [], []
        for _ in range(scenes):
            image, label = random_scene(rng, width, height)
            frames.append(image)
            labels.append(label)
        ways = {
            "exact_area": lambda f: earlier_normalise(prep, exact(f, size)),
            "earlier": lambda f: earlier_normalise(prep, earlier(f, size)),
            "whole_multiple": lambda f: fast_normalise(prep, whole_multiple(f, size)),
            "now": prep,
        }
        row: dict = {}
        reference = [exact(f, size).astype(np.float32) for f in frames]
        for name, fn in ways.items():
            right = sum(int(np.argmax(engine.infer(fn(f))) == label)
                        for f, label in zip(frames, labels))
            row[name] = {"top1": f"{right}/{scenes}"}
        # Timed in 3 alternating rounds, the fastest kept: this machine's speed drifts.
        for name, times in zip(ways, zip(*[[_ms(fn, frames) for fn in ways.values()]
                                           for _ in range(3)])):
            row[name]["ms_per_frame"] = min(times)
        for name, resize in (("earlier", earlier), ("whole_multiple", whole_multiple),
                             ("now", now)):
            diffs = [float(np.abs(resize(f, size).astype(np.float32) - ref).mean())
                     for f, ref in zip(frames, reference)]
            row[name]["mean_abs_levels_vs_exact"] = round(float(np.mean(diffs)), 3)
        # The preprocessor's own output against its resize normalised the earlier way: the
        # cv2.transform normalisation must be the same arithmetic.
        worst = max(float(np.abs(prep(f) - earlier_normalise(prep, now(f, size))).max())
                    for f in frames[:20])
        row["now"]["normalise_max_abs_diff"] = worst
        out[f"{width}x{height}"] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=150)  # per frame size
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    result = study(args.scenes)
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
