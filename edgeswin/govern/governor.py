"""The thermal and power governor's loop side: reads the sensors (thermal zones, power rails,
GPU, nvpmodel mode) every poll, asks `fallback` what to do, and moves the power_mode lever.

Hands the daemon `Readings` and `Action`s (it moves the fps, rung and dla levers itself,
since those touch cameras and engines), and the `power` part of `<root>/stats`: watts per
rail, the module's total, the nvpmodel mode, GPU load and clock, energy per classification.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from ..config import DeviceConfig, dla_twins
from .fallback import Action, FallbackPolicy, Readings
from .nvpmodel import Mode, PowerModes
from .power import EnergyMeter, PowerSensor
from .sensors import ThermalSensor

log = logging.getLogger(__name__)

CONFIRM_S = 30.0  # a requested power mode must show in `nvpmodel -q` within this


class Governor:
    def __init__(self, device: DeviceConfig):
        fb, pw = device.fallback, device.power
        self.cfg = fb
        self.engines = device.engines
        self.thermal = ThermalSensor(fb.thermal_root, fb.zones, nvml=fb.nvml)
        self.power = PowerSensor(pw.hwmon_root, pw.devfreq_root, pw.total_rails, nvml=fb.nvml)
        self.modes = PowerModes(pw.nvpmodel_conf, pw.nvpmodel,
                                fb.power_modes if "power_mode" in fb.levers else [],
                                fb.power_mode_command,
                                Path(device.state_dir) / "power-mode.request")
        self.energy = EnergyMeter()
        self.temps: dict[str, float] = {}
        self.watts: dict[str, float] = {}
        self.mode: Mode | None = None
        self.actions: Counter[str] = Counter()  # lever -> moves since start
        self.policy: FallbackPolicy | None = None
        self._pending: tuple[Mode, float] | None = None  # a requested mode and its deadline
        self._classified_mark = 0
        self.last_energy_mj: float | None = None  # per classification, at the last report

    def start(self, now: float, start: int, usable: set[int], fps_steps: int) -> FallbackPolicy:
        """The policy for this run, with every lever this device and config allow; says at
        start what it watches and what it cannot do."""
        fb = self.cfg
        self.mode = self.modes.current()
        left = self.modes.left_over()  # the run before stopped with the lever down
        if left is not None and self.mode is not None and self.mode.id == left.id:
            self.modes.forget_start()
        elif left is not None:
            log.warning("the last run stopped with the power mode lowered to %s: back to %s",
                        self.mode.name if self.mode else "?", left.name)
            if self._set(left, now):
                self.mode = left
                self.modes.forget_start()  # else kept, and tried again at the next start
        power_modes = len(self.modes.steps)
        if power_modes and self.mode is None:
            log.warning("power_mode lever off: `%s -q` does not report the active mode, so it "
                        "could not be restored", self.modes.nvpmodel)
            power_modes = 0
        self.modes.start = left or self.mode  # what recovery comes back to
        self.policy = FallbackPolicy(fb, len(self.engines), now, thermal=bool(self.thermal.zones),
                                     start=start, fps_steps=fps_steps, power_modes=power_modes,
                                     twins=dla_twins(self.engines), usable=usable)
        if fb.pinned_rung is not None:
            log.info("engine pinned to rung %d: the rung and dla levers never move",
                     fb.pinned_rung)
        if self.thermal.zones:
            log.info("watching thermal zones %s under %s",
                     ", ".join(z.type for z in self.thermal.zones), fb.thermal_root)
            late = self.thermal.throttling_before(fb.degrade_above_c)
            if late:
                log.warning("degrade_above_c %g C is at or above the trip point of %s: the "
                            "hardware throttles first; consider a lower threshold",
                            fb.degrade_above_c, ", ".join(late))
        else:
            log.warning("no thermal zone matching %s under %s: fallback runs on latency alone",
                        fb.zones, fb.thermal_root)
        skipped = [lever for lever in fb.levers if lever not in self.policy.levers]
        log.info("fallback levers: %s%s; power rails: %s; power mode: %s",
                 ", ".join(self.policy.levers) or "none",
                 f" ({', '.join(skipped)} not usable here)" if skipped else "",
                 ", ".join(r.name for r in self.power.rails) or "none found",
                 f"{self.mode.name} (id {self.mode.id})" if self.mode else "unknown")
        return self.policy

    def last(self, now: float) -> Readings:
        """The temperatures of the last sensor poll, without reading the sensors again (for a
        message between two polls)."""
        return Readings(now, self.temps)

    def read(self, now: float, latency_p95_ms: float | None = None,
             slow_cameras: dict | None = None) -> Readings:
        self.temps = self.thermal.read()
        self.watts = self.power.read()
        total = self.power.total(self.watts)
        self.energy.add(now, total[1] if total else None)
        return Readings(now, self.temps, latency_p95_ms, slow_cameras or {}, self.watts)

    def poll(self, now: float, latency_p95_ms: float | None,
             slow_cameras: dict) -> Action | None:
        """Read the sensors and decide; a power_mode action is carried out here (and taken
        back when the mode cannot be set)."""
        readings = self.read(now, latency_p95_ms, slow_cameras)
        self._confirm(now)
        action = self.policy.update(readings)
        if action is not None and action.lever == "power_mode":
            if not self._set(self.modes.target(action.to), now):
                self.policy.undo(action)
                return None
            if action.frm == 0:
                self.modes.remember_start()
            elif action.to == 0:
                self.modes.forget_start()
        if action is not None:
            self.actions[action.lever] += 1
        return action

    def _set(self, mode: Mode, now: float) -> bool:
        """Ask for a mode; False (and an error line) when it cannot be asked for."""
        error = self.modes.set(mode)
        if error:
            log.error("power mode %s (id %d) could not be set: %s; staying in %s",
                      mode.name, mode.id, error, self.mode.name if self.mode else "?")
            return False
        self._pending = (mode, now + CONFIRM_S)
        if self.modes.command:
            self._confirm(now, force=True)
        return True

    def close(self, now: float) -> None:
        """At a clean stop with the power_mode lever down: back to the mode the run started in."""
        if self.policy is not None and self.policy.level["power_mode"] > 0 and self.modes.start:
            log.info("stopping with the power mode lowered: back to %s", self.modes.start.name)
            if self._set(self.modes.start, now):
                self.modes.forget_start()

    def _confirm(self, now: float, force: bool = False) -> None:
        """Check a requested mode took: `nvpmodel -q` names it, or one warning."""
        if self._pending is None or not (force or now >= self._pending[1]):
            return
        wanted = self._pending[0]
        self.mode = self.modes.current()
        if self.mode is None or self.mode.id != wanted.id:
            how = " ".join(self.modes.command) if self.modes.command else \
                f"{self.modes.request_file} (is edgeswin-power-mode.path enabled?)"
            log.warning("power mode %s (id %d) asked through %s is not active after %.0f s "
                        "(active: %s)", wanted.name, wanted.id, how, CONFIRM_S,
                        self.mode.name if self.mode else "unknown")
        self._pending = None

    def power_report(self, classified: int) -> dict:
        """The `power` part of `<root>/stats`; `classified` is the running total of
        classifications (energy per classification covers the span since the last report)."""
        total = self.power.total(self.watts)
        joules, seconds = self.energy.take()
        done = classified - self._classified_mark
        self._classified_mark = classified
        self.last_energy_mj = round(joules * 1000 / done, 3) if seconds > 0 and done > 0 \
            else None
        return {
            "watts": {rail: round(w, 3) for rail, w in self.watts.items()},
            "total_w": round(total[1], 3) if total else None,
            "total_rail": total[0] if total else None,
            "energy_mj_per_classification": self.last_energy_mj,
            "mode": {"id": self.mode.id, "name": self.mode.name} if self.mode else None,
            "gpu": self.power.gpu_state(),
        }

    def refresh_mode(self) -> None:
        """Re-read the active power mode (it can be changed by hand) for the report."""
        if self._pending is None:
            self.mode = self.modes.current()
