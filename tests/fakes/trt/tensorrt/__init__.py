"""A test double of TensorRT's Python runtime API (the name-based subset, TensorRT >= 8.6).

Faithful to the conventions edgeswin relies on:
- `Runtime.deserialize_cuda_engine(bytes)` returns None (and logs an ERROR through the
  ILogger) for a corrupt plan, a plan from another TensorRT version, a plan built for another
  GPU, or a plan with embedded host code while `engine_host_code_allowed` is False.
- `ICudaEngine`: `num_io_tensors`, `get_tensor_name(i)`, `get_tensor_mode/shape/dtype(name)`,
  `create_execution_context()`; unknown names give mode NONE / shape (-1) like the real API.
- `IExecutionContext.set_tensor_address(name, ptr) -> bool` (False for an unknown name) and
  `execute_async_v3(stream_handle) -> bool` (False, with a logged error, when a tensor has no
  address). Execution is queued on the pycuda stream, so outputs exist only after it syncs.
- Real arithmetic: a plan wraps an ONNX model that is run with ONNX Runtime on the bytes in the
  fake device buffers, cast to and from the plan's I/O dtypes (FP16 I/O really is FP16).

`build_plan()` writes such a plan (the stand-in for the builder of a real device).

Over the pycuda double everything is simulated; over the real pycuda (on a GPU machine without
TensorRT) the buffers, copies, stream and context are real: the network then reads its input
from and writes its output to real device memory, ordered after the stream's prior work.
"""

from __future__ import annotations

import enum
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
from pycuda import driver as _cuda

REAL_CUDA = not hasattr(_cuda, "device_bytes")
# Which TensorRT this double is: EDGESWIN_FAKE_TRT_VERSION picks one of the releases whose
# Python bindings api_surface.json describes (8.6.1, 10.3.0, 10.16.0, 11.0.0, 11.1.0). Every
# class, enum member and method that another of those releases has and this one lacks raises
# AttributeError, as the real module would (see _apply_surface at the end).
SURFACE_VERSION = os.environ.get("EDGESWIN_FAKE_TRT_VERSION", "10.3.0")
# The real __version__ carries a fourth, build number (e.g. "10.3.0.30" on JetPack 6.1);
# these build numbers are examples, present so that code keying on the version sees four parts.
_BUILD = {"8.6.1": "6", "10.3.0": "30", "10.16.0": "12", "11.0.0": "7", "11.1.0": "3"}
if SURFACE_VERSION not in _BUILD:
    raise ImportError(f"EDGESWIN_FAKE_TRT_VERSION={SURFACE_VERSION}: the double knows "
                      f"{', '.join(_BUILD)}")
__version__ = f"{SURFACE_VERSION}.{_BUILD[SURFACE_VERSION]}"
MAJOR = int(SURFACE_VERSION.split(".")[0])
MAGIC = b"FTRTPLAN"
# Tests may set "enqueue": True makes every enqueue fail until cleared, a number that many.
faults: dict[str, bool | int] = {}


def _fault(name: str) -> bool:
    value = faults.get(name)
    if value is True:
        return True
    if isinstance(value, int) and value > 0:
        faults[name] = value - 1
        return True
    return False
_LOGGER_OF_CONFIG = None  # set by the Builder: where builder-config errors are logged


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
_ORT_TYPES = {"tensor(float)": "FLOAT", "tensor(float16)": "HALF", "tensor(uint8)": "UINT8",
              "tensor(int8)": "INT8", "tensor(int32)": "INT32"}
float32, float16, int8, int32, uint8 = (DataType.FLOAT, DataType.HALF, DataType.INT8,
                                        DataType.INT32, DataType.UINT8)


def nptype(trt_type: DataType):
    if trt_type not in _NP:
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return _NP[trt_type]


def volume(shape) -> int:
    return int(np.prod(list(shape)))


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class Dims(tuple):
    pass


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self):
        pass

    def log(self, severity, msg):  # pragma: no cover - overridden
        raise NotImplementedError


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = ILogger.Severity

    def __init__(self, min_severity=ILogger.Severity.WARNING):
        super().__init__()
        self.min_severity = min_severity
        self.messages: list[str] = []

    def log(self, severity, msg):
        if severity <= self.min_severity:
            self.messages.append(msg)


def _need_context(call: str) -> None:
    if not REAL_CUDA:
        _cuda._need_context(call)
    elif _cuda.Context.get_current() is None:
        raise _cuda.LogicError(f"{call} failed: invalid device context")


def _compute_capability() -> tuple[int, int]:
    if REAL_CUDA:
        return tuple(_cuda.Device(0).compute_capability())
    return _cuda.COMPUTE_CAPABILITY


def _read(address: int, nbytes: int) -> bytes:
    if not REAL_CUDA:
        return bytes(_cuda.device_bytes(address, nbytes))
    host = np.empty(nbytes, np.uint8)
    _cuda.memcpy_dtoh(host, address)
    return host.tobytes()


def _write(address: int, data: bytes) -> None:
    if not REAL_CUDA:
        _cuda.device_bytes(address, len(data))[:] = data
    else:
        _cuda.memcpy_htod(address, np.frombuffer(data, np.uint8))


def _enqueue(stream_handle: int, op) -> None:
    if REAL_CUDA:
        # No real kernels to queue: wait for the work already on the device (the input
        # copy), run the network, and write the outputs before anything later on the stream.
        _cuda.Context.synchronize()
        op()
        return
    stream = _cuda.streams.get(stream_handle)
    if stream is None:
        raise _cuda.LogicError("execute_async_v3: unknown stream handle (use the stream "
                               "the buffers were copied on)")
    stream.enqueue(op)


def build_plan(onnx_path, out_path, io: list[dict], *, version: str = __version__,
               gpu: tuple[int, int] | None = None, host_code: bool = False) -> None:
    """Write a plan: io = [{"name", "mode": "input"|"output", "shape", "dtype": DataType name}]."""
    header = json.dumps({"version": version, "compute_capability": list(gpu or
                                                                        _compute_capability()),
                         "host_code": host_code, "io": io}).encode()
    with open(out_path, "wb") as fh:
        fh.write(MAGIC + struct.pack("<I", len(header)) + header)
        with open(onnx_path, "rb") as src:
            fh.write(src.read())


class Runtime:
    def __init__(self, logger: ILogger):
        if not isinstance(logger, ILogger):
            raise TypeError("Runtime(): incompatible constructor arguments (logger: ILogger)")
        self.logger = logger
        self.engine_host_code_allowed = False

    def _error(self, msg: str) -> None:
        self.logger.log(ILogger.Severity.ERROR, msg)

    def deserialize_cuda_engine(self, serialized_engine: bytes):
        _need_context("deserialize_cuda_engine")
        data = bytes(serialized_engine)
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            self._error("1: [stdArchiveReader.cpp::StdArchiveReaderInitCommon::46] Error Code 1: "
                        "Serialization (Serialization assertion stdVersionRead == "
                        "kSERIALIZATION_VERSION failed.Version tag does not match.)")
            return None
        (size,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
        try:
            header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + size])
        except ValueError:
            self._error("1: Error Code 1: Serialization (corrupt plan header)")
            return None
        if header["version"] != __version__:
            self._error(f"1: [runtime.cpp::nvinfer1::Runtime::deserializeCudaEngine::66] Error "
                        f"Code 1: Serialization (Serialization assertion engine plan file is not "
                        f"compatible with this version of TensorRT, expecting library version "
                        f"{__version__} got {header['version']}, please rebuild.)")
            return None
        if tuple(header["compute_capability"]) != _compute_capability():
            cc = "".join(map(str, header["compute_capability"]))
            self._error(f"1: [caskUtils.cpp::trtSmToCask::147] Error Code 1: Internal Error "
                        f"(Unsupported SM: 0x{cc}; engine built for another GPU)")
            return None
        if header["host_code"] and not self.engine_host_code_allowed:
            self._error("1: Error Code 1: Serialization (Serialization assertion "
                        "hostCodeAllowed failed.The engine contains host code and the runtime "
                        "does not allow it: set IRuntime::setEngineHostCodeAllowed(true))")
            return None
        import onnxruntime as ort
        options = ort.SessionOptions()
        # A real engine leaves the host's cores free; FAKE_TRT_THREADS bounds what the double's
        # CPU arithmetic takes (0: ONNX Runtime's default, every core).
        options.intra_op_num_threads = int(os.environ.get("FAKE_TRT_THREADS", "0"))
        try:
            session = ort.InferenceSession(data[len(MAGIC) + 4 + size:], options,
                                           providers=["CPUExecutionProvider"])
        except Exception:
            self._error("1: Error Code 1: Serialization (corrupt plan body)")
            return None
        return ICudaEngine(header["io"], session, self.logger)


class ICudaEngine:
    def __init__(self, io: list[dict], session, logger: ILogger):
        self._io = io
        self._by_name = {t["name"]: t for t in io}
        self._session = session
        self._logger = logger

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index]["name"]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        t = self._by_name.get(name)
        return TensorIOMode.NONE if t is None else TensorIOMode[t["mode"].upper()]

    def get_tensor_shape(self, name: str) -> Dims:
        t = self._by_name.get(name)
        return Dims((-1,)) if t is None else Dims(t["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self._by_name[name]["dtype"]]

    def create_execution_context(self):
        _need_context("create_execution_context")
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        self.engine = engine
        self._addresses: dict[str, int] = {}
        self.enqueues = 0

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self.engine._by_name:
            self.engine._logger.log(ILogger.Severity.ERROR,
                                    f"3: setTensorAddress given invalid tensor name: {name}")
            return False
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        _need_context("execute_async_v3")
        engine = self.engine
        missing = [t["name"] for t in engine._io if t["name"] not in self._addresses]
        if missing or _fault("enqueue"):
            detail = (f"Neither address or allocator is set for output tensor {missing[0]}"
                      if missing else "Cuda Runtime (an illegal instruction was encountered)")
            engine._logger.log(ILogger.Severity.ERROR, f"3: [executionContext.cpp::enqueueV3] "
                                                       f"Error Code 3: API Usage Error ({detail})")
            return False
        self.enqueues += 1
        _enqueue(stream_handle, self._run)
        return True

    def _run(self) -> None:
        feeds = {}
        for t in self.engine._io:
            dtype = np.dtype(_NP[DataType[t["dtype"]]])
            nbytes = volume(t["shape"]) * dtype.itemsize
            if t["mode"] == "input":
                raw = _read(self._addresses[t["name"]], nbytes)
                value = np.frombuffer(raw, dtype).reshape(t["shape"])
                # The network computes in float; uint8 inputs are cast like a fused preprocess.
                wanted = self.engine._session.get_inputs()[0].type
                feeds[t["name"]] = value.astype(np.uint8 if "uint8" in wanted else np.float32)
        results = self.engine._session.run(None, feeds)
        outputs = [t for t in self.engine._io if t["mode"] == "output"]
        for t, value in zip(outputs, results):
            dtype = np.dtype(_NP[DataType[t["dtype"]]])
            nbytes = volume(t["shape"]) * dtype.itemsize
            if dtype == np.int8:
                value = np.clip(np.round(value / t.get("scale", 1.0)), -128, 127)
            data = np.ascontiguousarray(value, dtype).tobytes()
            assert len(data) == nbytes
            _write(self._addresses[t["name"]], data)


# --- the builder ------------------------------------------------------------------------------
# Builder -> INetworkDefinition (layers made from the ONNX nodes, so precision pinning can be
# inspected) -> OnnxParser.parse -> IBuilderConfig -> build_serialized_network -> IHostMemory.
# The plan keeps the network's I/O as the ONNX declares it (FP32), as TensorRT does unless
# told otherwise, and records the flags it was built with.

class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 5


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    GPU_FALLBACK = 3
    OBEY_PRECISION_CONSTRAINTS = 11
    VERSION_COMPATIBLE = 14


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


# DLA cores the device offers: an AGX Orin has two; TensorRT 11.0 to 11.3 supports none (11.4.1
# restores it on AGX Orin). Tests set 0 for an Orin Nano.
DLA_CORES = 0 if MAJOR >= 11 else 2
# A simplification of NVIDIA's DLA layer support table: convolutions and elementwise layers
# run there; matrix multiplies, normalisation, reductions and the rest fall back to the GPU.
_ON_DLA = {"CONVOLUTION", "ELEMENTWISE"}


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    ELEMENTWISE = 5
    REDUCE = 12
    MATRIX_MULTIPLY = 21
    NORMALIZATION = 43
    OTHER = 99


class ElementWiseOperation(enum.IntEnum):
    SUM = 0
    PROD = 1
    DIV = 5
    SUB = 6
    POW = 7


_LAYER_OF = {"ReduceMean": LayerType.REDUCE, "MatMul": LayerType.MATRIX_MULTIPLY,
             "Conv": LayerType.CONVOLUTION, "LayerNormalization": LayerType.NORMALIZATION}
_ELEMENTWISE = {"Add": ElementWiseOperation.SUM, "Mul": ElementWiseOperation.PROD,
                "Div": ElementWiseOperation.DIV, "Sub": ElementWiseOperation.SUB,
                "Pow": ElementWiseOperation.POW}


class ILayer:
    def __init__(self, name: str, op_type: str):
        self.name = name
        self.type = LayerType.ELEMENTWISE if op_type in _ELEMENTWISE else \
            _LAYER_OF.get(op_type, LayerType.OTHER)
        self._op = _ELEMENTWISE.get(op_type)
        self._precision = DataType.FLOAT
        self._precision_is_set = False
        self.output_types: dict[int, DataType] = {}

    # 8.6 and 10.x only: 11.x networks are strongly typed and these are gone.
    @property
    def precision(self) -> DataType:
        return self._precision

    @precision.setter
    def precision(self, value: DataType) -> None:
        self._precision, self._precision_is_set = value, True

    @property
    def precision_is_set(self) -> bool:
        return self._precision_is_set

    def set_output_type(self, index: int, dtype: DataType) -> None:
        self.output_types[index] = dtype


class IElementWiseLayer(ILayer):
    @property
    def op(self) -> ElementWiseOperation:
        return self._op


class INetworkDefinition:
    def __init__(self, flags: int):
        self._flags = flags
        self.onnx: bytes | None = None
        self.implicit_batch = False
        self._layers: list[ILayer] = []

    @property
    def flags(self) -> int:  # 10.x on
        return self._flags

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger):
        self.network, self.logger, self._errors = network, logger, []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> str:
        return self._errors[index]

    def parse(self, model: bytes) -> bool:
        import onnx
        if self.network.implicit_batch:
            self._errors.append("ModelImporter: the network must be created with the "
                                "EXPLICIT_BATCH flag")
            return False
        try:
            proto = onnx.load_from_string(bytes(model))
            onnx.checker.check_model(proto)
        except Exception as exc:
            self._errors.append(f"In node -1 (parseGraph): INVALID_GRAPH: {exc}")
            return False
        opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if opset > 20:
            self._errors.append(f"ModelImporter: unsupported opset {opset}")
            return False
        # "UINT8 is only supported as network input or output tensor types" (operators.md,
        # TensorRT 8.5 on): inside the network a UINT8 input may only feed a Cast to float.
        uint8 = {i.name for i in proto.graph.input if i.type.tensor_type.elem_type == 2}
        for node in proto.graph.node:
            bad = [name for name in node.input if name in uint8]
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            if bad and not (node.op_type == "Cast" and to in (1, 10)):
                self._errors.append(f"In node {node.name or node.op_type} ({node.op_type}): "
                                    f"UNSUPPORTED_NODE: UINT8 tensor {bad[0]} may only be cast "
                                    "to FLOAT or HALF")
                return False
        self.network.onnx = bytes(model)
        self.network._layers = [ILayer(n.name or f"{n.op_type}_{i}", n.op_type)
                                for i, n in enumerate(proto.graph.node)]
        return True


class ITimingCache:
    """Records the TensorRT version and GPU that filled it, as the real cache's header does."""

    def __init__(self, entries: int, version: str, compute_capability: list[int]):
        self.entries, self.version, self.cc = entries, version, list(compute_capability)

    def serialize(self) -> bytes:
        return json.dumps({"fake_timing_cache": self.entries, "version": self.version,
                           "compute_capability": self.cc}).encode()


class IProgressMonitor:
    """10.0 on: the builder reports its phases here; `step_complete` returning False cancels."""

    def __init__(self):
        pass


class IBuilderConfig:
    def __init__(self):
        self.__dict__["progress_monitor"] = None  # a member from 10.0 on (absent in 8.6)
        self.flags: set[BuilderFlag] = set()
        self.pools: dict[MemoryPoolType, int] = {}
        self.builder_optimization_level = 3
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self._cache: ITimingCache | None = None

    def can_run_on_DLA(self, layer: ILayer) -> bool:
        return layer.type.name in _ON_DLA

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pools[pool] = size

    def create_timing_cache(self, serialized: bytes) -> ITimingCache | None:
        if not serialized:
            return ITimingCache(0, __version__, list(_compute_capability()))
        try:
            data = json.loads(bytes(serialized))
            return ITimingCache(data["fake_timing_cache"], data["version"],
                                data["compute_capability"])
        except (ValueError, KeyError, TypeError):
            _LOGGER_OF_CONFIG.log(ILogger.Severity.ERROR, "1: [timingCache.cpp] Error Code 1: "
                                  "corrupt timing cache")
            return None

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        mismatch = (cache.version, cache.cc) != (__version__, list(_compute_capability()))
        if mismatch and not ignore_mismatch:
            _LOGGER_OF_CONFIG.log(ILogger.Severity.ERROR, "1: [timingCache.cpp] the timing "
                                  "cache was made by another TensorRT version or device")
            return False
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache:
        return self._cache


class Builder:
    def __init__(self, logger: ILogger):
        _need_context("Builder")
        self.logger = logger

    @property
    def num_DLA_cores(self) -> int:
        return DLA_CORES

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        if MAJOR == 8 and not flags & 1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH:
            self.logger.log(ILogger.Severity.ERROR, "4: [network.cpp::NetworkDefinition] the "
                            "ONNX parser only supports networks with an explicit batch dimension")
            network = INetworkDefinition(flags)
            network.implicit_batch = True
            return network
        if MAJOR == 10 and flags & 1 << 0:
            self.logger.log(ILogger.Severity.WARNING, "EXPLICIT_BATCH is deprecated and ignored")
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        global _LOGGER_OF_CONFIG
        _LOGGER_OF_CONFIG = self.logger  # the process-wide logger TensorRT reports through
        return IBuilderConfig()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        import onnxruntime as ort
        if network.onnx is None:
            self.logger.log(ILogger.Severity.ERROR, "4: network has no layers")
            return None
        strongly = bool(network._flags & 1 << 5)  # STRONGLY_TYPED (10.x on)
        precision_flags = {getattr(BuilderFlag, n) for n in ("FP16", "INT8")
                           if hasattr(BuilderFlag, n)}
        if config.default_device_type == DeviceType.DLA:
            if not 0 <= config.DLA_core < DLA_CORES:
                self.logger.log(ILogger.Severity.ERROR, f"4: DLA core {config.DLA_core} "
                                f"requested, but the device has {DLA_CORES}")
                return None
            if BuilderFlag.GPU_FALLBACK not in config.flags and any(
                    layer.type.name not in _ON_DLA for layer in network._layers):
                self.logger.log(ILogger.Severity.ERROR, "4: a layer cannot run on the DLA and "
                                                        "GPU_FALLBACK is not set")
                return None
        if strongly and config.flags & precision_flags:
            self.logger.log(ILogger.Severity.ERROR, "4: precision flags are not allowed with a "
                                                    "strongly typed network")
            return None
        if MAJOR >= 11 and not strongly:
            self.logger.log(ILogger.Severity.ERROR, "4: networks are always strongly typed in "
                                                    "TensorRT 11: create it STRONGLY_TYPED")
            return None
        monitor = getattr(config, "progress_monitor", None) if MAJOR >= 10 else None
        if monitor is not None and not _report_phases(monitor, len(network._layers)):
            self.logger.log(ILogger.Severity.ERROR, "1: [builder.cpp] build was cancelled by "
                                                    "the progress monitor")
            return None
        session = ort.InferenceSession(network.onnx, providers=["CPUExecutionProvider"])
        # The network's I/O keeps the ONNX types (UINT8 I/O since 8.5, FP16 I/O), as the parser
        # marks them.
        io = [{"name": t.name, "mode": mode, "shape": list(t.shape),
               "dtype": _ORT_TYPES.get(t.type, "FLOAT")}
              for mode, ts in (("input", session.get_inputs()), ("output", session.get_outputs()))
              for t in ts]
        if config._cache is not None:
            config._cache.entries += len(network._layers)
        header = json.dumps({"version": __version__, "compute_capability":
                             list(_compute_capability()), "host_code": False, "io": io,
                             "flags": sorted(f.name for f in config.flags),
                             "strongly_typed": strongly,
                             "dla_core": config.DLA_core
                             if config.default_device_type == DeviceType.DLA else None,
                             "onnx_float16": _float16_weights(network.onnx),
                             "pinned_fp32": [layer.name for layer in network._layers
                                             if layer._precision_is_set]}).encode()
        return IHostMemory(MAGIC + struct.pack("<I", len(header)) + header + network.onnx)


# Seconds per outer build step: tests slow the fake build down to watch its progress.
BUILD_STEP_S = float(os.environ.get("FAKE_TRT_BUILD_STEP_S", "0"))


def _report_phases(monitor: IProgressMonitor, layers: int) -> bool:
    """The phases a real build reports (outer phase, nested tactic selection); False when the
    monitor asked to stop."""
    steps = 4
    monitor.phase_start("Building engine", None, steps)
    try:
        for step in range(steps):
            monitor.phase_start("Tactic selection", "Building engine", layers)
            for layer in range(layers):
                if not monitor.step_complete("Tactic selection", layer):
                    return False
            monitor.phase_finish("Tactic selection")
            time.sleep(BUILD_STEP_S)
            if not monitor.step_complete("Building engine", step):
                return False
        return True
    finally:
        monitor.phase_finish("Building engine")


def _float16_weights(model: bytes) -> bool:
    """Whether the ONNX keeps its weights in FP16: what a strongly typed network runs in."""
    import onnx
    proto = onnx.load_from_string(model)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)


class IHostMemory(bytes):
    """Supports the buffer protocol, like the real one (`bytes(plan)`, `f.write(plan)`)."""


def plan_header(path) -> dict:
    """Test helper: the recorded build settings of a plan written by the fake builder."""
    data = open(path, "rb").read()
    (size,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    return json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + size])


# --- one release's surface ----------------------------------------------------------------------

class _Absent:
    """A member that some release has and this one lacks: reading or setting it fails as on
    the real module."""

    def __init__(self, owner: str, name: str):
        self.owner, self.name = owner, name

    def _fail(self):
        raise AttributeError(f"'{self.owner}' object has no attribute '{self.name}' "
                             f"(TensorRT {SURFACE_VERSION})")

    def __get__(self, obj, objtype=None):
        self._fail()

    def __set__(self, obj, value):
        self._fail()


def _apply_surface() -> None:
    surfaces = json.loads(Path(__file__).with_name("api_surface.json").read_text())
    here = surfaces[SURFACE_VERSION]["types"]
    known: dict[str, set[str]] = {}
    for surface in surfaces.values():
        for name, spec in surface["types"].items():
            known.setdefault(name, set()).update(spec["members"])
    space = globals()
    for name, obj in list(space.items()):
        if not isinstance(obj, type) or name.startswith("_") or name not in known:
            continue  # the double's own helpers
        if name not in here:
            del space[name]
            continue
        gone = known[name] - set(here[name]["members"])
        if issubclass(obj, enum.Enum):
            if gone & set(obj.__members__):
                space[name] = enum.IntEnum(name, {m: v.value for m, v in obj.__members__.items()
                                                  if m not in gone})
        else:
            for member in gone:
                setattr(obj, member, _Absent(name, member))


_apply_surface()
