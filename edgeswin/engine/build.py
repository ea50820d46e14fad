"""Building TensorRT engines from ONNX on the device (TensorRT 8.6 and 10.x), and the engine
cache key. Hands on an `.engine` file with a sidecar JSON beside it: the ONNX sidecar's labels
and input spec plus how the plan was built (source ONNX sha256, TensorRT version, GPU name and
compute capability, precision), which is also what decides whether a cached plan is reusable.

The flow is the documented one: Builder -> network (explicit batch flag on 8.x, none on 10.x,
STRONGLY_TYPED for a Q/DQ INT8 model on 10.x) -> OnnxParser -> builder config (workspace pool,
FP16/INT8 flags on 8.x, optimisation level, timing cache) -> build_serialized_network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ..errors import BackendUnavailable, ModelError
from . import read_model_info, sidecar_path
from .trt import collecting_logger

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def device_identity() -> dict:
    """TensorRT version and GPU of this machine: what a plan is only valid for."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"building engines needs TensorRT and pycuda: {exc}") from None
    cuda.init()
    gpu = cuda.Device(0)
    return {"tensorrt": trt.__version__, "gpu": gpu.name(),
            "compute_capability": ".".join(map(str, gpu.compute_capability()))}


def cache_key(onnx: Path, precision: str, identity: dict) -> str:
    """Changes whenever the ONNX, the TensorRT version, the GPU, the precision or the input spec
    does: any of them makes an old plan invalid or different."""
    spec = read_model_info(onnx).input
    text = json.dumps({"onnx": sha256(onnx), "precision": precision, **identity,
                       "input": [spec.name, list(spec.shape), spec.dtype]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_engine_path(state_dir: Path, onnx: Path, precision: str, identity: dict) -> Path:
    return state_dir / "engines" / f"{onnx.stem}-{precision}-{cache_key(onnx, precision, identity)}.engine"


def _has_qdq(onnx: Path) -> bool:
    import onnx as onnx_lib  # only the toolchain and the builder need it
    model = onnx_lib.load(str(onnx), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def _opset(onnx: Path) -> int:
    import onnx as onnx_lib
    model = onnx_lib.load(str(onnx), load_external_data=False)
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def build_engine(onnx: Path, out: Path, precision: str = "fp16", *, workspace_mb: int = 1024,
                 timing_cache: Path | None = None, optimization_level: int | None = None,
                 progress=lambda message: log.info("%s", message)) -> dict:
    """Build `onnx` into `out` (written atomically) and its sidecar; return the sidecar dict."""
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"building engines needs TensorRT and pycuda (JetPack: "
                                 f"python3-libnvinfer; pip install pycuda): {exc}") from None
    info = read_model_info(onnx)  # the ONNX must carry its sidecar: labels and input spec
    identity = device_identity()
    qdq = precision == "int8" and _has_qdq(onnx)
    if precision == "int8" and not qdq:
        raise ModelError(f"{onnx}: INT8 needs an explicitly quantized (Q/DQ) model; make one "
                         "with `edgeswin quantize` (implicit calibration is deprecated in "
                         "TensorRT 10)")
    v10 = int(trt.__version__.split(".")[0]) >= 10
    messages: list[str] = []
    logger = collecting_logger(trt, messages)
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    t0 = time.monotonic()
    try:
        builder = trt.Builder(logger)
        flags = 0 if v10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        strongly_typed = qdq and v10  # 10.x: Q/DQ models take their types from the graph
        if strongly_typed:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        progress(f"parsing {onnx.name} (TensorRT {trt.__version__}, {identity['gpu']})")
        if not parser.parse(onnx.read_bytes()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise ModelError(f"{onnx}: TensorRT's ONNX parser refused it:\n  " + "\n  ".join(errors))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if optimization_level is not None:
            config.builder_optimization_level = optimization_level
        if not strongly_typed and precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)  # layers left unquantized run in FP16
        if not strongly_typed and precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # 8.x: needed for Q/DQ too
        pinned = _keep_layernorm_fp32(trt, network, config) \
            if precision != "fp32" and not strongly_typed and _opset(onnx) < 17 else 0
        cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
        cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(cache, ignore_mismatch=False)
        progress(f"building {precision} engine (this can take minutes on a Jetson)")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ModelError(f"{onnx}: TensorRT could not build an engine: "
                             f"{'; '.join(messages[-3:]) or 'no detail logged'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, bytes(plan))
        if timing_cache:
            write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    finally:
        cuda.Context.pop()
        ctx.detach()
    meta = json.loads(sidecar_path(onnx).read_text())
    meta.update({"precision": precision, "name": f"{info.name}-{precision}"})
    meta["tensorrt"] = {**identity, "onnx": onnx.name, "onnx_sha256": sha256(onnx),
                        "precision": precision, "strongly_typed": strongly_typed,
                        "layernorm_layers_kept_fp32": pinned,
                        "timing_cache_reused": bool(cache_bytes),
                        "build_s": round(time.monotonic() - t0, 1)}
    write_atomic(sidecar_path(out), json.dumps(meta, indent=2).encode())
    progress(f"built {out} in {meta['tensorrt']['build_s']} s")
    return meta


def _keep_layernorm_fp32(trt, network, config) -> int:
    """Before opset 17 LayerNorm is decomposed (Pow, ReduceMean, ...), which overflows in FP16
    after attention: pin those layers to FP32 and make the builder obey."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.ELEMENTWISE:
            layer.__class__ = trt.IElementWiseLayer  # the Python API's way to reach .op
            wanted = layer.op == trt.ElementWiseOperation.POW
        else:
            wanted = layer.type == trt.LayerType.REDUCE
        if wanted:
            layer.precision = trt.float32
            layer.set_output_type(0, trt.float32)
            pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


def write_atomic(path: Path, data: bytes) -> None:
    """Write next to the target and rename: a crash or a full disk never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot write {path}: {exc.strerror}") from None
