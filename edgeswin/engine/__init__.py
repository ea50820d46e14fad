"""Stage 3: engines. A small interface, the model metadata reader and the backend registry.

Hands on raw model outputs (`Engine.infer(x) -> 1-D float32 array`) for an input built by
`preprocess` to the engine's `InputSpec`. One file per backend; heavy imports (onnxruntime,
tensorrt) happen only when that backend is chosen, so a missing one is an error then, not at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config.engines import backend_for
from ..errors import ModelError
from ..files import NotASmallFile, read_small, write_whole
from ..records import InputSpec, ModelInfo


class Engine(Protocol):
    backend: str
    info: ModelInfo

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run batch-1 inference on a preprocessed input; return the output as a 1-D array."""
        ...


MAX_SIDECAR_BYTES = 4_000_000  # labels for tens of thousands of classes fit many times over


def sidecar_path(model: Path) -> Path:
    return model.with_suffix(".json")


def read_model_info(model: Path) -> ModelInfo:
    """Read `<model>.json` next to the model file; ModelError says what is wrong and where."""
    path = sidecar_path(model)
    try:
        raw = read_small(path, MAX_SIDECAR_BYTES)
        meta = json.loads(raw.decode("utf-8"))
    except NotASmallFile as exc:  # a FIFO would block the start forever
        raise ModelError(f"{path}: model metadata is {exc}") from None
    except FileNotFoundError:
        raise ModelError(f"{model}: metadata file {path.name} is missing (labels and input spec "
                         "travel with the model)") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: model metadata is not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                         f"at offset {exc.start})") from None
    except RecursionError:
        raise ModelError(f"{path}: model metadata nested too deeply") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read model metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: invalid model metadata: expected a JSON object")
    try:
        inp = meta["input"]
        shape = inp["shape"]
        layout = inp.get("layout", "NCHW")
        if len(shape) != 4 or shape[0] != 1:
            raise ValueError(f"input shape must be [1, ...] with 4 dims, got {shape}")
        height, width = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
        spec = InputSpec(name=inp["name"], height=int(height), width=int(width), layout=layout,
                         dtype=inp.get("dtype", "float32"), color=inp.get("color", "RGB"),
                         scale=float(inp.get("scale", 1 / 255)),
                         mean=tuple(inp.get("mean", (0.0, 0.0, 0.0))),
                         std=tuple(inp.get("std", (1.0, 1.0, 1.0))),
                         resize=inp.get("resize", "area"))
        if layout not in ("NCHW", "NHWC") or spec.color not in ("RGB", "BGR"):
            raise ValueError("input layout must be NCHW|NHWC and color RGB|BGR")
        if spec.dtype not in ("float32", "float16", "uint8") or spec.resize not in ("area", "linear"):
            raise ValueError("input dtype must be float32|float16|uint8, resize area|linear")
        if len(spec.mean) != 3 or len(spec.std) != 3:
            raise ValueError("input mean and std need 3 values")
        labels = tuple(str(label) for label in meta["labels"])
        if not labels:
            raise ValueError("labels is empty")
        output = meta.get("output", {})
        scale = output.get("scale")
        return ModelInfo(name=str(meta.get("name", model.stem)), labels=labels, input=spec,
                         output_kind=output.get("kind", "logits"),
                         precision=str(meta.get("precision", "fp32")),
                         output_name=output.get("name"),
                         output_scale=float(scale) if scale is not None else None,
                         check_images=str(meta["check_images"]) if meta.get("check_images")
                         else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid model metadata: {exc}") from None


def open_engine(model: Path, backend: str = "auto", threads: int = 0,
                host_code_allowed: bool = False) -> Engine:
    """Load a model with the right backend and warm it up."""
    info = read_model_info(model)
    chosen = backend_for(model, backend)
    if chosen == "onnxruntime":
        from .ort import OrtEngine
        return OrtEngine(model, info, threads=threads)
    if model.suffix not in (".engine", ".plan"):
        raise ModelError(f"{model}: the tensorrt backend loads .engine/.plan files built on this "
                         "device; run ONNX models with backend onnxruntime")
    from .trt import TrtEngine
    return TrtEngine(model, info, host_code_allowed=host_code_allowed)


def write_atomic(path: Path, data: bytes) -> None:
    """`files.write_whole`, failing as a ModelError that names the file."""
    try:
        write_whole(path, data)
    except OSError as exc:
        raise ModelError(f"cannot write {path}: {exc.strerror or exc}") from None
