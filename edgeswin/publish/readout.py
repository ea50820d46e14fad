"""What `<root>/stats` (`report.stats_payload`) and `/metrics` (`metrics.Metrics`) read of a
running device: one typed view the daemon builds once, instead of the whole daemon. The parts
that live as long as the daemon are held; what the start, a reload or a rung switch replaces
is read through a callable, so the view never goes stale."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..canary.run import Result
from ..classify.finisher import HandOffPolicy
from ..classify.schedule import CameraRuntime
from ..engine.ladder import ActiveEngine, EngineLadder
from ..govern.governor import Governor
from ..govern.sensors import LatencyWindows
from ..health.board import HealthBoard
from ..rollout.rollouts import ModelRollouts
from .mqtt import Publisher


class Serves(Protocol):
    """What serves, as the daemon's `serving.Serving` holds it once an engine serves."""
    active: ActiveEngine
    switches: int  # rung switches since start
    canary_last: Result | None  # the serving engine's latest canary run

    def levels(self) -> dict[str, int]: ...  # each fallback lever's level


@dataclass(frozen=True)
class Readout:
    started_mono: float  # time.monotonic() at the daemon's start
    cameras: Callable[[], list[CameraRuntime]]  # the running cameras
    serving: Callable[[], Serves | None]  # None before an engine serves
    hand_off: HandOffPolicy  # the finisher's: whether tails run on its thread
    ladder: EngineLadder
    rollouts: ModelRollouts
    governor: Governor
    latency: LatencyWindows
    health: HealthBoard
    publisher: Publisher

    def active(self) -> ActiveEngine | None:
        return s.active if (s := self.serving()) else None

    def levels(self) -> dict[str, int]:
        return s.levels() if (s := self.serving()) else {}

    def switches(self) -> int:
        return s.switches if (s := self.serving()) else 0

    def canary_last(self) -> Result | None:
        return s.canary_last if (s := self.serving()) else None
