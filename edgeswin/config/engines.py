"""The `engines:` section: the rungs of the engine ladder, primary first, which backend each
uses, and which rungs are DLA twins of another."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from .fields import _earlier, _resolve, _Strict


def backend_for(model: Path, requested: str) -> str:
    """The backend a rung's model runs on: the one asked for, else by the file's suffix (a
    serialised TensorRT engine is `.engine` or `.plan`, anything else goes to ONNX Runtime)."""
    if requested != "auto":
        return requested
    if model.suffix in (".engine", ".plan"):
        return "tensorrt"
    return "onnxruntime"


class EngineRung(_Strict):
    name: str = Field(description="Short name of this rung, shown in messages and logs.")
    model: str = Field(description="Model file (.onnx, .engine, .plan), relative to this file.")
    backend: Literal["auto", "onnxruntime", "tensorrt"] = Field(
        "auto", description="auto picks by file type: .onnx -> onnxruntime, .engine -> tensorrt.")
    threads: int = Field(0, ge=0, le=64, description="CPU threads for ONNX Runtime; 0 = its default.")
    host_code_allowed: bool = Field(
        False, description="TensorRT: allow engines with embedded host code (version-compatible "
                           "plans). An engine file is code: only for files you built or trust.")

    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp16", description="An .onnx rung with backend tensorrt: the engine built on the device "
                            "(int8 needs a Q/DQ model). Ignored otherwise.")
    preprocess: Literal["cpu", "gpu"] = Field(
        "cpu", description="gpu: resize and normalise in one CUDA kernel (tensorrt rungs only).")
    dla_core: Literal[0, 1] | None = Field(
        None, description="An .onnx rung with backend tensorrt: build for this DLA core, with "
                          "unsupported layers on the GPU. A device without it builds for the "
                          "GPU and says so. fp16 or int8 only.")

    @field_validator("preprocess")
    @classmethod
    def _gpu_preprocess_needs_tensorrt(cls, value: str, info: ValidationInfo) -> str:
        earlier = _earlier(info, "model", "backend")
        if value == "gpu" and earlier is not None:
            if backend_for(Path(earlier[0]), earlier[1]) != "tensorrt":
                raise ValueError("preprocess: gpu needs TensorRT: an .engine/.plan file, or "
                                 "an .onnx with backend: tensorrt")
        return value

    @field_validator("dla_core")
    @classmethod
    def _dla_needs_an_onnx_build(cls, value: int | None, info: ValidationInfo) -> int | None:
        earlier = _earlier(info, "model", "backend", "precision")
        if value is None or earlier is None:
            return value
        model, backend, precision = earlier
        if not (backend == "tensorrt" and Path(model).suffix == ".onnx"):
            raise ValueError("dla_core needs an .onnx model with backend: tensorrt (the "
                             "engine is built for the DLA on the device)")
        if precision == "fp32":
            raise ValueError("dla_core needs precision fp16 or int8: the DLA has no FP32")
        return value

    @field_validator("model")
    @classmethod
    def _model_path(cls, value: str, info: ValidationInfo) -> str:
        """The model's path, taken from the file it is written in. Whether the file can serve
        is read before a start (`prestart`): a damaged model skips its rung, and only a ladder
        with no rung that can serve stops the device."""
        return str(_resolve(value, info))


def dla_twins(engines: list[EngineRung]) -> dict[int, int]:
    """Rung index -> index of its DLA build: a later entry with the same model and dla_core
    set (used by the dla lever; the rung lever then steps over those entries)."""
    twins: dict[int, int] = {}
    for i, rung in enumerate(engines):
        if rung.dla_core is not None:
            continue
        for j, other in enumerate(engines):
            if other.dla_core is not None and other.model == rung.model and j not in \
                    twins.values():
                twins[i] = j
                break
    return twins
