"""The PyTorch weights of a model exported as the demo models are, read back from its ONNX file.

The ONNX file holds every weight: the named initializers keep their PyTorch names; each Linear
weight that feeds a MatMul sits transposed under an `onnx::` name; and each relative position
bias table was constant-folded into the [1, heads, N, N] tensor added to the attention logits,
`table[relative_position_index]`, which contains every table entry. `recover()` maps them back
in graph order, checks every shape on the way, and then proves the result: PyTorch with the
rebuilt weights against ONNX Runtime on random and rendered-scene inputs.

Hands on a torchvision `SwinTransformer` (eval mode) and its `Architecture`, or an
`EdgeswinError` that says why the file cannot be read back (another exporter, another
definition) and what to pass instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EdgeswinError
from .architecture import Architecture, build_model
from .export import input_spec, random_inputs, scene_inputs

TOLERANCE = 1e-4  # max |torch - ONNX Runtime| accepted for the rebuilt weights


def architecture_of(sidecar: Path) -> tuple[Architecture, str]:
    """The architecture a sidecar describes, and the name `export` takes for it."""
    try:
        meta = json.loads(sidecar.read_text())
        definition = meta["architecture"]["definition"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgeswinError(f"{sidecar}: no architecture block to rebuild the model from "
                            f"({exc})") from None
    if definition == "torchvision.models.SwinTransformer":
        return Architecture.parse(str(sidecar)), str(sidecar)
    name = definition.removeprefix("torchvision.models.")
    arch = Architecture.parse(name if name != definition else definition)
    arch.labels = tuple(meta.get("labels", ()))
    arch.resolution = int(meta["architecture"].get("resolution", 224))
    return arch, arch.definition.removeprefix("torchvision.models.")


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


def _refuse(onnx_path: Path, why: str) -> EdgeswinError:
    return EdgeswinError(f"{onnx_path}: cannot recover its weights ({why}); pass the training "
                         "checkpoint instead (.safetensors or .pth) with this model's sidecar "
                         "(--sidecar)")


def rebuild(onnx_path: Path):
    """(model, arch) with the weights read back from `onnx_path` (sidecar beside it)."""
    import onnx
    import torch
    from onnx import numpy_helper

    sidecar = onnx_path.with_suffix(".json")
    if not sidecar.is_file():
        raise _refuse(onnx_path, f"no sidecar {sidecar.name} with an architecture block")
    arch, _ = architecture_of(sidecar)
    if arch.family == "timm" or arch.name.startswith("swin_v2"):
        raise _refuse(onnx_path, f"{arch.definition} folds its weights otherwise")
    model, _ = build_model(arch, len(arch.labels), arch.resolution)
    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:  # protobuf's decode errors have many kinds
        raise EdgeswinError(f"{onnx_path}: not a readable ONNX file: {exc}") from None
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    expected = model.state_dict()
    state = {k: torch.from_numpy(v.copy()) for k, v in inits.items() if k in expected}
    used = []  # unnamed initializers, in the order the graph consumes them
    for node in graph.node:
        if node.op_type in ("MatMul", "Add"):
            used += [n for n in node.input if n in inits and n not in expected and n not in used]
    keys = forward_order(model)
    if len(used) != len(keys):
        raise _refuse(onnx_path, f"{len(used)} folded weights, the architecture needs "
                      f"{len(keys)}")
    for key, name in zip(keys, used):
        value = inits[name]
        if key.endswith("relative_position_bias_table"):
            index = expected[key.replace("bias_table", "index")].numpy().reshape(-1)
            if value.ndim != 4:
                raise _refuse(onnx_path, f"{key}: {name} is not a folded bias")
            heads, n = value.shape[1], value.shape[2]
            folded = value.reshape(heads, n * n).T  # row r holds table[index[r]]
            table = np.full(tuple(expected[key].shape), np.nan, np.float32)
            if folded.shape[0] != index.shape[0] or folded.shape[1] != table.shape[1]:
                raise _refuse(onnx_path, f"{key}: {value.shape} from {name} does not fold "
                              f"into {tuple(table.shape)}")
            table[index] = folded
            if np.isnan(table).any() or not np.array_equal(table[index], folded):
                raise _refuse(onnx_path, f"{key}: the folded bias does not invert to one table")
            value = table
        else:
            value = value.T  # MatMul's B is the Linear weight transposed
        if tuple(value.shape) != tuple(expected[key].shape):
            raise _refuse(onnx_path, f"{key}: {value.shape} from {name} vs "
                          f"{tuple(expected[key].shape)}")
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    missing = [k for k in expected if k not in state and "relative_position_index" not in k]
    if missing:
        raise _refuse(onnx_path, f"not found: {', '.join(missing[:5])}")
    model.load_state_dict(state, strict=False)
    return model.eval(), arch


def prove(model, onnx_path: Path, arch: Architecture) -> float:
    """Max |torch - ONNX Runtime| over 8 random and 8 rendered-scene inputs."""
    import onnxruntime as ort
    import torch

    spec = input_spec(arch.resolution, fused=False)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in random_inputs(spec, 8) + scene_inputs(spec, 8, None):
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        worst = max(worst, float(np.abs(ref - session.run(None, {"input": x})[0]).max()))
    return worst


def recover(onnx_path: Path):
    """(model, arch, max |diff|): the rebuilt model, proven against the ONNX file."""
    model, arch = rebuild(onnx_path)
    diff = prove(model, onnx_path, arch)
    if diff > TOLERANCE:
        raise _refuse(onnx_path, f"the rebuilt weights differ from the ONNX by {diff:.2e}")
    return model, arch, diff
