"""Deciding only: when to step down the engine ladder and when to step back up.

Pure: driven by `Readings` (a clock value, temperatures, the active rung's p95 latency), so it
is tested with scripted traces and a fake clock. Hands on a `Switch` (from, to, reason,
readings) or None. Rules:
- step down one rung when the hottest selected zone is above `degrade_above_c`, the p95
  inference time is over the device's `latency_budget_ms`, or a camera's p95 capture-to-publish
  time is over its own `latency_budget_ms`, continuously for `hold_s`;
- step up one rung when the hottest zone has been below `recover_below_c` (hysteresis) and
  latency within budget for `cooldown_s`; a rung left for being slow is retried only after
  `latency_retry_s`, so a model that cannot meet the budget is not re-tried every cooldown;
- never switch within `min_dwell_s` of the last switch; a pinned rung never switches;
- thermal zones that were configured but now read nothing hold the rung (no step up blind).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import FallbackConfig


@dataclass(frozen=True)
class Readings:
    now: float  # seconds, any monotonic clock
    temps: dict[str, float] = field(default_factory=dict)
    latency_p95_ms: float | None = None  # inference, of the active rung
    # Cameras over their own capture-to-publish budget: name -> (p95 ms, budget ms).
    slow_cameras: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"temps_c": dict(self.temps), "latency_p95_ms": self.latency_p95_ms}
        if self.slow_cameras:
            out["slow_cameras"] = {name: {"p95_ms": round(p95, 2), "budget_ms": budget}
                                   for name, (p95, budget) in self.slow_cameras.items()}
        return out


@dataclass(frozen=True)
class Switch:
    from_rung: int
    to_rung: int
    reason: str
    readings: Readings


class FallbackPolicy:
    def __init__(self, cfg: FallbackConfig, rungs: int, now: float, thermal: bool,
                 start: int = 0):
        self.cfg = cfg
        self.rungs = rungs
        self.thermal = thermal  # were any zones found at start?
        self.rung = cfg.pinned_rung if cfg.pinned_rung is not None else start
        self._last_switch = now
        self._bad_since: float | None = None
        self._good_since: float | None = None
        self._left_slow: dict[int, float] = {}  # rung -> when it was left for being slow

    def may_step_up(self, temps: dict[str, float]) -> bool:
        """Whether a step up outside the normal cadence (a freshly built engine) is allowed:
        not pinned, and not above the degrade threshold."""
        return self.cfg.pinned_rung is None and not (
            temps and max(temps.values()) > self.cfg.degrade_above_c)

    def update(self, r: Readings) -> Switch | None:
        cfg = self.cfg
        if cfg.pinned_rung is not None:
            return None
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
            if r.now - self._bad_since >= cfg.hold_s and dwelt and self.rung < self.rungs - 1:
                if hot:
                    reason = (f"hot: {hottest:.1f} C above degrade_above_c "
                              f"{cfg.degrade_above_c:g} for {cfg.hold_s:g}s")
                elif slow_engine:
                    reason = (f"slow: p95 inference {r.latency_p95_ms:.1f} ms over the "
                              f"{budget:g} ms budget for {cfg.hold_s:g}s")
                    self._left_slow[self.rung] = r.now
                else:
                    name, (p95, cam_budget) = sorted(r.slow_cameras.items())[0]
                    reason = (f"slow: camera {name} p95 capture-to-publish {p95:.1f} ms over "
                              f"its {cam_budget:g} ms budget for {cfg.hold_s:g}s")
                    self._left_slow[self.rung] = r.now
                return self._switch(self.rung + 1, reason, r)
            return None

        self._bad_since = None
        blind = self.thermal and hottest is None
        cool = hottest is None or hottest < cfg.recover_below_c
        upper = self.rung - 1
        retry_wait = r.now - self._left_slow.get(upper, float("-inf")) < cfg.latency_retry_s
        if self.rung == 0 or blind or not cool or retry_wait:
            self._good_since = None
            return None
        if self._good_since is None:
            self._good_since = r.now
        if r.now - self._good_since >= cfg.cooldown_s and dwelt:
            temp = f"{hottest:.1f} C below {cfg.recover_below_c:g}" if hottest is not None \
                else "no thermal limit"
            latency = " and latency within budget" if budget is not None else ""
            return self._switch(upper, f"recovered: {temp}{latency} for {cfg.cooldown_s:g}s", r)
        return None

    def _switch(self, to: int, reason: str, r: Readings) -> Switch:
        switch = Switch(self.rung, to, reason, r)
        self.rung = to
        self._last_switch = r.now
        self._bad_since = self._good_since = None
        return switch
