"""The finisher thread: each classification's tail (postprocessing, payload, publishing,
records) on its own thread while the next frame is inferred, against finishing everything on
the loop's thread. Alternating rounds, because this machine's speed drifts, with the engine
alone measured right before each pair, so each "vs raw" compares neighbours. Every round is
kept.

Engines: the bundled demo model through ONNX Runtime (1 thread) and synthetic engines that
hold the loop `--engine-ms` without the GIL, as a GPU engine does.

    .venv/bin/python -m benchmarks.finisher_ab [--rounds 3] [--seconds 6] \
        [-o benchmarks/results/finisher-ab.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from edgeswin.tools.bench import (
    DaemonRun,
    bench_video,
    daemon_run,
    machine,
    raw_engine,
    read_frames,
)
from edgeswin.tools.broker import PrivateBroker

REPO = Path(__file__).resolve().parent.parent

KEEP = ("fps", "engine_busy_fraction", "process_cpu_ms_per_classification", "cores_used",
        "thread_cpu_ms_per_classification")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--cameras", default="1,8")
    parser.add_argument("--engine-ms", default="demo,0,2",
                        help="'demo' (the ONNX model) and synthetic engine costs in ms")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    model = REPO / "models" / "swin-demo-112.onnx"
    video = bench_video(REPO / "build" / "bench" / "bench-640x360.mp4")
    frames = read_frames(video, 60)
    engines = {e: (None if e == "demo" else float(e)) for e in args.engine_ms.split(",")}
    runs: dict = {e: {n: {"finisher": [], "loop": []} for n in args.cameras.split(",")}
                  for e in engines}
    broker = PrivateBroker().start()
    try:
        for i in range(args.rounds):
            for e, ms in engines.items():
                for n, by in runs[e].items():
                    print(f"round {i + 1}/{args.rounds}: engine {e}, {n} camera(s)", flush=True)
                    raw = raw_engine(model, frames, 1, args.seconds / 2, ms)["fps"]
                    for name in (("finisher", "loop") if i % 2 == 0 else ("loop", "finisher")):
                        r = daemon_run(DaemonRun(model, video, broker.port, int(n), 1, args.seconds,
                                                 warmup_s=1.0, engine_ms=ms,
                                                 finisher=name == "finisher"))
                        by[name].append({**{k: r[k] for k in KEEP}, "raw_fps": raw,
                                         "vs_raw": round(r["fps"] / raw, 3)})
    finally:
        broker.close()
    summary = {e: {n: {name: {
        "fps_median": statistics.median(r["fps"] for r in rs),
        "vs_raw_median": statistics.median(r["vs_raw"] for r in rs),
        "busy_median": statistics.median(r["engine_busy_fraction"] for r in rs),
        "cpu_ms_median": statistics.median(r["process_cpu_ms_per_classification"] for r in rs)}
        for name, rs in by.items()} for n, by in cams.items()} for e, cams in runs.items()}
    out = {"machine": machine(), "seconds_per_run": args.seconds, "rounds": args.rounds,
           "summary": summary, "runs": runs}
    text = json.dumps(out, indent=1)
    print(json.dumps(summary, indent=1))
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
