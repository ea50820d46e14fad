"""TensorRT engines built on the device and kept in the state dir, keyed by everything that
makes a plan invalid (ONNX sha256, TensorRT version, GPU, precision, input spec).

`EngineCache.find()` hands on a cached plan to load now; `EngineCache.build_later()` builds a
missing one on a background thread, checks that the new engine agrees with ONNX Runtime on a
few frames, and hands the loaded engine to a callback — the daemon serves another rung
meanwhile and switches when it arrives. Nothing is rebuilt on a normal restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgeswinError
from .build import BuildCancelled, build_engine, cached_engine_path, device_identity, timing_cache_path

log = logging.getLogger(__name__)


BUILD_STATES = ("building", "ready", "failed", "rejected", "cancelled")


@dataclass
class BuildReport:
    """What `<root>/engine` says about a build (retained, so late subscribers see it too)."""

    state: str  # one of BUILD_STATES
    engine: str  # the path of the plan
    detail: str = ""
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    step: str = ""  # the latest progress message

    def as_dict(self) -> dict:
        said = {"state": self.state, "engine": self.engine, "detail": self.detail,
                "seconds": self.seconds, "step": self.step}
        if self.state == "building":
            said["elapsed_s"] = round(time.monotonic() - self.started, 1)
        return said


class EngineCache:
    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "engines"
        self._identity: dict | None = None
        self.cancel = threading.Event()  # set at shutdown: builds stop at their next step
        self.threads: list[threading.Thread] = []

    def plan_path(self, onnx: Path, precision: str, dla_core: int | None = None) -> Path:
        if self._identity is None:
            self._identity = device_identity()  # BackendUnavailable without TensorRT
        return cached_engine_path(self.dir.parent, onnx, precision, self._identity, dla_core)

    def find(self, onnx: Path, precision: str, dla_core: int | None = None) -> Path | None:
        path = self.plan_path(onnx, precision, dla_core)
        return path if path.is_file() else None

    def build_later(self, onnx: Path, precision: str, load: Callable[[Path], object],
                    reference: Callable[[], object], frames: Callable[[], list[np.ndarray]],
                    done: Callable[[BuildReport, object | None], None],
                    dla_core: int | None = None,
                    progressed: Callable[[], None] = lambda: None) -> BuildReport:
        """Start the build thread; `done(report, engine-or-None)` is called from it, and
        `progressed()` each time `report.step` changes."""
        path = self.plan_path(onnx, precision, dla_core)
        target = precision if dla_core is None else f"{precision} on DLA core {dla_core}"
        report = BuildReport("building", str(path), f"{onnx.name} -> {target}")
        thread = threading.Thread(target=self._build, name=f"build-{onnx.stem}", daemon=True,
                                  args=(onnx, precision, dla_core, path, load, reference, frames,
                                        done, report, progressed))
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return report

    def prune(self, keep: set[Path]) -> list[Path]:
        """Delete plans (and their sidecars) other than `keep`: those of models no rung serves
        or could roll back to any more, and those another TensorRT release built. A model
        updated weekly would otherwise leave a plan a week, tens of MB each, for good. Returns
        what was deleted; the timing caches stay."""
        gone = []
        for plan in self.dir.glob("*.engine") if self.dir.is_dir() else ():
            if plan not in keep:
                plan.unlink(missing_ok=True)
                plan.with_suffix(".json").unlink(missing_ok=True)
                gone.append(plan)
        return gone

    def stop(self, timeout: float) -> bool:
        """Cancel running builds and wait up to `timeout` s for their threads; False if one is
        still running (TensorRT 8.6 cannot be interrupted mid-build)."""
        self.cancel.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0))
        return not any(t.is_alive() for t in self.threads)

    def _build(self, onnx, precision, dla_core, path, load, reference, frames, done,
               report, progressed) -> None:
        t0 = time.monotonic()
        engine = None

        def progress(message: str) -> None:
            log.info("engine build: %s", message)
            report.step = message
            progressed()

        try:
            build_engine(onnx, path, precision, dla_core=dla_core,
                         timing_cache=timing_cache_path(self.dir, self._identity),
                         progress=progress, cancel=self.cancel)
            progress("loading the engine and checking it against ONNX Runtime")
            engine = load(path)
            agree, worst = agreement(engine, reference(), frames())
            if agree < 1.0:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                engine.close()  # its GPU memory, now and on this thread
                report.state, engine = "rejected", None
                report.detail = (f"top-1 agreed with ONNX Runtime on {agree:.0%} of the check "
                                 f"frames (max |diff| {worst:.3g}); not used, not cached")
            else:
                report.state = "ready"
                report.detail = (f"agrees with ONNX Runtime on every check frame (max |diff| "
                                 f"{worst:.3g})")
        except BuildCancelled as exc:
            log.info("engine build: %s", exc)
            report.state, report.detail, engine = "cancelled", str(exc), None
        except EdgeswinError as exc:
            report.state, report.detail, engine = "failed", str(exc), None
        except Exception as exc:  # a build must never take the daemon down
            log.exception("engine build crashed")
            report.state, report.detail, engine = "failed", f"{exc.__class__.__name__}: {exc}", None
        report.seconds = round(time.monotonic() - t0, 1)
        done(report, engine)


def agreement(engine, reference, images: list[np.ndarray]) -> tuple[float, float]:
    """Share of images with the same top-1 through both engines, and the largest score diff.
    Each engine gets the input its own spec asks for (e.g. FP16 I/O)."""
    from ..prepare.preprocess import Preprocessor

    ours, theirs = Preprocessor(engine.info.input), Preprocessor(reference.info.input)
    same, worst = 0, 0.0
    for image in images:
        a, b = engine.infer(ours(image)), reference.infer(theirs(image))
        same += int(a.argmax() == b.argmax())
        worst = max(worst, float(np.abs(a - b).max()))
    return same / max(len(images), 1), worst
