"""FP16 copies of an ONNX model, for TensorRT 11's strongly typed builds: 11.x has no FP16
builder flag, and a network runs in the types its ONNX declares. Hands on
`<dir>/<stem>-fp16-<sha12>.onnx` (weights and most arithmetic in FP16; inputs, outputs,
LayerNorm, Softmax, ReduceMean and Pow kept in FP32) with the FP32 model's sidecar beside it,
made once per FP32 model and reused. A copy whose top-1 differs from the FP32 model through
ONNX Runtime on any check scene is refused, never cached.

The conversion is ONNX Runtime's own (`onnxruntime.transformers.float16`), so this adds no
dependency.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..files import sha256
from . import read_model_info, sidecar_path, write_atomic

log = logging.getLogger(__name__)

# LayerNorm and Softmax overflow or lose their sums in FP16; before opset 17 LayerNorm is
# ReduceMean/Pow/... pieces, kept FP32 as the 8.x/10.x builds pin them.
KEEP_FP32 = ("LayerNormalization", "Softmax", "ReduceMean", "Pow")
CHECK_SCENES = 16


def float16_onnx(onnx: Path, directory: Path) -> Path:
    """The FP16 copy of `onnx` in `directory`, made (and checked) if not there yet."""
    digest = sha256(onnx)
    out = directory / f"{onnx.stem}-fp16-{digest[:12]}.onnx"
    if out.is_file() and sidecar_path(out).is_file():
        return out
    import onnx as onnx_lib
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    try:
        model = onnx_lib.load(str(onnx))
    except Exception as exc:  # a truncated or foreign file
        raise ModelError(f"{onnx}: cannot read it as ONNX: {exc}") from None
    with warnings.catch_warnings():  # "... will be truncated to 1e-07", once per tiny weight
        warnings.simplefilter("ignore")
        converted = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *KEEP_FP32])
    _sort_nodes(converted.graph)
    data = converted.SerializeToString()
    agree, worst = parity(onnx, data)
    if agree < 1.0:
        raise ModelError(f"{onnx}: its FP16 copy changes the top-1 on {1 - agree:.0%} of "
                         f"{CHECK_SCENES} check scenes (max |diff| {worst:.3g}): use precision "
                         "fp32 for this model")
    meta = json.loads(sidecar_path(onnx).read_text())
    meta["float16_of"] = {"onnx": onnx.name, "sha256": digest, "kept_fp32": list(KEEP_FP32),
                          "top1_agreement": agree, "max_abs_diff": round(worst, 6)}
    directory.mkdir(parents=True, exist_ok=True)
    # The sidecar first: a model file is only ever there with its sidecar.
    write_atomic(sidecar_path(out), json.dumps(meta, indent=2).encode())
    write_atomic(out, data)
    log.info("FP16 copy of %s: %s (same top-1 as FP32 on %d scenes, max |diff| %.3g)",
             onnx.name, out.name, CHECK_SCENES, worst)
    return out


def _sort_nodes(graph) -> None:
    """The converter appends the input casts after their consumers; ONNX (and TensorRT's
    parser) want every node after the nodes it reads from."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progressed = False
        for node in list(pending):
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
                pending.remove(node)
                progressed = True
        if not progressed:
            raise ModelError("the FP16 conversion left a node whose inputs nothing produces: "
                             f"{pending[0].name or pending[0].op_type}")
    del graph.node[:]
    graph.node.extend(ordered)


def parity(onnx: Path, converted: bytes) -> tuple[float, float]:
    """Top-1 agreement and largest score difference, FP32 vs the FP16 copy, through ONNX
    Runtime on rendered scenes (the same generator the demo models and the self-test use)."""
    import onnxruntime as ort

    from ..prepare.preprocess import Preprocessor
    from ..scenes import random_scene

    options = ort.SessionOptions()
    options.log_severity_level = 3  # constant folding skips FP16 Pow on the CPU: not news
    fp32 = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(converted, options, providers=["CPUExecutionProvider"])
    spec = read_model_info(onnx).input
    prep, rng = Preprocessor(spec), np.random.default_rng(16)
    name32, name16 = fp32.get_inputs()[0].name, fp16.get_inputs()[0].name
    same, worst = 0, 0.0
    for _ in range(CHECK_SCENES):
        x = prep(random_scene(rng, 640, 360)[0]).reshape(spec.shape)
        a = fp32.run(None, {name32: x})[0].astype(np.float32)
        b = fp16.run(None, {name16: x})[0].astype(np.float32)
        same += int(a.argmax() == b.argmax())
        worst = max(worst, float(np.abs(a - b).max()))
    return same / CHECK_SCENES, worst
