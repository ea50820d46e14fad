"""A model file checked as `edgeswin check` sees it, without opening an engine: its metadata
sidecar is readable and valid, and an ONNX graph's input and output agree with it.

Hands on nothing: `check_model` returns or raises `ModelError` saying what is wrong, the
same error the engine would raise at start (the engine still checks again when it opens)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ..errors import ModelError
from . import read_model_info, sidecar_path

# ONNX TensorProto element types of the input dtypes the metadata may name.
_ONNX_TYPES = {"float32": 1, "uint8": 2, "float16": 10}


def check_model(model: Path) -> None:
    # Parsing a large graph takes a while and a reload re-reads the config between two
    # frames: a model whose files did not change since they were last found good is not
    # read again.
    _check_unchanged(str(model), _stamp(model), _stamp(sidecar_path(model)))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)  # only successes are kept: a ModelError is raised, not cached
def _check_unchanged(model_path: str, _model: tuple | None, _sidecar: tuple | None) -> None:
    model = Path(model_path)
    info = read_model_info(model)
    if model.suffix != ".onnx":
        return  # a TensorRT engine is read only by TensorRT, on the device, at start
    import onnx
    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends: a corrupt file
        raise ModelError(f"{model}: not a readable ONNX model: {exc}") from None
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    spec = info.input
    if len(inputs) != 1 or inputs[0].name != spec.name:
        raise ModelError(f"{model}: model inputs {[i.name for i in inputs]} do not match the "
                         f"metadata's input {spec.name!r}")
    tensor = inputs[0].type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
    if shape != list(spec.shape):
        raise ModelError(f"{model}: model input shape {shape} differs from the metadata's "
                         f"{list(spec.shape)} (fixed batch-1 shape expected)")
    if tensor.elem_type != _ONNX_TYPES[spec.dtype]:
        raise ModelError(f"{model}: model input type differs from the metadata's {spec.dtype}")
    if graph.output:
        dims = graph.output[0].type.tensor_type.shape.dim
        size = 1
        for d in dims:
            size *= d.dim_value if d.HasField("dim_value") else 1
        if dims and size != len(info.labels):
            raise ModelError(f"{model}: model has {size} outputs but the metadata lists "
                             f"{len(info.labels)} labels")
