"""`edgeswin quantize`: INT8 Q/DQ for TensorRT, calibrated, gated on agreement with FP32."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "INT8 Q/DQ for TensorRT, calibrated on images, gated on agreement with FP32"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model", type=Path, help="the FP32 .onnx, with its sidecar")
    add("--calibration", type=Path, required=True, help="folder of images")
    add("--eval-data", type=Path, help="labelled folder for the gate (default: the "
                                       "calibration folder; a held-out one is better)")
    add("-o", "--output", type=Path, help="default: <model>-int8.onnx")
    add("--method", choices=["minmax", "entropy", "percentile"], default="minmax",
        help="calibration method (models/README.md compares them)")
    add("--ops", default="Conv,MatMul,Gemm", help="op types to quantize; the rest (LayerNorm, "
                                                  "Softmax, GELU, Add) stays in higher precision")
    add("--min-agreement", type=float, default=0.98,
        help="top-1 agreement with the FP32 model that INT8 must reach, or no file")
    add("--limit", type=int, default=200, help="calibration images to use")


def run(args: argparse.Namespace) -> int:
    from ..toolchain.quantize import quantize
    out = args.output or args.model.with_name(f"{args.model.stem}-int8.onnx")
    quantize(args.model, args.calibration, out, args.eval_data or args.calibration,
             args.method, tuple(o for o in args.ops.split(",") if o), args.min_agreement,
             args.limit, progress=lambda message: print(message, flush=True))
    return 0
