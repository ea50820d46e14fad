"""The bundled demo models on this machine: inference at batch 1 through ONNX Runtime and the
daemon's own preprocessing of a 1280x720 frame to each model's input, medians of many runs,
alternating the models so drift falls on both. Writes benchmarks/results/models-cpu.json,
the source of the table in models/README.md.

    .venv/bin/python -m benchmarks.model_table [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgeswin.engine import open_engine
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.scenes import random_scene

REPO = Path(__file__).resolve().parent.parent

MODELS = ["swin-demo-112", "swin-demo-64"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("-o", "--output", type=Path,
                        default=REPO / "benchmarks" / "results" / "models-cpu.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as the daemon runs (opencv_threads: 1)
    frame = random_scene(np.random.default_rng(0), 1280, 720)[0]
    engines = {m: open_engine(REPO / "models" / f"{m}.onnx") for m in MODELS}
    preps = {m: Preprocessor(e.info.input) for m, e in engines.items()}
    times: dict[str, dict[str, list[float]]] = {m: {"infer": [], "prep": []} for m in MODELS}
    for i in range(args.runs):
        for m in (MODELS if i % 2 == 0 else MODELS[::-1]):
            t0 = time.perf_counter()
            x = preps[m](frame)
            t1 = time.perf_counter()
            engines[m].infer(x)
            t2 = time.perf_counter()
            times[m]["prep"].append((t1 - t0) * 1000)
            times[m]["infer"].append((t2 - t1) * 1000)
    report = {
        "what": "median ms over alternating runs: ONNX Runtime inference at batch 1 (FP32, "
                "default threads) and the daemon's Preprocessor from a 1280x720 BGR frame "
                "(OpenCV on one thread)",
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "runs": args.runs,
        "models": {m: {"inference_ms_p50": round(statistics.median(t["infer"]), 3),
                       "preprocess_1280x720_ms_p50": round(statistics.median(t["prep"]), 3),
                       "input": list(engines[m].info.input.shape)}
                   for m, t in times.items()},
    }
    import onnxruntime
    report["machine"]["onnxruntime"] = onnxruntime.__version__
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
