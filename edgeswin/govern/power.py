"""Measuring only: power rails, the GPU's load and clock, and energy per classification.

Hands on plain readings (rail name -> watts, GPU load %, MHz) to the report and to `fallback`'s
readings. Sources, found by name the way `sensors` finds thermal zones:
- INA3221 (Jetson Orin, Xavier; JetPack 5 and 6): hwmon `name` `ina3221`, channels
  `in<k>_label`, `in<k>_input` (mV), `curr<k>_input` (mA); watts = mV x mA. Channels labelled
  `NC` (not connected) and "sum of shunt voltages" are skipped.
- INA238 and other `ina*` hwmon devices with `power<k>_input` (uW; JetPack 7's input-power
  monitor): named by `power<k>_label`, else by the hwmon name.
- Discrete GPUs through NVML (`nvmlDeviceGetPowerUsage`, mW) as `GPU<i>-nvml`.
- GPU load and clock from the devfreq node whose device is the integrated GPU (`ga10b` on
  Orin, `gv11b` on Xavier, `gb10b`, or any name with "gpu"): `<device>/load` in tenths of a
  percent, `cur_freq` in Hz.
A rail or node that cannot be read is skipped with one warning each, never a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GPU_NODES = ("gv11b", "gp10b", "ga10b", "gb10b")


@dataclass(frozen=True)
class Rail:
    name: str
    files: tuple[Path, ...]  # (mV, mA) for INA3221, (uW,) for power<k>_input
    nvml: object | None = None  # an NVML device handle instead of files


def _read(path: Path) -> str:
    return path.read_text().strip()


def _ina3221_rails(hwmon: Path) -> list[Rail]:
    rails = []
    for label_file in sorted(hwmon.glob("in*_label")):
        channel = label_file.name[2:-len("_label")]
        try:
            label = _read(label_file)
        except OSError:
            continue
        if label.upper() == "NC" or label.lower().startswith("sum of shunt"):
            continue
        volts, amps = hwmon / f"in{channel}_input", hwmon / f"curr{channel}_input"
        if volts.exists() and amps.exists():
            rails.append(Rail(label, (volts, amps)))
    return rails


def _power_rails(hwmon: Path, name: str) -> list[Rail]:
    rails = []
    for power in sorted(hwmon.glob("power*_input")):
        channel = power.name[5:-len("_input")]
        label_file = hwmon / f"power{channel}_label"
        try:
            label = _read(label_file) if label_file.exists() else name
        except OSError:
            label = name
        rails.append(Rail(label, (power,)))
    return rails


def discover_rails(hwmon_root: str | Path) -> list[Rail]:
    """Every INA power-monitor rail under hwmon_root; names made unique by the device."""
    rails: list[Rail] = []
    for hwmon in sorted(Path(hwmon_root).glob("hwmon*")):
        try:
            name = _read(hwmon / "name")
        except OSError:
            continue
        if name.startswith("ina3221"):
            found = _ina3221_rails(hwmon)
        elif name.startswith("ina"):
            found = _power_rails(hwmon, name)
        else:
            continue
        taken = {r.name for r in rails}
        device = (hwmon / "device").resolve().name
        rails += [Rail(f"{r.name}@{device}", r.files) if r.name in taken else r for r in found]
    return rails


def nvml_rails() -> list[Rail]:
    """Discrete NVIDIA GPUs' board power through NVML; none without the library or driver."""
    try:
        import pynvml
        pynvml.nvmlInit()
        return [Rail(f"GPU{i}-nvml", (), pynvml.nvmlDeviceGetHandleByIndex(i))
                for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # ImportError, NVMLError: no discrete GPU power to report
        return []


def read_rail(rail: Rail) -> float:
    """Watts; raises OSError or ValueError when the rail cannot be read."""
    if rail.nvml is not None:
        import pynvml
        try:
            return pynvml.nvmlDeviceGetPowerUsage(rail.nvml) / 1000.0
        except pynvml.NVMLError as exc:
            raise OSError(str(exc)) from None
    if len(rail.files) == 2:
        millivolts, milliamps = (int(_read(f)) for f in rail.files)
        return millivolts * milliamps / 1e6
    return int(_read(rail.files[0])) / 1e6


def total_power(watts: dict[str, float], total_rails: list[str]) -> tuple[str, float] | None:
    """(rail, watts) of the whole module: the first of total_rails read (any case), else the
    sum of every rail; None with no rail read."""
    by_upper = {name.upper(): name for name in watts}
    for wanted in total_rails:
        if (name := by_upper.get(wanted.upper())) is not None:
            return name, watts[name]
    return ("sum of rails", sum(watts.values())) if watts else None


@dataclass(frozen=True)
class GpuNode:
    devfreq: Path
    device: Path


def discover_gpu(devfreq_root: str | Path) -> GpuNode | None:
    for node in sorted(Path(devfreq_root).glob("*")):
        try:
            name = _read(node / "device" / "of_node" / "name")
        except OSError:
            name = node.name
        if name in GPU_NODES or "gpu" in name.lower():
            return GpuNode(node, (node / "device").resolve())
    return None


class PowerSensor:
    """Reads the rails (and the GPU node); an unreadable one is reported once and skipped."""

    def __init__(self, hwmon_root: str | Path, devfreq_root: str | Path,
                 total_rails: list[str], nvml: bool = False):
        self.rails = discover_rails(hwmon_root) + (nvml_rails() if nvml else [])
        self.gpu = discover_gpu(devfreq_root)
        self.total_rails = total_rails
        self._warned: set[str] = set()

    def read(self) -> dict[str, float]:
        watts = {}
        for rail in self.rails:
            try:
                value = read_rail(rail)
            except (OSError, ValueError) as exc:
                self._warn(rail.name, f"power rail {rail.name} "
                           f"({rail.files[0].parent if rail.files else 'nvml'}): unreadable "
                           f"({exc.__class__.__name__}); ignoring it")
                continue
            self._warned.discard(rail.name)
            watts[rail.name] = value
        return watts

    def total(self, watts: dict[str, float]) -> tuple[str, float] | None:
        return total_power(watts, self.total_rails)

    def gpu_state(self) -> dict[str, float]:
        """{"load_pct", "freq_mhz"} where readable; {} without a GPU node."""
        out: dict[str, float] = {}
        if self.gpu is None:
            return out
        for key, path, scale in (("load_pct", self.gpu.device / "load", 10.0),
                                 ("freq_mhz", self.gpu.devfreq / "cur_freq", 1e6)):
            try:
                out[key] = round(int(_read(path)) / scale, 1)
            except (OSError, ValueError) as exc:
                self._warn(str(path), f"GPU {key} ({path}): unreadable "
                           f"({exc.__class__.__name__}); not reported")
        return out

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            log.warning("%s", message)
            self._warned.add(key)


class EnergyMeter:
    """Joules of the whole module between two `take`s, from power samples (trapezoids)."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None  # (time, watts)
        self._joules = 0.0
        self._seconds = 0.0

    def add(self, now: float, watts: float | None) -> None:
        if watts is None:
            self._last = None  # a gap is not integrated across
            return
        if self._last is not None and now > self._last[0]:
            dt = now - self._last[0]
            self._joules += (watts + self._last[1]) / 2 * dt
            self._seconds += dt
        self._last = (now, watts)

    def take(self) -> tuple[float, float]:
        """(joules, seconds covered) since the last take."""
        out = (self._joules, self._seconds)
        self._joules = self._seconds = 0.0
        return out
