"""`edgeswin bench`: the daemon measured against the raw engine (`tools.bench`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = ("measure the daemon against the raw engine (throughput, latency breakdown, "
        "preprocessing, MQTT rate)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--model", type=Path, help="ONNX model (default: the bundled demo)")
    add("--video", type=Path, help="video to read (default: a generated one)")
    add("--cameras", default="1,2,4,8", help="comma-separated camera counts to run, each 1-64")
    add("--seconds", type=float, default=10.0, help="measured time per run")
    add("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
        help="engine threads; the other cores decode (default: cores - 1)")
    add("--broker-port", type=int, help="a broker on 127.0.0.1 (default: start a private "
                                        "mosquitto)")
    add("--rounds", type=int, default=3, help="alternating rounds of the single-stream runs "
                                              "(the median is kept)")
    add("--engine-ms", help="comma-separated engine costs in ms (e.g. 0,1,2,5,10,20): instead "
        "of the model, a synthetic engine that holds the inference thread that long without "
        "the GIL, as a GPU engine does; charts the daemon and the serial loop against engine "
        "cost")
    add("-o", "--output", type=Path, help="also write the JSON report here")


def _counts(text: str, option: str, what: str, low: float, high: float, kind=int) -> list:
    """A comma-separated list of numbers from `low` to `high`, or a clear error."""
    from ..errors import EdgeswinError
    try:
        values = [kind(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(low <= v <= high for v in values):
        raise EdgeswinError(f"{option}: comma-separated {what} from {low:g} to {high:g}, "
                            f"not {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    import json

    from ..demo.assets import default_demo_model
    from ..errors import EdgeswinError
    from ..tools.bench import bench_video, run_bench, run_engine_sweep

    model = args.model or default_demo_model()
    if model is None:
        raise EdgeswinError("no bundled demo model found: pass --model PATH.onnx")
    cameras = _counts(args.cameras, "--cameras", "camera counts", 1, 64)  # before any video
    costs = _counts(args.engine_ms, "--engine-ms", "numbers of ms", 0, 1000, float) \
        if args.engine_ms else None
    progress = lambda message: print(message, flush=True)  # noqa: E731
    video = (args.video or bench_video(Path("build/bench/bench-640x360.mp4"), progress)).resolve()
    model = model.resolve()
    if costs is not None:
        report = run_engine_sweep(model, video, costs, cameras, args.seconds, args.broker_port,
                                  progress=progress)
    else:
        report = run_bench(model, video, cameras, args.seconds, args.threads,
                           args.broker_port, progress=progress, repeats=args.rounds)
    text = json.dumps(report, indent=1)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    return 0
