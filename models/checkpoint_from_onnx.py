"""Rebuild the PyTorch checkpoint of a bundled demo model from its ONNX file.

The demo models were exported before `train_demo.py` kept a checkpoint, but their ONNX files
hold every weight: the named initializers keep their PyTorch names; each Linear weight that
feeds a MatMul sits transposed under an `onnx::` name; and each relative position bias table
was constant-folded into the [1, heads, N, N] tensor added to the attention logits,
`table[relative_position_index]`, which contains every table entry. This maps them back in
graph order, checks every shape on the way, and then proves the result: PyTorch with the rebuilt
weights against the ONNX on random and rendered-scene inputs.

    python models/checkpoint_from_onnx.py models/swin-demo-112.onnx -o build/ckpt/swin-demo-112.safetensors

Writes a .safetensors state dict of torchvision's SwinTransformer, which `edgeswin export
models/swin-demo-112.json --checkpoint ...` takes like any user's checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeswin.toolchain.export import Architecture, build_model  # noqa: E402


def forward_order(model) -> list[str]:
    """State-dict keys of the folded or transposed weights, in the order the graph uses them."""
    keys = []
    for i, stage in enumerate(model.features[1:], start=1):
        if stage.__class__.__name__ == "PatchMerging":
            keys.append(f"features.{i}.reduction.weight")
            continue
        for j in range(len(stage)):
            p = f"features.{i}.{j}"
            keys += [f"{p}.attn.qkv.weight", f"{p}.attn.relative_position_bias_table",
                     f"{p}.attn.proj.weight", f"{p}.mlp.0.weight", f"{p}.mlp.3.weight"]
    return keys


def rebuild(onnx_path: Path):
    import torch

    arch = Architecture.parse(str(onnx_path.with_suffix(".json")))
    model, _ = build_model(arch, len(arch.labels), arch.resolution)
    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    expected = model.state_dict()
    state = {k: torch.from_numpy(v.copy()) for k, v in inits.items() if k in expected}
    used = []  # unnamed initializers, in the order the graph consumes them
    for node in graph.node:
        if node.op_type in ("MatMul", "Add"):
            used += [n for n in node.input if n in inits and n not in expected and n not in used]
    keys = forward_order(model)
    if len(used) != len(keys):
        raise SystemExit(f"{onnx_path}: {len(used)} folded weights, expected {len(keys)}")
    for key, name in zip(keys, used):
        value = inits[name]
        if key.endswith("relative_position_bias_table"):
            index = expected[key.replace("bias_table", "index")].numpy().reshape(-1)
            heads, n = value.shape[1], value.shape[2]
            folded = value.reshape(heads, n * n).T  # row r holds table[index[r]]
            table = np.full(tuple(expected[key].shape), np.nan, np.float32)
            table[index] = folded
            if np.isnan(table).any() or not np.array_equal(table[index], folded):
                raise SystemExit(f"{key}: the folded bias does not invert to one table")
            value = table
        else:
            value = value.T  # MatMul's B is the Linear weight transposed
        if tuple(value.shape) != tuple(expected[key].shape):
            raise SystemExit(f"{key}: {value.shape} from {name} vs {tuple(expected[key].shape)}")
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    missing = [k for k in expected if k not in state and "relative_position_index" not in k]
    if missing:
        raise SystemExit(f"not rebuilt: {missing}")
    model.load_state_dict(state, strict=False)
    return model, arch


def prove(model, onnx_path: Path, arch: Architecture) -> float:
    """Max |torch - ONNX Runtime| over 8 random and 8 rendered-scene inputs."""
    import onnxruntime as ort
    import torch

    from edgeswin.toolchain.export import input_spec, random_inputs, scene_inputs

    spec = input_spec(arch.resolution, fused=False)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in random_inputs(spec, 8) + scene_inputs(spec, 8, None):
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(ref - session.run(None, {"input": x})[0]).max()))
    return worst


def write_checkpoint(onnx_path: Path, out: Path) -> float:
    """Rebuild, prove and write `out` (.safetensors); returns the max |diff| to the ONNX."""
    from safetensors.torch import save_file

    model, arch = rebuild(onnx_path)
    diff = prove(model, onnx_path, arch)
    if diff > 1e-4:
        raise SystemExit(f"rebuilt weights differ from the ONNX by {diff:.2e}")
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
