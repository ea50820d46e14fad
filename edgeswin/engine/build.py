"""Building TensorRT engines from ONNX on the device (TensorRT 8.6, 10.x and 11.x), and the
engine cache key. Hands on an `.engine` file with a sidecar JSON beside it: the ONNX sidecar's labels
and input spec plus how the plan was built (source ONNX sha256, TensorRT version, GPU name and
compute capability, precision), which is also what decides whether a cached plan is reusable.

The flow is the documented one: Builder -> network (explicit batch flag on 8.x, none on 10.x
and 11.x; STRONGLY_TYPED for a Q/DQ INT8 model on 10.x and for every network on 11.x, where an
FP16 engine comes from an FP16 copy of the ONNX) -> OnnxParser -> builder config (workspace
pool, FP16/INT8 flags where not strongly typed, optimisation level, timing cache) ->
build_serialized_network. Builds run one at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendUnavailable, ModelError
from ..files import sha256
from . import read_model_info, sidecar_path, write_atomic
from .trt import cuda_errors, expect_cancel, forget_messages, labelled, process_logger, recent_messages

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


def device_identity() -> dict:
    """TensorRT version and GPU of this machine: what a plan is only valid for."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"building engines needs TensorRT and pycuda: {exc}") from None
    with cuda_errors("engine builds"):
        cuda.init()
        gpu = cuda.Device(0)
        return {"tensorrt": trt.__version__, "gpu": gpu.name(),
                "compute_capability": ".".join(map(str, gpu.compute_capability()))}


def cache_key(onnx: Path, precision: str, identity: dict, dla_core: int | None = None) -> str:
    """Changes whenever the ONNX, the TensorRT version, the GPU, the precision, the DLA core or
    the input spec does: any of them makes an old plan invalid or different."""
    spec = read_model_info(onnx).input
    fields = {"onnx": sha256(onnx), "precision": precision, **identity,
              "input": [spec.name, list(spec.shape), spec.dtype]}
    if dla_core is not None:
        fields["dla_core"] = dla_core
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def cached_engine_path(state_dir: Path, onnx: Path, precision: str, identity: dict,
                       dla_core: int | None = None) -> Path:
    target = precision if dla_core is None else f"{precision}-dla{dla_core}"
    key = cache_key(onnx, precision, identity, dla_core)
    return state_dir / "engines" / f"{onnx.stem}-{target}-{key}.engine"


def _has_qdq(onnx: Path) -> bool:
    import onnx as onnx_lib  # only the toolchain and the builder need it
    model = onnx_lib.load(str(onnx), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def _opset(onnx: Path) -> int:
    import onnx as onnx_lib
    model = onnx_lib.load(str(onnx), load_external_data=False)
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


# TensorRT builds are one at a time: two would compete for the GPU memory and the workspace
# that each sizes from what is free, and the daemon must keep serving beside them.
_one_build = threading.Lock()


def timing_cache_path(directory: Path, identity: dict) -> Path:
    """One timing cache per TensorRT version and GPU: another's entries are not reusable."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", identity["gpu"]).strip("-").lower()
    cc = identity["compute_capability"].replace(".", "")
    return directory / f"timing-{identity['tensorrt']}-{gpu}-sm{cc}.cache"


def _flags(trt, major: int, strongly_typed: bool) -> int:
    """8.x needs the explicit-batch flag for ONNX; 10.x ignores it (deprecated) and 11.x has
    none. Strongly typed: 10.x for Q/DQ models, 11.x always."""
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def build_engine(onnx: Path, out: Path, precision: str = "fp16", *, workspace_mb: int = 1024,
                 timing_cache: Path | None = None, optimization_level: int | None = None,
                 dla_core: int | None = None,
                 progress=lambda message: log.info("%s", message),
                 cancel: threading.Event | None = None) -> dict:
    """Build `onnx` into `out` and its sidecar; return the sidecar dict. TensorRT 8.6, 10.x and
    11.x: on 11.x an FP16 engine is built from an FP16 copy of the ONNX (engine/float16.py),
    made beside `out`. `progress` hears each stage and, on TensorRT 10 and later, the
    builder's own phases; setting `cancel` stops a build at its next step (10 and later) or
    before it starts (8.6), with BuildCancelled."""
    # Long: one procedure read top to bottom, in TensorRT's own order (builder, network,
    # parser, config, build, serialise); each step names what failed.
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if dla_core is not None and precision == "fp32":
        raise ModelError("a DLA engine needs precision fp16 or int8: the DLA has no FP32")
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
                         "TensorRT 10 and gone in 11)")
    major = int(trt.__version__.split(".")[0])
    strongly_typed = major >= 11 or (qdq and major >= 10)
    source = onnx
    if major >= 11 and precision == "fp16":
        progress(f"TensorRT {trt.__version__} builds strongly typed: making an FP16 copy of "
                 f"{onnx.name}")
        from .float16 import float16_onnx
        source = float16_onnx(onnx, out.parent)
    if not _one_build.acquire(blocking=False):
        progress("waiting for another engine build to finish")
        while not _one_build.acquire(timeout=0.5):
            if cancel is not None and cancel.is_set():
                raise BuildCancelled(f"{out.name}: cancelled while waiting for another build")
    if cancel is not None and cancel.is_set():
        _one_build.release()
        raise BuildCancelled(f"{out.name}: cancelled before it started")
    t0 = time.monotonic()
    try:
        with labelled(f"build {out.name}"), cuda_errors(f"build {out.name}"):
            ctx = cuda.Device(0).retain_primary_context()
            ctx.push()
            try:
                forget_messages()
                plan, cache_bytes, pinned, workspace, dla = _build(trt, cuda, _Settings(
                    source, precision, major, strongly_typed, workspace_mb, timing_cache,
                    optimization_level, dla_core, identity), progress, cancel)
            finally:
                cuda.Context.pop()
                ctx.detach()
    finally:
        _one_build.release()
    meta = json.loads(sidecar_path(onnx).read_text())
    meta.update({"precision": precision, "name": f"{info.name}-{precision}"})
    meta["tensorrt"] = {**identity, "onnx": onnx.name, "onnx_sha256": sha256(onnx),
                        "built_from": source.name, "precision": precision,
                        "strongly_typed": strongly_typed, "layernorm_layers_kept_fp32": pinned,
                        "timing_cache_reused": bool(cache_bytes), "workspace_mb": workspace >> 20,
                        "dla": dla,
                        "build_s": round(time.monotonic() - t0, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    # The sidecar first, then the plan: a plan is never there without its sidecar (which would
    # look like a foreign plan, and be rebuilt, for minutes, at every start).
    write_atomic(sidecar_path(out), json.dumps(meta, indent=2).encode())
    write_atomic(out, plan)
    progress(f"built {out} in {meta['tensorrt']['build_s']} s")
    return meta


@dataclass(frozen=True)
class _Settings:
    """What one build is asked for, as `build_engine` settled it."""

    source: Path  # the ONNX parsed (on 11.x FP16: the FP16 copy)
    precision: str
    major: int  # TensorRT's major version
    strongly_typed: bool
    workspace_mb: int
    timing_cache: Path | None
    optimization_level: int | None
    dla_core: int | None
    identity: dict  # device_identity(): the GPU and versions the plan is for


def _build(trt, cuda, settings: _Settings, progress, cancel: threading.Event | None
           ) -> tuple[bytes, bytes, int, int, dict | None]:
    """Parse and build with the primary context current; return (plan, the timing cache it
    started from, layers pinned to FP32, workspace bytes, what went to the DLA). Writes the
    updated timing cache."""
    source, precision, major = settings.source, settings.precision, settings.major
    strongly_typed, timing_cache = settings.strongly_typed, settings.timing_cache
    logger = process_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_flags(trt, major, strongly_typed))
    parser = trt.OnnxParser(network, logger)
    progress(f"parsing {source.name} (TensorRT {trt.__version__}, {settings.identity['gpu']})")
    if not parser.parse(source.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(f"{source}: TensorRT's ONNX parser refused it:\n  " + "\n  ".join(errors))
    config = builder.create_builder_config()
    workspace = _workspace_bytes(cuda, settings.workspace_mb)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if settings.optimization_level is not None:
        config.builder_optimization_level = settings.optimization_level
    if not strongly_typed and precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers left unquantized run in FP16
    if not strongly_typed and precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # 8.x: needed for Q/DQ too
    pinned = _keep_layernorm_fp32(trt, network, config) \
        if precision != "fp32" and not strongly_typed and _opset(source) < 17 else 0
    dla = _use_dla(trt, builder, network, config, settings.dla_core, progress) \
        if settings.dla_core is not None else None
    cache_bytes = _load_timing_cache(trt, config, timing_cache)
    monitor = None
    if hasattr(trt, "IProgressMonitor"):  # 10.0 on; it must outlive the build
        monitor = config.progress_monitor = _progress_monitor(trt, progress, cancel)
    progress(f"building {precision} engine, workspace {workspace >> 20} MB (this can take "
             "minutes on a Jetson)")
    with expect_cancel(cancel):
        plan = builder.build_serialized_network(network, config)
    if plan is None and monitor is not None and monitor.cancelled:
        raise BuildCancelled(f"{source.name}: build cancelled")
    if plan is None:
        raise ModelError(f"{source}: TensorRT could not build an engine: "
                         f"{'; '.join(recent_messages()) or 'no detail logged'}")
    if timing_cache:
        try:
            timing_cache.parent.mkdir(parents=True, exist_ok=True)  # a first build's state dir
            write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
        except (OSError, ModelError) as exc:  # the engine is fine; the next build is just slower
            log.warning("timing cache not saved: %s", exc)
    return bytes(plan), cache_bytes, pinned, workspace, dla


class BuildCancelled(ModelError):
    """The build was asked to stop (the daemon is stopping or reloading)."""


def _progress_monitor(trt, progress, cancel: threading.Event | None):
    """A trt.IProgressMonitor that hands the builder's outermost phases and their steps to
    `progress` (each phase start and at most one step a second: a build has thousands of
    inner steps), and asks TensorRT to stop once `cancel` is set. TensorRT calls it from its
    own threads."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.cancelled = False
            self._steps: dict[str, int] = {}  # outermost phases only
            self._said = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self._steps[phase_name] = num_steps
                self._said = time.monotonic()
                progress(f"TensorRT: {phase_name} (0/{num_steps})")

        def step_complete(self, phase_name, step):
            if phase_name in self._steps and time.monotonic() - self._said >= 1.0:
                self._said = time.monotonic()
                progress(f"TensorRT: {phase_name} ({step + 1}/{self._steps[phase_name]})")
            if cancel is not None and cancel.is_set():
                self.cancelled = True
                return False
            return True

        def phase_finish(self, phase_name):
            self._steps.pop(phase_name, None)

    return Monitor()


def _use_dla(trt, builder, network, config, core: int, progress) -> dict | None:
    """Build for DLA `core`, layers it cannot run on the GPU (GPU_FALLBACK). A device without
    that core (Orin Nano and Thor have no DLA; TensorRT 11.0-11.3 supports none) builds for
    the GPU with a warning. Returns the core and the op types that fall back, or None."""
    cores = builder.num_DLA_cores
    if core >= cores:
        message = (f"DLA core {core} asked for, but this device and TensorRT {trt.__version__} "
                   f"offer {cores} DLA core(s): building for the GPU")
        log.warning("%s", message)
        progress(message)
        return None
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    fallback: dict[str, int] = {}
    on_dla = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if config.can_run_on_DLA(layer):
            on_dla += 1
        else:
            fallback[layer.type.name] = fallback.get(layer.type.name, 0) + 1
    progress(f"DLA core {core}: {on_dla} of {network.num_layers} layers on the DLA; on the GPU: "
             + (", ".join(f"{k} x{n}" for k, n in sorted(fallback.items())) or "none"))
    return {"core": core, "layers_on_dla": on_dla, "gpu_fallback": fallback}


def _workspace_bytes(cuda, workspace_mb: int) -> int:
    """The requested workspace, but at most half of the GPU memory free now: on an 8 GB Orin
    Nano the daemon, its other rungs and a build share the same memory."""
    wanted = workspace_mb << 20
    try:
        free, _total = cuda.mem_get_info()
    except cuda.Error:
        return wanted
    return max(min(wanted, free // 2), 64 << 20)


def _load_timing_cache(trt, config, path: Path | None) -> bytes:
    """Reuse the timing cache at `path` when TensorRT accepts it; start an empty one when it
    is corrupt or from another TensorRT or GPU. Returns the bytes that were reused."""
    data = path.read_bytes() if path and path.is_file() else b""
    cache = config.create_timing_cache(data) if data else None
    if data and (cache is None or not config.set_timing_cache(cache, ignore_mismatch=False)):
        log.warning("timing cache %s is corrupt or from another TensorRT or GPU: starting an "
                    "empty one", path)
        data = b""
    if not data:
        cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            raise ModelError(f"TensorRT refused an empty timing cache: "
                             f"{'; '.join(recent_messages())}")
    return data


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
