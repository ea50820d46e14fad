"""TensorRT backend (Jetson): a deserialized `.engine`/`.plan` run through pycuda.

Name-based I/O only (TensorRT >= 8.6, which covers JetPack 6.0 and the 10.x of JetPack 6.1/6.2):
`num_io_tensors`, `get_tensor_name/mode/shape/dtype`, `set_tensor_address`, `execute_async_v3`.
Every I/O tensor gets a page-locked host buffer and a device buffer once, at load; each call
copies in, enqueues and copies out on one dedicated stream (never the default stream, which
adds device-wide synchronisation), with the CUDA primary context pushed for the calling thread
and popped after. Hands on the same 1-D float32 scores as the ONNX Runtime backend.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, EdgeswinError, ModelError
from ..prepare.preprocess_cuda import free_pinned
from ..records import ModelInfo

log = logging.getLogger(__name__)

_FLOAT_INPUTS = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


class EngineRunError(EdgeswinError):
    """Inference failed on the device (enqueue refused, CUDA error)."""


@dataclass
class _Tensor:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype
    host: np.ndarray  # page-locked
    device: object  # pycuda DeviceAllocation


@contextmanager
def cuda_errors(what: str):
    """CUDA failing (no device, a device node the unit or the user's groups do not allow, out
    of memory) becomes an EdgeswinError naming it: the rung is skipped with that reason."""
    import pycuda.driver as cuda
    try:
        yield
    except cuda.Error as exc:
        raise BackendUnavailable(
            f"{what}: CUDA is unusable here: {exc}. Check that the GPU nodes (/dev/nvhost-*, "
            "/dev/nvgpu/*, /dev/nvidia*, /dev/nvmap) exist and that this user may open them "
            "(groups video and render; the unit's DeviceAllow=)") from None


def _import():
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"the tensorrt backend needs TensorRT's Python bindings and "
                                 f"pycuda (JetPack: python3-libnvinfer; pip install pycuda): "
                                 f"{exc}") from None
    return trt, cuda


class TrtEngine:
    backend = "tensorrt"

    def __init__(self, model: Path, info: ModelInfo, host_code_allowed: bool = False,
                 device: int = 0, warmup: int = 3):
        trt, cuda = _import()
        self._trt, self._cuda = trt, cuda
        self.info = info
        self.model = model
        try:
            data = model.read_bytes()
        except OSError as exc:
            raise ModelError(f"{model}: cannot read engine file: {exc.strerror}") from None
        with cuda_errors(f"engine {info.name}"):
            cuda.init()
            gpu = cuda.Device(device)
            self.gpu = f"{gpu.name()} (sm_{''.join(map(str, gpu.compute_capability()))})"
            self._ctx = gpu.retain_primary_context()  # shared with any CUDA user in process
            self._ctx.push()
        try:
            with labelled(f"engine {info.name}"), cuda_errors(f"engine {info.name}"):
                self._load(data, host_code_allowed)
        finally:
            cuda.Context.pop()
        self._closed = False
        try:
            for _ in range(warmup):  # first runs pick tactics' kernels and page memory in
                self.infer(np.zeros(info.input.shape, _FLOAT_INPUTS[info.input.dtype]))
        except Exception:  # an engine that fails at once gives its GPU memory back
            self.close()
            raise
        log.info("engine %s loaded: TensorRT %s on %s", info.name, trt.__version__, self.gpu)

    # --- loading ---------------------------------------------------------------------------
    def _load(self, data: bytes, host_code_allowed: bool) -> None:
        trt, cuda = self._trt, self._cuda
        forget_messages()
        self._runtime = trt.Runtime(process_logger(trt))
        # An engine with embedded host code (version-compatible lean runtime) runs code from
        # the file: refused unless the config says this file is trusted.
        if hasattr(self._runtime, "engine_host_code_allowed"):  # 8.6+; off by default
            self._runtime.engine_host_code_allowed = host_code_allowed
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            said = "; ".join(recent_messages()) or "no detail logged"
            raise ModelError(
                f"{self.model}: TensorRT {trt.__version__} cannot deserialize this engine on "
                f"{self.gpu} ({said}). Engines only run on the TensorRT version and GPU they "
                "were built with: rebuild it on this device from the ONNX "
                "(edgeswin build-engine) or point the rung at the .onnx.")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise ModelError(f"{self.model}: cannot create an execution context "
                             f"(out of GPU memory?): {'; '.join(recent_messages())}")
        self._tensors: list[_Tensor] = []
        try:
            for i in range(self._engine.num_io_tensors):
                self._tensors.append(self._allocate(self._engine.get_tensor_name(i)))
        except cuda.Error as exc:
            raise ModelError(f"{self.model}: cannot allocate I/O buffers on {self.gpu}: "
                             f"{exc}") from None
        self._check_io()
        for t in self._tensors:
            if not self._context.set_tensor_address(t.name, int(t.device)):
                raise ModelError(f"{self.model}: TensorRT refused the address of tensor "
                                 f"{t.name!r}: {'; '.join(recent_messages(2))}")
        self._stream = cuda.Stream()
        self._gpu_prep = None

    def _allocate(self, name: str) -> _Tensor:
        trt, cuda = self._trt, self._cuda
        shape = tuple(self._engine.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise ModelError(f"{self.model}: tensor {name!r} has a dynamic shape {shape}; "
                             "build the engine with a static batch-1 shape")
        kind = self._engine.get_tensor_dtype(name)
        try:
            dtype = np.dtype(trt.nptype(kind))
        except TypeError:
            raise ModelError(f"{self.model}: tensor {name!r} has type {kind}, which has no "
                             "NumPy equivalent; build with FP32/FP16 I/O") from None
        is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        host = cuda.pagelocked_empty(shape, dtype)
        device = cuda.mem_alloc(max(host.nbytes, 1))
        return _Tensor(name, is_input, shape, dtype, host, device)

    def _check_io(self) -> None:
        spec, info = self.info.input, self.info
        inputs = [t for t in self._tensors if t.is_input]
        outputs = [t for t in self._tensors if not t.is_input]
        if [t.name for t in inputs] != [spec.name]:
            raise ModelError(f"{self.model}: engine inputs {[t.name for t in inputs]} do not "
                             f"match the metadata's single input {spec.name!r}")
        self._input = inputs[0]
        if self._input.shape != spec.shape:
            raise ModelError(f"{self.model}: engine input shape {list(self._input.shape)} differs "
                             f"from the metadata's {list(spec.shape)}")
        if self._input.dtype != np.dtype(_FLOAT_INPUTS[spec.dtype]):
            raise ModelError(f"{self.model}: engine input type {self._input.dtype} differs from "
                             f"the metadata's {spec.dtype}")
        named = [t for t in outputs if t.name == info.output_name] if info.output_name else outputs
        if len(named) != 1:
            raise ModelError(f"{self.model}: cannot tell the score output among "
                             f"{[t.name for t in outputs]}; name it in the metadata "
                             f"(output.name, now {info.output_name!r})")
        self._output = named[0]
        if self._output.host.size != len(info.labels):
            raise ModelError(f"{self.model}: output {self._output.name!r} has "
                             f"{self._output.host.size} values but the metadata lists "
                             f"{len(info.labels)} labels")
        if self._output.dtype == np.int8 and info.output_scale is None:
            raise ModelError(f"{self.model}: INT8 output {self._output.name!r} needs its "
                             "dequantization scale in the metadata (output.scale)")

    # --- running ---------------------------------------------------------------------------
    def infer(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._input.shape or x.dtype != self._input.dtype:
            raise ValueError(f"input {x.shape} {x.dtype} but the engine takes "
                             f"{self._input.shape} {self._input.dtype}")

        def load() -> None:
            np.copyto(self._input.host, x)
            self._cuda.memcpy_htod_async(self._input.device, self._input.host, self._stream)

        return self._run(load)

    def gpu_preprocessor(self, kernel_dir: Path | None = None, mapped: bool | None = None):
        """A CudaPreprocessor in this engine's context (its kernel compiled once, cached in
        `kernel_dir`), freed with the engine. KernelUnavailable when there is neither a cached
        kernel nor a compiler."""
        from ..prepare.preprocess_cuda import CudaPreprocessor

        self._ctx.push()
        try:
            self._gpu_prep = CudaPreprocessor(self.info.input, self._ctx, kernel_dir, mapped)
        except self._cuda.Error as exc:
            raise ModelError(f"{self.model}: cannot load the GPU preprocessing kernel: "
                             f"{exc}") from None
        finally:
            self._cuda.Context.pop()
        return self._gpu_prep

    def infer_device(self, prepared) -> np.ndarray:
        """Scores for an input already on the device (a DeviceInput from the GPU
        preprocessor): this stream waits for it on the GPU, copies it into the engine's input
        buffer there and runs; the host thread never waits for the preprocessing itself."""
        if prepared.nbytes != self._input.host.nbytes:
            raise ValueError(f"device input of {prepared.nbytes} bytes but the engine takes "
                             f"{self._input.host.nbytes}")

        def load() -> None:
            self._stream.wait_for_event(prepared.ready)
            self._cuda.memcpy_dtod_async(self._input.device, prepared.address, prepared.nbytes,
                                         self._stream)

        return self._run(load)

    def _run(self, load_input) -> np.ndarray:
        cuda = self._cuda
        self._ctx.push()
        try:
            load_input()
            if not self._context.execute_async_v3(stream_handle=self._stream.handle):
                raise EngineRunError(f"{self.model}: TensorRT refused to enqueue inference: "
                                     f"{'; '.join(recent_messages()) or 'no detail logged'}")
            for t in self._tensors:
                if not t.is_input:
                    cuda.memcpy_dtoh_async(t.host, t.device, self._stream)
            self._stream.synchronize()
        except cuda.Error as exc:
            raise EngineRunError(f"{self.model}: CUDA error during inference: {exc}") from None
        finally:
            cuda.Context.pop()
        out = self._output.host.astype(np.float32).reshape(-1)  # a copy: the buffer is reused
        if self._output.dtype == np.int8:
            out *= self.info.output_scale
        return out

    def close(self) -> None:
        """Free every GPU object of this engine now, with its context current on this thread
        (pycuda cannot clean up an object whose context is not current when it is collected:
        a leak and a warning at exit). Called when the engine is dropped and at exit; the
        engine is unusable after."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._ctx.push()
        try:
            if self._gpu_prep is not None:
                self._gpu_prep.close()
                self._gpu_prep = None
            for t in self._tensors:
                t.device.free()
                free_pinned(t.host)
            self._tensors = []
            self._input = self._output = None
            # The last references: TensorRT's objects and the stream go while the context
            # is still current.
            self._stream = self._context = self._engine = self._runtime = None
        finally:
            self._cuda.Context.pop()
            self._ctx.detach()


# TensorRT keeps one logger pointer for the process while any builder or runtime lives, so a
# logger per engine would send later messages to the first one's sink. There is one: it logs
# every warning and error with the rung it concerns, and keeps the last few per thread for the
# error messages of the call that failed.
_logger = None
_logger_module = None  # the tensorrt module it was made for (tests import several doubles)
_logger_lock = threading.Lock()
_local = threading.local()
_cancelling: list[threading.Event] = []  # builds whose cancellation is ours (see expect_cancel)


def process_logger(trt):
    """The one trt.ILogger of this process (made on first use)."""
    global _logger, _logger_module
    with _logger_lock:
        if _logger is None or _logger_module is not trt:
            class ProcessLogger(trt.ILogger):
                def __init__(self):
                    trt.ILogger.__init__(self)

                def log(self, severity, msg):
                    if int(severity) > int(trt.ILogger.Severity.WARNING):
                        return
                    said = _said()
                    said.append(str(msg))
                    del said[:-20]
                    level = logging.ERROR if int(severity) <= int(trt.ILogger.Severity.ERROR) \
                        else logging.WARNING
                    if "cancel" in str(msg).lower() and any(e.is_set() for e in _cancelling):
                        level = logging.INFO  # the stop we asked for, not a failure
                    log.log(level, "TensorRT [%s]: %s", getattr(_local, "label", None)
                            or threading.current_thread().name, msg)

            _logger, _logger_module = ProcessLogger(), trt
        return _logger


@contextmanager
def expect_cancel(cancel: threading.Event | None):
    """While a build runs: once `cancel` is set, TensorRT's own report of the cancellation
    (an error, from whichever thread it builds on) is logged at INFO."""
    if cancel is None:
        yield
        return
    _cancelling.append(cancel)
    try:
        yield
    finally:
        _cancelling.remove(cancel)


def _said() -> list[str]:
    if not hasattr(_local, "said"):
        _local.said = []
    return _local.said


def forget_messages() -> None:
    """Start afresh on this thread: an error then quotes only what its own call caused."""
    _said().clear()


def recent_messages(n: int = 3) -> list[str]:
    """What TensorRT last said on this thread (warnings and errors)."""
    return _said()[-n:]


@contextmanager
def labelled(label: str):
    """TensorRT's messages on this thread name `label` (a rung, a build) until the block ends."""
    previous = getattr(_local, "label", None)
    _local.label = label
    try:
        yield
    finally:
        _local.label = previous
