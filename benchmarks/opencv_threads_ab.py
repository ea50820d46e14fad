"""OpenCV's thread pool in the daemon: one thread (`opencv_threads: 1`, the default) against
OpenCV's own default (one per core, `opencv_threads: null`), with the free synthetic engine,
so that decoding, preprocessing and the daemon's own work are all there is. Alternating
rounds, because this machine's speed drifts; every round is kept.

    .venv/bin/python -m benchmarks.opencv_threads_ab [--rounds 3] [--seconds 8] \
        [-o benchmarks/results/opencv-threads-ab.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from edgeswin.tools.bench import (
    OPENCV_DEFAULT_THREADS,
    DaemonRun,
    bench_video,
    daemon_run,
    machine,
)
from edgeswin.tools.broker import PrivateBroker

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--cameras", default="1,8")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    model = REPO / "models" / "swin-demo-112.onnx"
    video = bench_video(REPO / "build" / "bench" / "bench-640x360.mp4")
    settings = {"1": 1, "null": None}
    runs: dict = {n: {k: [] for k in settings} for n in args.cameras.split(",")}
    broker = PrivateBroker().start()
    try:
        for i in range(args.rounds):
            for n in runs:
                for name, threads in settings.items():
                    print(f"round {i + 1}/{args.rounds}: {n} camera(s), opencv_threads: {name}",
                          flush=True)
                    r = daemon_run(DaemonRun(model, video, broker.port, int(n), 1, args.seconds,
                                             warmup_s=1.0, engine_ms=0.0, opencv_threads=threads))
                    runs[n][name].append({k: r[k] for k in (
                        "fps", "process_cpu_ms_per_classification", "cores_used",
                        "thread_cpu_ms_per_classification")})
    finally:
        broker.close()
    summary = {n: {name: {
        "fps_median": statistics.median(r["fps"] for r in rs),
        "cpu_ms_median": statistics.median(r["process_cpu_ms_per_classification"] for r in rs),
        "native_cpu_ms": [r["thread_cpu_ms_per_classification"].get("native", 0) for r in rs]}
        for name, rs in by.items()} for n, by in runs.items()}
    out = {"machine": machine(), "opencv_default_threads": OPENCV_DEFAULT_THREADS,
           "seconds_per_run": args.seconds, "rounds": args.rounds, "summary": summary,
           "runs": runs}
    text = json.dumps(out, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
