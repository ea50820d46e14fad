"""`edgeswin probe`: thermal zones, camera devices and back-ends; `--selftest` runs a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_config

HELP = "list thermal zones, camera devices and back-ends"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, "show which thermal zones it selects", default=None)
    parser.add_argument("--selftest", action="store_true",
                        help="also run the demo model through ONNX Runtime and (if present) a "
                             "TensorRT engine built here; compare, time, print a verdict")
    parser.add_argument("--model", type=Path,
                        help="the ONNX for --selftest (default: bundled)")


def run(args: argparse.Namespace) -> int:
    from ..demo.assets import default_demo_model, demo_model_places
    from ..errors import EdgeswinError
    from ..tools.probe import probe, selftest
    if not args.selftest:
        print("\n".join(probe(args.config)))
        return 0
    model = args.model or default_demo_model()
    if model is None:
        raise EdgeswinError("no bundled demo model in " + ", ".join(map(str, demo_model_places()))
                            + ": pass --model PATH.onnx")
    lines, ok = selftest(model)
    print("\n".join(lines))
    return 0 if ok else 1
