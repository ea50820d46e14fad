"""Deciding only: which lever to pull when the device is hot or slow, and which to let go
when it has recovered.

Pure: driven by `Readings` (a clock value, temperatures, the active rung's p95 latency), so it
is tested with scripted traces and a fake clock. Hands on an `Action` (lever, from level, to
level, reason, readings) or None. The levers, in `fallback.levers` order (default fps, rung):
- `fps`: the cameras' rates one step (of `fps_steps`) toward their `min_fps`;
- `rung`: the next usable smaller engine (DLA builds are not rungs of this lever);
- `dla`: the active rung's DLA build, when the ladder has one;
- `power_mode`: the next of `power_modes` (nvpmodel).
Every lever's level grows as it saves: fps step, rung index, 1 on the DLA, power mode index.
Rules:
- step down when the hottest selected zone is above `degrade_above_c`, the p95 inference time
  is over the device's `latency_budget_ms`, or a camera's p95 capture-to-publish time is over
  its own `latency_budget_ms`, continuously for `hold_s`: the first lever in order that can
  still go down moves one step;
- step up when the hottest zone has been below `recover_below_c` (hysteresis) and latency
  within budget for `cooldown_s`: the last lever in order that is down moves back one step,
  so recovery undoes the levers in reverse; a rung left for being slow is retried only after
  `latency_retry_s`, so a model that cannot meet the budget is not re-tried every cooldown;
- never act within `min_dwell_s` of the last action; a pinned rung moves neither rung nor dla;
- thermal zones that were configured but now read nothing hold everything (no step up blind);
- an engine that answers its canary wrong is not usable (`drop`), and is stepped away from at
  once when it serves, whatever the dwell, until it passes again (`adopt`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import FallbackConfig
from ..config.fallback import LEVERS


@dataclass(frozen=True)
class Readings:
    now: float  # seconds, any monotonic clock
    temps: dict[str, float] = field(default_factory=dict)
    latency_p95_ms: float | None = None  # inference, of the active rung
    # Cameras over their own capture-to-publish budget: name -> (p95 ms, budget ms).
    slow_cameras: dict[str, tuple[float, float]] = field(default_factory=dict)
    watts: dict[str, float] = field(default_factory=dict)  # power rails, reported only

    def as_dict(self) -> dict:
        out = {"temps_c": dict(self.temps), "latency_p95_ms": self.latency_p95_ms}
        if self.slow_cameras:
            out["slow_cameras"] = {name: {"p95_ms": round(p95, 2), "budget_ms": budget}
                                   for name, (p95, budget) in self.slow_cameras.items()}
        if self.watts:
            out["watts"] = {rail: round(w, 3) for rail, w in self.watts.items()}
        return out


@dataclass(frozen=True)
class Action:
    """One lever moved one step: `to > frm` saves (a step down), `to < frm` restores."""

    lever: str
    frm: int
    to: int
    reason: str
    readings: Readings

    @property
    def down(self) -> bool:
        return self.to > self.frm


class FallbackPolicy:
    def __init__(self, cfg: FallbackConfig, rungs: int, now: float, thermal: bool,
                 start: int = 0, *, fps_steps: int = 0, power_modes: int = 0,
                 twins: dict[int, int] | None = None, usable: set[int] | None = None):
        """`rungs`: engines in the ladder; `twins`: rung -> its DLA build (only with the dla
        lever); `usable`: engines that loaded (default all); `fps_steps` / `power_modes`:
        how far those levers can go (0: not available, e.g. no camera has a min_fps)."""
        self.cfg = cfg
        self.thermal = thermal  # were any zones found at start?
        self.twins = dict(twins or {}) if "dla" in cfg.levers else {}
        self.main = [i for i in range(rungs) if i not in self.twins.values()]
        self.usable = set(range(rungs)) if usable is None else set(usable)
        pinned = cfg.pinned_rung is not None
        self.rung = cfg.pinned_rung if pinned else start
        self.limits = {"fps": fps_steps, "power_mode": power_modes,
                       "dla": 0 if pinned or not self.twins else 1,
                       "rung": 0 if pinned else len(self.main) - 1}
        if set(self.limits) != set(LEVERS):  # a lever added to the config but not here
            raise ValueError(f"levers without a limit: {set(LEVERS) ^ set(self.limits)}")
        self.level = {lever: 0 for lever in LEVERS if lever != "rung"}  # rung: self.rung
        self.levers: list[str] = []
        self.set_limit("fps", fps_steps)
        self._last_switch = now
        self._bad_since: float | None = None
        self._good_since: float | None = None
        self._left_slow: dict[int, float] = {}  # rung -> when it was left for being slow

    def set_limit(self, lever: str, limit: int) -> None:
        """How far a lever may go (a reload can add the first camera with a min_fps); a lever
        that is down stays usable so that it can come back up."""
        self.limits[lever] = limit
        self.levers = [lv for lv in self.cfg.levers
                       if self.limits[lv] > 0 or self.level.get(lv, 0) > 0]

    # --- what each lever can do --------------------------------------------------------
    @property
    def serving(self) -> int:
        """The engine to serve: the rung, or its DLA build while the dla lever is down."""
        twin = self.twins.get(self.rung)
        return twin if self.level["dla"] and twin in self.usable else self.rung

    def _rung_towards(self, step: int) -> int | None:
        """The next usable rung of the rung lever below (step 1) or above (step -1)."""
        candidates = [i for i in self.main if i in self.usable and (i - self.rung) * step > 0]
        if not candidates:
            return None
        return min(candidates) if step > 0 else max(candidates)

    def _target(self, lever: str, step: int) -> int | None:
        """The lever's level after one step down (1) or up (-1), or None if it cannot move."""
        if lever == "rung":
            return self._rung_towards(step)
        if lever == "dla" and step > 0 and self.twins.get(self.rung) not in self.usable:
            return None
        level = self.level[lever] + step
        return level if 0 <= level <= self.limits[lever] else None

    def levels(self) -> dict[str, int]:
        """Every available lever's level (0 = untouched; the rung lever's is the rung)."""
        return {lever: self.rung if lever == "rung" else self.level[lever]
                for lever in self.levers}

    def may_step_up(self, temps: dict[str, float]) -> bool:
        """Whether a step up outside the normal cadence (a freshly built engine) is allowed:
        not pinned, and not above the degrade threshold."""
        return self.cfg.pinned_rung is None and not (
            temps and max(temps.values()) > self.cfg.degrade_above_c)

    def adopt(self, engine: int, r: Readings, detail: str) -> Action | None:
        """An engine became usable (a build finished): a rung above the current one is served
        at once when the device allows it."""
        self.usable.add(engine)
        if (engine in self.main and engine < self.rung and "rung" in self.levers
                and self.may_step_up(r.temps)):
            return self._act("rung", engine, detail, r)
        return None

    def drop(self, engine: int, r: Readings, reason: str) -> Action | None:
        """An engine answers wrong (its canary): not usable until it passes again (`adopt`).
        Served now: step to the next usable rung below, else above; a pinned rung stays."""
        self.usable.discard(engine)
        if engine != self.serving or self.cfg.pinned_rung is not None:
            return None
        if self.twins.get(self.rung) == engine:  # its DLA build: back to the GPU rung
            return self._act("dla", 0, reason, r)
        to = self._rung_towards(1)
        to = to if to is not None else self._rung_towards(-1)
        return self._act("rung", to, reason, r) if to is not None else None

    # --- the decision ------------------------------------------------------------------
    def update(self, r: Readings) -> Action | None:
        cfg = self.cfg
        hottest = max(r.temps.values()) if r.temps else None
        hot = hottest is not None and hottest > cfg.degrade_above_c
        budget = cfg.latency_budget_ms
        slow_engine = (budget is not None and r.latency_p95_ms is not None
                       and r.latency_p95_ms > budget)
        slow = slow_engine or bool(r.slow_cameras)
        dwelt = r.now - self._last_switch >= cfg.min_dwell_s

        if hot or slow:
            self._good_since = None
            if self._bad_since is None:
                self._bad_since = r.now
            if r.now - self._bad_since < cfg.hold_s or not dwelt:
                return None
            lever, to = next(((lv, t) for lv in self.levers
                              if (t := self._target(lv, 1)) is not None), (None, None))
            if lever is None:
                return None  # every lever is already down as far as it goes
            if hot:
                reason = (f"hot: {hottest:.1f} C above degrade_above_c "
                          f"{cfg.degrade_above_c:g} for {cfg.hold_s:g}s")
            elif slow_engine:
                reason = (f"slow: p95 inference {r.latency_p95_ms:.1f} ms over the "
                          f"{budget:g} ms budget for {cfg.hold_s:g}s")
            else:
                name, (p95, cam_budget) = sorted(r.slow_cameras.items())[0]
                reason = (f"slow: camera {name} p95 capture-to-publish {p95:.1f} ms over "
                          f"its {cam_budget:g} ms budget for {cfg.hold_s:g}s")
            if slow and lever == "rung":
                self._left_slow[self.rung] = r.now
            return self._act(lever, to, reason, r)

        self._bad_since = None
        blind = self.thermal and hottest is None
        cool = hottest is None or hottest < cfg.recover_below_c
        lever, to = next(((lv, t) for lv in reversed(self.levers)
                          if (t := self._target(lv, -1)) is not None), (None, None))
        retry_wait = lever == "rung" and \
            r.now - self._left_slow.get(to, float("-inf")) < cfg.latency_retry_s
        if lever is None or blind or not cool or retry_wait:
            self._good_since = None
            return None
        if self._good_since is None:
            self._good_since = r.now
        if r.now - self._good_since >= cfg.cooldown_s and dwelt:
            temp = f"{hottest:.1f} C below {cfg.recover_below_c:g}" if hottest is not None \
                else "no thermal limit"
            latency = " and latency within budget" if budget is not None else ""
            return self._act(lever, to, f"recovered: {temp}{latency} for {cfg.cooldown_s:g}s", r)
        return None

    def undo(self, action: Action) -> None:
        """The lever could not be moved after all (a power mode that did not take): put its
        level back, keeping the dwell so it is not retried at once."""
        if action.lever == "rung":
            self.rung = action.frm
        else:
            self.level[action.lever] = action.frm

    def _act(self, lever: str, to: int, reason: str, r: Readings) -> Action:
        frm = self.rung if lever == "rung" else self.level[lever]
        if lever == "rung":
            self.rung = to
        else:
            self.level[lever] = to
        self._last_switch = r.now
        self._bad_since = self._good_since = None
        return Action(lever, frm, to, reason, r)
