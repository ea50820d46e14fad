"""Measuring only: Jetson thermal zones from sysfs, discrete GPUs through NVML, and latency
windows per rung (inference, capture-to-publish) and per camera (capture-to-publish).

Hands on plain readings (zone type -> degrees C, p95 ms) to `fallback`, which decides.
Zones are chosen by case-insensitive prefix of their `type` (`tj`, `gpu`, `cpu`, `soc`, `cv`),
because the names differ between Jetson releases (`TJ-therm`, `tj-thermal`, `GPU-therm`, ...).
NVML GPUs appear as zones named `GPU<i>-nvml`, so the `gpu` prefix selects them too.
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

VALID_RANGE_C = (-40.0, 150.0)


@dataclass(frozen=True)
class TripPoint:
    type: str  # passive | active | hot | critical
    temp_c: float


@dataclass(frozen=True)
class ThermalZone:
    path: Path
    type: str
    trips: tuple[TripPoint, ...] = ()

    def first_trip(self, kinds: tuple[str, ...] = ("passive", "hot", "critical")) -> TripPoint | None:
        """The lowest trip point of these kinds: where the kernel starts to throttle or act."""
        matching = [t for t in self.trips if t.type in kinds]
        return min(matching, key=lambda t: t.temp_c) if matching else None


def read_trip_points(zone_dir: Path) -> tuple[TripPoint, ...]:
    """trip_point_N_type / trip_point_N_temp pairs; missing or unreadable ones are skipped."""
    trips = []
    for type_file in sorted(zone_dir.glob("trip_point_*_type")):
        temp_file = type_file.with_name(type_file.name.replace("_type", "_temp"))
        try:
            celsius = int(temp_file.read_text().strip()) / 1000.0
            kind = type_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if VALID_RANGE_C[0] <= celsius <= VALID_RANGE_C[1]:
            trips.append(TripPoint(kind, celsius))
    return tuple(trips)


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
            zones.append(ThermalZone(zone_dir, kind, read_trip_points(zone_dir)))
    return zones


class NvmlGpus:
    """Discrete NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`), as zones `GPU<i>-nvml` with
    their slowdown threshold as a trip point. Absent library or driver: no zones, one info line."""

    def __init__(self) -> None:
        self.zones: list[ThermalZone] = []
        self._handles: dict[str, object] = {}
        try:
            import pynvml
        except ImportError:
            return
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                trips = []
                try:
                    slowdown = pynvml.nvmlDeviceGetTemperatureThreshold(
                        handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)
                    trips.append(TripPoint("passive", float(slowdown)))
                except pynvml.NVMLError:
                    pass  # not every board reports it
                zone = ThermalZone(Path(f"nvml/{i}"), f"GPU{i}-nvml", tuple(trips))
                self.zones.append(zone)
                self._handles[zone.type] = handle
        except pynvml.NVMLError as exc:
            log.info("NVML present but unusable (%s): no discrete GPU temperatures", exc)
            self.zones = []
            self._handles = {}

    def owns(self, zone: ThermalZone) -> bool:
        return zone.type in self._handles

    def read(self, zone: ThermalZone) -> float:
        """Degrees C; raises OSError when NVML cannot answer (the caller warns once)."""
        try:
            return float(self._nvml.nvmlDeviceGetTemperature(self._handles[zone.type],
                                                             self._nvml.NVML_TEMPERATURE_GPU))
        except self._nvml.NVMLError as exc:
            raise OSError(str(exc)) from None


class ThermalSensor:
    """Reads the selected zones (sysfs, plus NVML GPUs when asked); a zone that cannot be read is
    reported once and skipped."""

    def __init__(self, root: str | Path, prefixes: list[str], nvml: bool = False):
        self.root = Path(root)
        self.prefixes = prefixes
        self.zones = discover_zones(root, prefixes)
        self._nvml = NvmlGpus() if nvml else None
        if self._nvml:
            self.zones += [z for z in self._nvml.zones if selected(z, prefixes)]
        self._warned: set[str] = set()

    def read(self) -> dict[str, float]:
        readings = {}
        for zone in self.zones:
            try:
                if self._nvml and self._nvml.owns(zone):
                    celsius = self._nvml.read(zone)
                else:
                    celsius = int((zone.path / "temp").read_text().strip()) / 1000.0
            except (OSError, ValueError) as exc:
                self._warn(zone, f"unreadable ({exc.__class__.__name__})")
                continue
            if not VALID_RANGE_C[0] <= celsius <= VALID_RANGE_C[1]:
                self._warn(zone, f"out of range ({celsius:g} C, sensor offline?)")
                continue
            self._warned.discard(zone.type)
            readings[zone.type] = celsius
        return readings

    def throttling_before(self, degrade_above_c: float) -> list[str]:
        """Zones whose kernel/driver trip point is at or below the degrade threshold: there the
        hardware throttles first and the ladder would step down too late."""
        late = []
        for zone in self.zones:
            trip = zone.first_trip()
            if trip is not None and trip.temp_c <= degrade_above_c:
                late.append(f"{zone.type} ({trip.type} trip at {trip.temp_c:g} C)")
        return late

    def _warn(self, zone: ThermalZone, why: str) -> None:
        if zone.type not in self._warned:
            log.warning("thermal zone %s (%s): %s; ignoring it", zone.type, zone.path, why)
            self._warned.add(zone.type)


class LatencyWindows:
    """Sliding windows of milliseconds under any key: ("inference", rung),
    ("capture_to_publish", rung), ("camera", name). p95 needs a few samples before it judges."""

    def __init__(self, size: int = 30):
        self.size = size
        self._windows: dict[tuple, deque[float]] = {}

    def add(self, key: tuple, ms: float) -> None:
        self._windows.setdefault(key, deque(maxlen=self.size)).append(ms)

    def percentile(self, key: tuple, q: float) -> float | None:
        window = self._windows.get(key)
        if not window or len(window) < min(5, self.size):
            return None  # too few samples to judge
        return float(np.percentile(window, q))

    def p95(self, key: tuple) -> float | None:
        return self.percentile(key, 95)

    def clear(self, match) -> None:
        """Forget every window whose key satisfies match(key)."""
        for key in [k for k in self._windows if match(k)]:
            del self._windows[key]

    def by_rung(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """{"0": {"inference_ms": {"p50", "p95"}, "capture_to_publish_ms": {...}}} for stats."""
        out: dict[str, dict] = {}
        for kind, rung in sorted(k for k in self._windows if k[0] != "camera"):
            out.setdefault(str(rung), {})[f"{kind}_ms"] = {
                "p50": _round(self.percentile((kind, rung), 50)),
                "p95": _round(self.percentile((kind, rung), 95))}
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
