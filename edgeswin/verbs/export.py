"""`edgeswin export`: a trained Swin -> static batch-1 ONNX + sidecar (the toolchain's)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("a trained Swin (torchvision/timm, optional checkpoint) -> static batch-1 ONNX + "
        "sidecar, checked against PyTorch (needs the toolchain extra: torch, torchvision, timm)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("arch", help="swin_t|swin_s|swin_b|swin_v2_t|swin_v2_s|swin_v2_b, timm:<name>, or a "
                     "sidecar .json with an architecture block")
    add("-o", "--output", type=Path, required=True, help="the .onnx to write")
    add("--checkpoint", type=Path, help=".pth/.pt state dict or .safetensors")
    add("--num-classes", type=int, help="default: the labels, the checkpoint's head, or 1000")
    add("--labels", type=Path, help="text file, one label per line")
    add("--resolution", type=int, help="square input size (default: the architecture's own, "
                                       "224 for the named ones)")
    add("--opset", type=int, choices=[16, 17], default=17,
        help="17 for TensorRT >= 8.6; 16 for TensorRT 8.5 parsers")
    add("--fused-preprocess", action="store_true", help="the graph takes uint8 1xHxWx3 BGR "
        "and normalises itself; the daemon only resizes")
    add("--check-images", type=Path, help="folder of real images for the parity check "
                                          "(default: rendered scenes)")
    add("--tolerance", type=float, default=1e-3, help="max |ONNX Runtime - PyTorch| accepted")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import EdgeswinError
    from ..toolchain.export import ExportOptions, export
    labels: tuple[str, ...] = ()
    if args.labels:
        try:
            labels = tuple(line.strip() for line in args.labels.read_text().splitlines()
                           if line.strip())
        except OSError as exc:
            raise EdgeswinError(f"cannot read --labels: {exc}") from None
    options = ExportOptions(args.checkpoint, args.num_classes, labels, args.resolution,
                            args.opset, args.fused_preprocess, args.check_images, args.tolerance)
    result = export(args.arch, args.output, options,
                    progress=lambda message: print(message, flush=True))
    print(json.dumps(result.as_dict(), indent=1))
    return 0
