"""ONNX Runtime backend: the one that runs everywhere (CPU here; CUDA/TensorRT providers if present)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, ModelError
from ..records import ModelInfo

log = logging.getLogger(__name__)

_PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "uint8": "tensor(uint8)"}


class OrtEngine:
    backend = "onnxruntime"

    def __init__(self, model: Path, info: ModelInfo, threads: int = 0, warmup: int = 3):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"{model}: onnxruntime is not installed ({exc})") from None
        self.info = info
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        available = ort.get_available_providers()
        providers = [p for p in _PREFERRED if p in available]
        try:
            self._session = ort.InferenceSession(str(model), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            raise ModelError(f"{model}: ONNX Runtime cannot load it "
                             f"(corrupt or not an ONNX model?): {exc}") from None
        self.providers = self._session.get_providers()
        self._check_io(model)
        self._input_name = info.input.name
        dummy = np.zeros(info.input.shape, np.dtype(info.input.dtype))
        for _ in range(warmup):  # first runs allocate and pick kernels; keep that out of frame 1
            self.infer(dummy)
        log.info("engine %s loaded on %s", info.name, ",".join(self.providers))

    def _check_io(self, model: Path) -> None:
        spec = self.info.input
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != spec.name:
            raise ModelError(f"{model}: model inputs {[i.name for i in inputs]} do not match "
                             f"the metadata's input {spec.name!r}")
        if list(inputs[0].shape) != list(spec.shape):
            raise ModelError(f"{model}: model input shape {inputs[0].shape} differs from the "
                             f"metadata's {list(spec.shape)} (fixed batch-1 shape expected)")
        if inputs[0].type != _ORT_TYPES[spec.dtype]:
            raise ModelError(f"{model}: model input type {inputs[0].type} differs from the "
                             f"metadata's {spec.dtype}")
        out_shape = self._session.get_outputs()[0].shape
        size = int(np.prod([d for d in out_shape if isinstance(d, int)]))
        if size != len(self.info.labels):
            raise ModelError(f"{model}: model has {size} outputs but the metadata lists "
                             f"{len(self.info.labels)} labels")

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input_name: x})[0]
        return np.asarray(out, np.float32).reshape(-1)
