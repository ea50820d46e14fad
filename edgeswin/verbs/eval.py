"""`edgeswin eval`: top-1/top-5 on a labelled folder, agreement with a reference, latency."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("top-1/top-5 on a labelled image folder, agreement with a reference model, batch-1 "
        "latency")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help=".onnx or .engine, with its sidecar")
    parser.add_argument("--data", type=Path, required=True, help="labelled images: "
                        "folder/<label>/*.{png,jpg,jpeg,bmp,webp}")
    parser.add_argument("--reference", type=Path, help="e.g. the FP32 ONNX")
    parser.add_argument("--limit", type=int, help="use at most this many images")


def run(args: argparse.Namespace) -> int:
    import json

    from ..toolchain.evaluate import evaluate
    result = evaluate(args.model, args.data, args.reference, args.limit)
    print(json.dumps(result.as_dict(), indent=1))
    return 0
