"""Stage 3's engines: the ladder of rungs from the config, every one loaded and warmed up front,
and TensorRT rungs built on this device in the background.

Hands the daemon `rungs` (an ActiveEngine, or None while unusable or building, per rung in
config order), `builds` (the latest BuildReport per rung name, for the retained engine topic)
and, between two frames, `adopt()`: the rungs whose background build ended since the last call.
Which rung serves is the daemon's and the fallback policy's business, not this module's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import EngineRung, dla_twins
from ..errors import EdgeswinError
from ..prepare.choose_way import ChoosePerSize
from ..prepare.preprocess import Preprocessor
from ..prepare.preprocess_cuda import DeviceInput, KernelUnavailable
from . import Engine, open_engine
from .cache import BuildReport, EngineCache

log = logging.getLogger(__name__)

BUILD_STOP_S = 10.0  # at exit, how long a cancelled build may take to reach its next step


class RungPending(EdgeswinError):
    """The rung's engine is being built; it joins the ladder when ready."""


class GpuFedEngine:
    """A TensorRT engine whose inputs come from the GPU preprocessor (a DeviceInput) or, for
    frame sizes the CPU does faster, from the CPU (an array). Its inference time includes
    waiting for a kernel still running, which is rare when cameras are prepared ahead."""

    def __init__(self, engine):
        self._engine = engine
        self.backend = engine.backend
        self.info = engine.info

    def infer(self, x):
        if isinstance(x, DeviceInput):
            return self._engine.infer_device(x)
        return self._engine.infer(x)

    def close(self) -> None:
        self._engine.close()


@dataclass
class ActiveEngine:
    engine: Engine
    preprocess: Preprocessor  # the cameras' frames (per size, the GPU's or the CPU's way)
    name: str
    rung: int

    @property
    def own_preprocess(self) -> Preprocessor:
        """For images of no camera (the canary's): always the CPU's, so they never decide or
        keep a camera size's way, nor hold GPU buffers of a size no camera has."""
        return self.preprocess.cpu if isinstance(self.preprocess, ChoosePerSize) \
            else self.preprocess


def close_engine(engine) -> None:
    """Free an engine's GPU objects now (TensorRT engines have close(); ONNX Runtime's need
    nothing). A failure is said, never raised: the caller is dropping the engine anyway."""
    close = getattr(engine, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:
            log.warning("closing engine %s: %s: %s", engine.info.name, type(exc).__name__, exc)


def activate(rung: int, spec: EngineRung, engine, kernel_dir: Path | None = None) -> ActiveEngine:
    """An opened engine with the preprocessing its rung asks for (CPU, or the GPU kernel;
    the CPU when the kernel can be neither loaded from `kernel_dir` nor compiled)."""
    if spec.preprocess == "gpu":
        try:
            gpu = engine.gpu_preprocessor(kernel_dir)
            choose = ChoosePerSize(gpu, Preprocessor(engine.info.input),
                                   f"engine rung {rung} ({spec.name})")
            return ActiveEngine(GpuFedEngine(engine), choose, spec.name, rung)
        except KernelUnavailable as exc:
            log.warning("engine rung %d (%s): %s: preprocessing on the CPU instead", rung,
                        spec.name, exc, extra={"ENGINE": spec.name})
    return ActiveEngine(engine, Preprocessor(engine.info.input), spec.name, rung)


class EngineLadder:
    """One copy of each rung's engine, shared by all cameras, so a switch is a pointer swap
    between two frames."""

    def __init__(self, specs: list[EngineRung], state_dir: Path,
                 check_frames: Callable[[], list], wake: threading.Condition,
                 opener: Callable[..., Engine] = open_engine):
        self.specs = specs
        self._opener = opener  # how a model file becomes an engine (the bench swaps it)
        self.cache = EngineCache(state_dir)
        self.kernel_dir = Path(state_dir) / "kernels"  # compiled CUDA kernels, per GPU
        self.rungs: list[ActiveEngine | None] = []
        self.builds: dict[str, BuildReport] = {}  # rung name -> latest report
        self.unusable: dict[int, str] = {}  # rung -> why its model could not be opened
        self._check_frames = check_frames  # frames to compare a new engine with ORT on
        self._wake = wake  # notified when a build ends, so the loop adopts it promptly
        self._arrived: list[tuple] = []  # finished builds, handed over by their threads
        self._progressed = threading.Event()  # a build said something new since last asked
        self._stopped = False  # stop_builds() was called

    @property
    def arrived(self) -> bool:
        return bool(self._arrived)

    def skipped(self) -> dict[str, str]:
        """Rungs whose model could not be opened and that no model has replaced since, by
        name: why (said on `<root>/engine` and as a metric, so a damaged file is seen)."""
        return {self.specs[rung].name: why for rung, why in self.unusable.items()
                if rung < len(self.rungs) and self.rungs[rung] is None}

    @property
    def building(self) -> bool:
        """Whether a build thread is still running."""
        return any(thread.is_alive() for thread in self.cache.threads)

    def progressed(self) -> bool:
        """Whether a running build reported a new step since the last call."""
        if self._progressed.is_set():
            self._progressed.clear()
            return True
        return False

    def load(self, stop: threading.Event, waiting: Callable[[], None] = lambda: None) -> None:
        """Open every rung. An unusable rung is logged and skipped; a TensorRT rung whose
        engine is not built yet is built in the background meanwhile. With nothing else to
        serve, wait for that build rather than give up, calling `waiting()` at least once a
        second meanwhile (a first boot's build takes minutes: the daemon says how far it got).
        Returns early, nothing raised, once `stop` is set: what is building is cancelled by
        `stop_builds()`."""
        self.rungs, self.unusable = [], {}
        for rung, spec in enumerate(self.specs):
            if stop.is_set():  # a stop during start-up: the caller stops cleanly
                return
            try:
                self.rungs.append(self._open(rung, spec))
            except RungPending as exc:
                log.info("engine rung %d (%s): %s", rung, spec.name, exc,
                         extra={"ENGINE": spec.name})
                self.rungs.append(None)
            except EdgeswinError as exc:
                log.error("engine rung %d (%s) unusable: %s", rung, spec.name, exc,
                          extra={"ENGINE": spec.name})
                self.unusable[rung] = str(exc)
                self.rungs.append(None)
            except Exception as exc:  # a file no check foresaw: skip the rung, keep the rest
                log.exception("engine rung %d (%s) unusable: %s: %s", rung, spec.name,
                              type(exc).__name__, exc, extra={"ENGINE": spec.name})
                self.unusable[rung] = f"{type(exc).__name__}: {exc}"
                self.rungs.append(None)
        problems = [f"rung {rung} ({self.specs[rung].name}): {why}"
                    for rung, why in self.unusable.items()]
        if not any(self.rungs) and self.builds:
            log.warning("no engine is usable until the TensorRT build finishes")
        # Until a build serves or none is left running (one that fails leaves the others);
        # a build thread hands its engine over before it ends, so this order misses none.
        while not any(self.rungs) and (self.building or self._arrived):
            if stop.is_set():
                return
            waiting()
            with self._wake:
                if not self._arrived:
                    self._wake.wait(1.0)
            problems += [f"rung {rung} ({spec.name}): engine build {report.state}: "
                         f"{report.detail}" for rung, spec, report in self.adopt()
                         if self.rungs[rung] is None]
        if not any(self.rungs):
            raise EdgeswinError("no engine rung is usable:\n  " + "\n  ".join(problems))

    def start_rung(self, configured: list[EngineRung], pinned: int | None,
                   dla_lever: bool) -> int:
        """The rung to serve first: the pinned one (else the primary) or the next usable one
        below it. With the dla lever a rung's DLA build serves only through that lever, never
        at start."""
        usable = [i for i, engine in enumerate(self.rungs) if engine]
        builds = set(dla_twins(configured).values()) if dla_lever else set()
        mains = [i for i in usable if i not in builds] or usable
        wanted = pinned if pinned is not None else 0
        return next((i for i in mains if i >= wanted), mains[0])

    def _open(self, rung: int, spec: EngineRung) -> ActiveEngine:
        model = Path(spec.model)
        if spec.backend == "tensorrt" and model.suffix == ".onnx":
            cached = self.cache.find(model, spec.precision, spec.dla_core)
            if cached is None:
                self._start_build(rung, spec)
                raise RungPending(f"no {spec.precision} engine for {model.name} on this device "
                                  "yet: building it in the background")
            try:
                engine = open_engine(cached, "tensorrt", host_code_allowed=spec.host_code_allowed)
            except EdgeswinError as exc:
                log.warning("cached engine %s unusable (%s): rebuilding", cached, exc)
                cached.unlink(missing_ok=True)
                self._start_build(rung, spec)
                raise RungPending("rebuilding its engine in the background") from None
            log.info("engine rung %d (%s): cached TensorRT engine %s", rung, spec.name, cached)
        else:
            engine = self._opener(model, spec.backend, spec.threads, spec.host_code_allowed)
        return activate(rung, spec, engine, self.kernel_dir)

    def _start_build(self, rung: int, spec: EngineRung) -> None:
        def done(report: BuildReport, engine) -> None:  # on the build thread
            with self._wake:
                self._arrived.append((rung, spec, report, engine))
                self._wake.notify()

        self.builds[spec.name] = self._build_later(spec, done, self._progressed.set)

    def _build_later(self, spec: EngineRung, done: Callable[[BuildReport, object], None],
                     progressed: Callable[[], None] = lambda: None) -> BuildReport:
        """Build the rung's ONNX model into a TensorRT plan on a background thread, checked
        against ONNX Runtime on the cameras' frames; `done(report, engine-or-None)`."""
        model = Path(spec.model)
        return self.cache.build_later(
            model, spec.precision,
            lambda path: open_engine(path, "tensorrt", host_code_allowed=spec.host_code_allowed),
            lambda: open_engine(model, "onnxruntime"), self._check_frames, done,
            spec.dla_core, progressed)

    def prepare(self, spec: EngineRung, done: Callable[[object | None, str], None]) -> None:
        """Open another model for a rung on a background thread (building its TensorRT plan
        first where needed) while the ladder serves on; `done(engine, "")` or `done(None,
        why)` is called from that thread."""
        model = Path(spec.model)

        def open_it() -> None:
            try:
                if spec.backend == "tensorrt" and model.suffix == ".onnx":
                    cached = self.cache.find(model, spec.precision, spec.dla_core)
                    if cached is None:
                        self._build_later(spec, lambda report, engine: done(
                            engine, "" if engine else
                            f"engine build {report.state}: {report.detail}"))
                        return
                    engine = open_engine(cached, "tensorrt",
                                         host_code_allowed=spec.host_code_allowed)
                else:
                    engine = self._opener(model, spec.backend, spec.threads,
                                          spec.host_code_allowed)
            except EdgeswinError as exc:
                done(None, str(exc))
            except Exception as exc:  # a file no check foresaw must not stop the daemon
                log.exception("opening %s", model)
                done(None, f"{type(exc).__name__}: {exc}")
            else:
                done(engine, "")

        threading.Thread(target=open_it, name=f"open-{model.stem}", daemon=True).start()

    def prune_plans(self, models: dict[str, list[Path]]) -> None:
        """Keep only the built plans of `models` (rung name -> the ONNX files it serves or
        may roll back to) for this TensorRT release; nothing to do without TensorRT rungs."""
        keep = {self.cache.plan_path(model, spec.precision, spec.dla_core)
                for spec in self.specs if spec.backend == "tensorrt"
                for model in models.get(spec.name, []) if model.suffix == ".onnx"}
        if keep:
            for plan in self.cache.prune(keep):
                log.info("engine plan %s deleted: no rung serves or rolls back to its model",
                         plan.name)

    def stop_builds(self) -> None:
        """Cancel running builds and wait for them to reach their next step (at exit); each
        one's report then says `cancelled`."""
        if not self._stopped:
            self._stopped = True
            if not self.cache.stop(timeout=BUILD_STOP_S):
                log.warning("an engine build is still running; exiting without waiting for it")

    def close(self) -> None:
        """Stop running builds at their next step and free every rung's GPU objects (at exit),
        on this thread, whichever thread made them."""
        self.stop_builds()
        with self._wake:
            arrived, self._arrived = self._arrived, []
        for _rung, _spec, _report, engine in arrived:  # built, never adopted
            if engine is not None:
                close_engine(engine)
        for active in self.rungs:
            if active:
                close_engine(active.engine)

    def adopt(self) -> list[tuple[int, EngineRung, BuildReport]]:
        """Between frames: put finished builds on the ladder. Returns every build that ended
        since the last call; its rung is still None where the build or activation failed."""
        with self._wake:
            arrived, self._arrived = self._arrived, []
        ended = []
        for rung, spec, report, engine in arrived:
            self.builds[spec.name] = report
            log.log(logging.INFO if engine or report.state == "cancelled" else logging.ERROR,
                    "engine build for rung %d (%s) "
                    "%s in %ss: %s", rung, spec.name, report.state, report.seconds,
                    report.detail, extra={"ENGINE": spec.name})
            if engine is not None and self.rungs[rung] is not None:
                # A rollout put a model on the rung while its old one was building: the
                # newer one serves on.
                close_engine(engine)
                report.detail += "; not used: the rung got another model meanwhile"
                continue
            if engine is not None:
                try:
                    self.rungs[rung] = activate(rung, spec, engine, self.kernel_dir)
                except Exception as exc:  # a GPU failing now must not stop the loop
                    close_engine(engine)
                    report.state = "failed"
                    report.detail = str(exc) if isinstance(exc, EdgeswinError) \
                        else f"{type(exc).__name__}: {exc}"
            ended.append((rung, spec, report))
        return ended
