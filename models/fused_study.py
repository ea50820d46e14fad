"""What `--fused-preprocess` saves: the daemon's per-frame preprocessing and the engine time,
plain (float32 NCHW, normalised on the CPU) vs fused (uint8 NHWC BGR, normalised in the graph),
for the primary demo model, on 1280x720 rendered frames, in one process.

    python models/fused_study.py build/fstudy   # prints a Markdown table for models/README.md
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models"))

from resolution_study import checkpoint  # noqa: E402

from edgeswin.engine import open_engine  # noqa: E402
from edgeswin.prepare.preprocess import Preprocessor  # noqa: E402
from edgeswin.scenes import random_scene  # noqa: E402
from edgeswin.toolchain.export import ExportOptions, export  # noqa: E402

MODEL = "swin-demo-112"


def p50_p95(samples: list[float]) -> str:
    samples = sorted(samples)
    return f"{statistics.median(samples):.2f} / {samples[int(0.95 * (len(samples) - 1))]:.2f}"


def main() -> int:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "build/fstudy")
    work.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint(MODEL, work)
    fused_path = work / f"{MODEL}-fused.onnx"
    export(str(REPO / "models" / f"{MODEL}.json"), fused_path,
           ExportOptions(checkpoint=ckpt, fused_preprocess=True), progress=lambda m: None)
    engines = {"plain": open_engine(REPO / "models" / f"{MODEL}.onnx", "onnxruntime"),
               "fused": open_engine(fused_path, "onnxruntime")}
    preps = {k: Preprocessor(e.info.input) for k, e in engines.items()}
    rng = np.random.default_rng(4)
    frames = [random_scene(rng, 1280, 720)[0] for _ in range(60)]
    times = {k: ([], []) for k in engines}
    agree = 0
    for rnd in range(3):  # alternate, so both see the same machine load
        for k, engine in engines.items():
            for frame in frames:
                t0 = time.perf_counter()
                x = preps[k](frame)
                t1 = time.perf_counter()
                engine.infer(x)
                t2 = time.perf_counter()
                if rnd:
                    times[k][0].append((t1 - t0) * 1000)
                    times[k][1].append((t2 - t1) * 1000)
    for frame in frames:
        a = engines["plain"].infer(preps["plain"](frame)).argmax()
        agree += int(a == engines["fused"].infer(preps["fused"](frame)).argmax())
    print("| graph | input | preprocess ms p50 / p95 | engine ms p50 / p95 |\n|---|---|---|---|")
    for k, engine in engines.items():
        spec = engine.info.input
        print(f"| {k} | {spec.dtype} {spec.layout} {spec.color} | {p50_p95(times[k][0])} | "
              f"{p50_p95(times[k][1])} |")
    print(f"\ntop-1 agreement fused vs plain: {agree}/{len(frames)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
