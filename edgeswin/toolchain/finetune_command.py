"""`edgeswin finetune`'s options and what it prints; the work is `finetune.py`'s."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = ("fine-tune a model on confirmed frames (plus a sample of the original data); prints "
        "held-out top-1 before and after (needs the toolchain)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="MODEL",
                        help="the model to improve: an .onnx whose weights can be read back "
                             "(the demo models, or one `edgeswin export` or `finetune` wrote), "
                             "or a checkpoint (.safetensors/.pth) with its sidecar .json")
    parser.add_argument("--sidecar", type=Path, help="with a checkpoint: the model's sidecar "
                        "JSON, as `export` wrote it (default: the .json beside the checkpoint)")
    parser.add_argument("--data", type=Path, required=True, help="the confirmed frames: "
                        "folder/<label>/*.jpg (what `edgeswin review` writes)")
    parser.add_argument("--base-data", type=Path, help="a labelled folder of what the model "
                        "already knew; a sample is mixed in against forgetting")
    parser.add_argument("--out", type=Path, required=True, help="the new .onnx (its sidecar "
                        "is written beside it)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW, "
                        "warm-up then cosine)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--holdout", type=float, default=0.2, help="share of each label's "
                        "latest frames held out to measure before and after")
    parser.add_argument("--base-limit", type=int, help="images taken from --base-data "
                        "(default: as many as the confirmed frames trained on, at least 50)")
    parser.add_argument("--flips", choices=["none", "h", "hv"], default="h",
                        help="random flips while training: h for most cameras, hv when the "
                             "scene has no up and down")
    parser.add_argument("--seed", type=int, default=0, help="the same seed on the same machine "
                        "gives the same model")
    parser.add_argument("--device", help="cuda, cuda:1 or cpu (default: the GPU when PyTorch "
                        "sees one)")
    parser.add_argument("-o", "--output", type=Path, help="also write the figures here (JSON)")


def run(args: argparse.Namespace) -> int:
    from ..errors import EdgeswinError
    from .finetune import Training, finetune, report
    if args.output and args.output.resolve() == args.out.with_suffix(".json").resolve():
        raise EdgeswinError(f"-o {args.output} is where the new model's sidecar goes: "
                            "name another file for the figures")
    training = Training(args.epochs, args.lr, args.batch, args.holdout, args.base_limit,
                        args.seed, args.device, args.flips)
    result = finetune(args.source, args.data, args.out, args.base_data, training,
                      progress=lambda message: print(message, flush=True), sidecar=args.sidecar)
    print("\n".join(report(result)))
    print(f"wrote {args.out} in {result.seconds:.0f} s on {result.device}; next: `edgeswin "
          f"quantize` for INT8, then a rollout (docs/learning.md)")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    return 0
