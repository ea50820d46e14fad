"""The canary's rounds: every `interval_s`, the serving engine and then each engine that
answered wrong before (to learn when it is right again), one image per call of `step`, so that
a due frame waits at most one inference.

Hands on a `Result` when an engine's images are done: each image whose top-1 was not its
folder's label (an engine that raises counts as wrong), the mean milliseconds an image took
(preprocess, engine, top-1), and whether the engine was failing before. Its images are
prepared the CPU's way (`ActiveEngine.own_preprocess`): they never steer which way the
cameras' frame sizes go, nor keep GPU buffers of their own size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import CanaryConfig, EngineRung
from ..engine.ladder import ActiveEngine
from .images import CanaryImages, Image


@dataclass
class Result:
    rung: int
    engine: str
    model: str
    checked: int
    wrong: list[dict]  # {"image", "expected", "got"}
    latency_ms: float
    recovered: bool = False  # it answered wrong before, and right now

    @property
    def ok(self) -> bool:
        return not self.wrong

    def why(self) -> str:
        return ", ".join(f"{w['image']}: {w['got']} (expected {w['expected']})"
                         for w in self.wrong[:3]) + (" ..." if len(self.wrong) > 3 else "")

    def payload(self, ts: str) -> dict:
        return {"ok": self.ok, "ts": ts, "rung": self.rung, "engine": self.engine,
                "model": self.model, "checked": self.checked, "wrong": self.wrong,
                "latency_ms": round(self.latency_ms, 3)}


@dataclass
class _Run:
    active: ActiveEngine
    todo: list[Image]
    checked: int = 0
    wrong: list[dict] = field(default_factory=list)
    ms: float = 0.0


def top1(output, labels: tuple[str, ...]) -> str:
    """The postprocessor's top-1 without smoothing or threshold: the largest score (softmax
    keeps the order); a score that is not a number is `unknown`, as for a camera."""
    values = output.reshape(-1).tolist()
    if not values or not all(map(math.isfinite, values)):
        return "unknown"
    best = max(range(len(values)), key=values.__getitem__)
    return labels[best] if best < len(labels) else f"output {best}"


class Canary:
    def __init__(self, cfg: CanaryConfig, specs: Callable[[], list[EngineRung]], now: float):
        self.cfg, self.specs = cfg, specs
        self.images = CanaryImages(cfg)
        self.next_at = now  # the first round in the first spare time
        self.failing: dict[int, str] = {}  # rung -> why, until it passes again
        self._queue: list[int] = []
        self._run: _Run | None = None

    def overdue(self, now: float) -> bool:
        """No spare time for a whole interval past due: run between frames all the same."""
        return now - self.next_at >= self.cfg.interval_s

    def step(self, now: float, rungs: list[ActiveEngine | None], serving: ActiveEngine
             ) -> tuple[bool, Result | None]:
        """(an image was run, the result of an engine whose images are done)."""
        if self._run is None:
            if not self._queue:
                if now < self.next_at:
                    return False, None
                self.next_at = now + self.cfg.interval_s
                self._queue = [serving.rung] + sorted(r for r in self.failing
                                                      if r != serving.rung)
            rung = self._queue.pop(0)
            active = rungs[rung] if rung < len(rungs) else None
            if active is None:  # gone from the ladder (a failed build, a reload)
                self.failing.pop(rung, None)
                return False, None
            spec = self.specs()[rung]
            images = self.images.for_engine(Path(spec.model), active.engine.info)
            if not images:
                return False, None
            self._run = _Run(active, list(images))
        return True, self._one(rungs)

    def _one(self, rungs: list[ActiveEngine | None]) -> Result | None:
        run = self._run
        active = run.active
        if rungs[active.rung] is not active:  # replaced meanwhile: its round is void
            self._run = None
            return None
        name, expected, image = run.todo.pop(0)
        t0 = time.perf_counter()
        try:
            got = top1(active.engine.infer(active.own_preprocess(image)), active.engine.info.labels)
        except Exception as exc:  # an engine that raises answers wrong
            got = f"error: {type(exc).__name__}: {exc}"[:200]
        run.ms += (time.perf_counter() - t0) * 1000
        run.checked += 1
        if got != expected:
            run.wrong.append({"image": name, "expected": expected, "got": got})
        if run.todo:
            return None
        self._run = None
        result = Result(active.rung, active.name, active.engine.info.name, run.checked,
                        run.wrong, run.ms / run.checked)
        if result.ok:
            result.recovered = self.failing.pop(active.rung, None) is not None
        else:
            self.failing[active.rung] = result.why()
        return result
