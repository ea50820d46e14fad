"""One camera's health, judged frame by frame on its own clock: the video's own time for a file
read as fast as it decodes (`realtime: false`), the time of capture otherwise.

Takes `Signals` and hands on a change (or None): the problems now raised, each with the frame
that raised it. A condition must hold for its `*_after_s` before it is raised, and be gone for
`clear_after_s` before it clears, so a passing truck or a light switched on raises nothing.

`covered` and `frozen` are judged from the first frame (a flat view, a repeated picture need
no normal; `frozen` over a window of frame-to-frame changes, see `frozen`); `blurred` and
`moved` once the camera's normal is learned: over `learn_s` of frames that were neither, the
median contrast and sharpness, how much the picture changes from frame to frame, and the
reference view (the median thumbnail: what stays put while things come and go) with how alike
each frame was to it. A camera whose learned frames are not alike to their reference (its
whole view changes) is not judged `blurred` or `moved`: it has no view of its own to lose.

`drift` (see `drift`) is judged on frames that show none of the others, and raised as soon as
the recent window shows it (the window is its hold); it clears after `clear_after_s` like the
rest. A normal or a baseline learned here, or kept from before (`store`), is handed on through
`learned_now` so the board can keep it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from ..config import HealthConfig
from ..config.health import KINDS
from .drift import Baseline, Drift
from .frozen import FrozenWindow, same_level
from .signals import THUMB, Signals, change, likeness

FLAT = 6.0  # grey levels of standard deviation: below this a view is flat whatever its normal
COVERED_OF_NORMAL = 0.25  # ... or below this fraction of the camera's own contrast
BLURRED_OF_NORMAL = 0.3  # sharpness below this fraction of the camera's own
MOVED_BELOW_NORMAL = 0.35  # likeness to the reference this far below its normal ...
MOVED_AT_MOST = 0.5  # ... and at most this
FIXED_VIEW = 0.5  # learned frames at least this alike to their reference: a camera that stays put


@dataclass
class Problem:
    kind: str
    since: float  # wall time of the first frame that showed it
    frame_index: int  # the frame that raised it
    detail: str

    def as_dict(self, iso) -> dict:
        return {"kind": self.kind, "since": iso(self.since), "frame_index": self.frame_index,
                "detail": self.detail}


@dataclass
class _Hold:
    seen_at: float | None = None  # clock time the condition began (or ended, while raised)
    first_wall: float = 0.0
    raised: Problem | None = None


@dataclass
class Normal:
    contrast: float
    sharpness: float
    reference: np.ndarray
    likeness: float
    change: float | None = None  # median frame-to-frame change while learned (its quiet)

    def as_dict(self) -> dict:
        return {"contrast": self.contrast, "sharpness": self.sharpness, "likeness": self.likeness,
                "change": self.change, "reference": np.round(self.reference, 2).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normal:
        """ValueError, KeyError or TypeError for anything but what `as_dict` wrote."""
        reference = np.asarray(d["reference"], np.float32)
        if reference.shape != THUMB[::-1] or not np.isfinite(reference).all():
            raise ValueError(f"a reference view of shape {reference.shape}")
        change = d.get("change")  # kept before it was learned: the default level
        return cls(float(d["contrast"]), float(d["sharpness"]), reference, float(d["likeness"]),
                   None if change is None else float(change))


@dataclass
class CameraJudge:
    cfg: HealthConfig
    normal: Normal | None = None
    baseline: Baseline | None = None  # a drift baseline kept from before, if any
    learned_now: bool = False  # a normal or a drift baseline was just learned: keep it
    drift: Drift | None = field(init=False, default=None)
    healthy: bool = field(init=False, default=False)  # the last judged frame showed nothing
    _learning: list[Signals] = field(default_factory=list)
    _learning_changes: list[float] = field(default_factory=list)
    _frozen: FrozenWindow = field(init=False)
    _learn_from: float | None = None
    _last: Signals | None = None
    _holds: dict[str, _Hold] = field(default_factory=lambda: {k: _Hold() for k in KINDS})

    def __post_init__(self):
        self._frozen = FrozenWindow(self.cfg.frozen_after_s)
        if self.cfg.drift.enabled:
            self.drift = Drift(self.cfg.drift, self.baseline)

    def answer(self, clock: float, label: str, score: float, engine: str) -> None:
        """A classification of this camera: counted for drift while the camera is healthy."""
        if self.drift is not None and self.healthy:
            self.drift.answer(clock, label, score, engine)

    def judge(self, s: Signals, clock: float, wall: float, index: int
              ) -> tuple[bool, list[Problem]]:
        """(changed, the problems raised now) for one frame."""
        moved_by = change(s.thumb, self._last.thumb) if self._last is not None else None
        conditions = self._conditions(s, clock, moved_by)
        self._learn(s, clock, conditions, moved_by)
        self._last = s
        self.healthy = not any(holds for holds, _ in conditions.values())
        if self.drift is not None:
            if self.healthy:
                self.drift.frame(clock, s)
                conditions["drift"] = self.drift.check(clock)
                if self.drift.learned_now:
                    self.drift.learned_now, self.learned_now = False, True
            else:  # another problem explains the view: drift neither raised nor cleared
                conditions["drift"] = (self._holds["drift"].raised is not None, "")
        changed = False
        for kind, (holds, detail) in conditions.items():
            hold = self._holds[kind]
            after = self._after(kind)
            if hold.raised is None:
                if not holds:
                    hold.seen_at = None
                    continue
                if hold.seen_at is None:
                    hold.seen_at, hold.first_wall = clock, wall
                if clock - hold.seen_at >= after:
                    hold.raised = Problem(kind, hold.first_wall, index, detail)
                    hold.seen_at = None
                    changed = True
            elif holds:
                hold.seen_at = None  # still there: the clearing starts again
            else:
                if hold.seen_at is None:
                    hold.seen_at = clock
                if clock - hold.seen_at >= self.cfg.clear_after_s:
                    hold.raised, hold.seen_at = None, None
                    changed = True
        return changed, [h.raised for h in self._holds.values() if h.raised is not None]

    def _conditions(self, s: Signals, clock: float, moved_by: float | None
                    ) -> dict[str, tuple[bool, str]]:
        normal = self.normal
        flat_below = max(FLAT, COVERED_OF_NORMAL * normal.contrast) if normal else FLAT
        covered = s.contrast < flat_below
        frozen, why = self._frozen_now(covered, clock, moved_by)
        out = {"covered": (covered, f"contrast {s.contrast:.1f} (flat below {flat_below:.1f})"),
               "frozen": (frozen, why)}
        if normal is None or normal.likeness < FIXED_VIEW:
            # Not learned yet, or a view that changes as a whole (a camera that pans, a feed
            # that cuts between scenes): it has no normal sharpness or reference to leave.
            out["blurred"] = out["moved"] = (False, "")
            return out
        blurred = not covered and s.sharpness < BLURRED_OF_NORMAL * normal.sharpness
        alike = likeness(s.thumb, normal.reference)
        moved_below = min(MOVED_AT_MOST, normal.likeness - MOVED_BELOW_NORMAL)
        moved = not covered and alike < moved_below
        out["blurred"] = (blurred, f"sharpness {s.sharpness:.0f}, normal "
                                   f"{normal.sharpness:.0f}")
        out["moved"] = (moved, f"likeness to the reference view {alike:.2f}, normal "
                               f"{normal.likeness:.2f}")
        return out

    def _after(self, kind: str) -> float:
        """How long a condition must hold before it is raised. Drift's window is its hold;
        frozen's window of `frozen_after_s` turns once half of it is the same picture, so half
        of it more makes the hold `frozen_after_s` from the first repeated picture."""
        if kind == "frozen":
            return self.cfg.hold_s("frozen") / 2
        return self.cfg.hold_s(kind)

    def _frozen_now(self, covered: bool, clock: float, moved_by: float | None
                    ) -> tuple[bool, str]:
        if covered:  # a flat view is covered, not frozen: the window starts again after it
            self._frozen.reset()
            return False, ""
        if moved_by is not None:
            self._frozen.add(clock, moved_by)
        median = self._frozen.median(clock)
        same = same_level(self.normal.change if self.normal else None)
        if median is None:
            return False, ""
        return median < same, (f"the picture barely changes: median change {median:.3f} grey "
                               f"levels over {self.cfg.frozen_after_s:g} s (the same picture "
                               f"below {same:.3f})")

    def _learn(self, s: Signals, clock: float, conditions: dict,
               moved_by: float | None) -> None:
        if self.normal is not None or conditions["covered"][0] or conditions["frozen"][0]:
            return
        if self._learn_from is None:
            self._learn_from = clock
        self._learning.append(s)
        if moved_by is not None:
            self._learning_changes.append(moved_by)
        if clock - self._learn_from < self.cfg.learn_s or len(self._learning) < 5:
            return
        reference = np.median(np.stack([x.thumb for x in self._learning]), axis=0)
        self.normal = Normal(
            statistics.median(x.contrast for x in self._learning),
            statistics.median(x.sharpness for x in self._learning), reference,
            statistics.median(likeness(x.thumb, reference) for x in self._learning),
            statistics.median(self._learning_changes) if self._learning_changes else None)
        self._learning, self._learning_changes, self.learned_now = [], [], True
