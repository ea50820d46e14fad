"""Measuring only: Jetson thermal zones from sysfs and per-rung inference latency windows.

Hands on plain readings (zone type -> degrees C, rung -> p95 ms) to `fallback`, which decides.
Zones are chosen by case-insensitive prefix of their `type` (`tj`, `gpu`, `cpu`, `soc`, `cv`),
because the names differ between Jetson releases (`TJ-therm`, `tj-thermal`, `GPU-therm`, ...).
Unreadable, empty or out-of-range values (an offline sensor reads -256 C) are skipped with one
warning per zone, never a crash.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_THERMAL_ROOT = "/sys/devices/virtual/thermal"
VALID_RANGE_C = (-40.0, 150.0)


@dataclass(frozen=True)
class ThermalZone:
    path: Path
    type: str


def selected(zone: ThermalZone, prefixes: list[str]) -> bool:
    """Whether a zone's type starts with one of the prefixes, in any case."""
    return any(zone.type.lower().startswith(p.lower()) for p in prefixes)


def discover_zones(root: str | Path, prefixes: list[str] | None = None) -> list[ThermalZone]:
    """Every thermal_zone*/ under root whose type starts with one of the prefixes (any case)."""
    zones = []
    for zone_dir in sorted(Path(root).glob("thermal_zone*")):
        try:
            kind = (zone_dir / "type").read_text().strip()
        except OSError:
            continue
        zone = ThermalZone(zone_dir, kind)
        if prefixes is None or selected(zone, prefixes):
            zones.append(zone)
    return zones


class ThermalSensor:
    """Reads the selected zones; a zone that cannot be read is reported once and skipped."""

    def __init__(self, root: str | Path, prefixes: list[str]):
        self.root = Path(root)
        self.prefixes = prefixes
        self.zones = discover_zones(root, prefixes)
        self._warned: set[str] = set()

    def read(self) -> dict[str, float]:
        readings = {}
        for zone in self.zones:
            try:
                raw = (zone.path / "temp").read_text().strip()
                celsius = int(raw) / 1000.0
            except (OSError, ValueError) as exc:
                self._warn(zone, f"unreadable ({exc.__class__.__name__})")
                continue
            if not VALID_RANGE_C[0] <= celsius <= VALID_RANGE_C[1]:
                self._warn(zone, f"out of range ({celsius:g} C, sensor offline?)")
                continue
            self._warned.discard(zone.type)
            readings[zone.type] = celsius
        return readings

    def _warn(self, zone: ThermalZone, why: str) -> None:
        if zone.type not in self._warned:
            log.warning("thermal zone %s (%s): %s; ignoring it", zone.type, zone.path, why)
            self._warned.add(zone.type)


class LatencyWindows:
    """Sliding windows of inference time, one per rung."""

    def __init__(self, size: int = 30):
        self.size = size
        self._windows: dict[int, deque[float]] = {}

    def add(self, rung: int, ms: float) -> None:
        self._windows.setdefault(rung, deque(maxlen=self.size)).append(ms)

    def p95(self, rung: int) -> float | None:
        window = self._windows.get(rung)
        if not window or len(window) < min(5, self.size):
            return None  # too few samples to judge
        return float(np.percentile(window, 95))

    def clear(self, rung: int) -> None:
        self._windows.pop(rung, None)
