"""`edgeswin build-engine`: a TensorRT engine built from an ONNX model on this device."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "build a TensorRT engine from an ONNX model on this device (needs TensorRT and pycuda)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the .onnx, with its sidecar .json beside it")
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16",
                        help="int8 needs a Q/DQ model from `edgeswin quantize`")
    parser.add_argument("-o", "--output", type=Path,
                        help="default: <model>-<precision>.engine")
    parser.add_argument("--timing-cache", type=Path, help="read and update this timing cache")
    parser.add_argument("--workspace-mb", type=int, default=1024,
                        help="builder workspace (at most half the free GPU memory is used)")
    parser.add_argument("--dla-core", type=int, choices=[0, 1], help="build for this DLA core "
                        "(unsupported layers on the GPU); without one, for the GPU with a "
                        "warning")
    parser.add_argument("--opt-level", type=int, choices=range(0, 6), default=None,
                        help="builder optimisation level (TensorRT default 3)")


def run(args: argparse.Namespace) -> int:
    from ..engine.build import build_engine

    target = args.precision if args.dla_core is None else f"{args.precision}-dla{args.dla_core}"
    out = args.output or args.model.with_name(f"{args.model.stem}-{target}.engine")
    build_engine(args.model, out, args.precision, workspace_mb=args.workspace_mb,
                 dla_core=args.dla_core,
                 timing_cache=args.timing_cache, optimization_level=args.opt_level,
                 progress=lambda message: print(message, flush=True))
    return 0
