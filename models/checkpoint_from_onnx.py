"""Rebuild the PyTorch checkpoint of a bundled demo model from its ONNX file.

The demo models were exported before `train_demo.py` kept a checkpoint, but their ONNX files
hold every weight: `edgeswin.toolchain.recover` reads them back and proves them against the
ONNX (the same code `edgeswin finetune --from model.onnx` uses).

    python models/checkpoint_from_onnx.py models/swin-demo-112.onnx -o build/ckpt/swin-demo-112.safetensors

Writes a .safetensors state dict of torchvision's SwinTransformer, which `edgeswin export
models/swin-demo-112.json --checkpoint ...` takes like any user's checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeswin.toolchain.recover import recover  # noqa: E402


def write_checkpoint(onnx_path: Path, out: Path) -> float:
    """Rebuild, prove and write `out` (.safetensors); returns the max |diff| to the ONNX."""
    from safetensors.torch import save_file

    model, _, diff = recover(onnx_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out),
              metadata={"source": onnx_path.name})
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    diff = write_checkpoint(args.onnx, args.output)
    print(json.dumps({"checkpoint": str(args.output), "max_abs_diff_vs_onnx": diff}))


if __name__ == "__main__":
    main()
