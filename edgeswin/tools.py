"""`edgeswin fallback-sim` and `edgeswin probe`: tuning and inspection aids, no daemon needed."""

from __future__ import annotations

import csv
from pathlib import Path

from .config import FallbackConfig, load_config
from .fallback import FallbackPolicy, Readings
from .sensors import NvmlGpus, ThermalZone, discover_zones, selected


def simulate(trace: Path, cfg: FallbackConfig, rungs: int) -> list[str]:
    """Replay a CSV trace (columns: t, latency_p95_ms, then one column per zone, in C; empty
    cells mean no reading) through the policy; return the decision timeline."""
    with trace.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "t" not in rows[0]:
        raise ValueError(f"{trace}: needs a header with a 't' column")
    zones = [k for k in rows[0] if k not in ("t", "latency_p95_ms")]
    policy = FallbackPolicy(cfg, rungs, float(rows[0]["t"]), thermal=bool(zones))
    lines = [f"{float(rows[0]['t']):8.1f}s  start on rung {policy.rung}"]
    for row in rows:
        temps = {z: float(row[z]) for z in zones if row.get(z, "").strip()}
        p95 = row.get("latency_p95_ms", "").strip()
        switch = policy.update(Readings(float(row["t"]), temps, float(p95) if p95 else None))
        if switch:
            lines.append(f"{switch.readings.now:8.1f}s  rung {switch.from_rung} -> "
                         f"{switch.to_rung}: {switch.reason}")
    lines.append(f"{float(rows[-1]['t']):8.1f}s  end on rung {policy.rung} "
                 f"({len(lines) - 1} switch(es))")
    return lines


def _zone_line(zone: ThermalZone, reading: str, prefixes: list[str]) -> str:
    mark = "*" if selected(zone, prefixes) else " "
    trips = ", ".join(f"{t.type} {t.temp_c:g}" for t in zone.trips)
    return (f"  {mark} {zone.path.name if zone.path.parent.name != 'nvml' else 'nvml':<16} "
            f"{zone.type:<20} {reading:<10} {'trips: ' + trips if trips else ''}").rstrip()


def probe(config_dir: Path | None) -> list[str]:
    """What this device has: thermal zones, OpenCV video back-ends, inference back-ends."""
    import cv2

    from .camera import has_gstreamer

    fb = FallbackConfig()
    if config_dir is not None:
        fb = load_config(config_dir).device.fallback
    lines = [f"thermal zones under {fb.thermal_root} (selected by prefixes {fb.zones}):"]
    zones = discover_zones(fb.thermal_root)
    for zone in zones:
        try:
            reading = f"{int((zone.path / 'temp').read_text()) / 1000:.1f} C"
        except (OSError, ValueError) as exc:
            reading = f"unreadable ({exc.__class__.__name__})"
        lines.append(_zone_line(zone, reading, fb.zones))
    gpus = NvmlGpus() if fb.nvml else None
    for zone in gpus.zones if gpus else []:
        try:
            reading = f"{gpus.read(zone):.1f} C"
        except OSError as exc:
            reading = f"unreadable ({exc})"
        lines.append(_zone_line(zone, reading, fb.zones))
    if not zones and not (gpus and gpus.zones):
        lines.append("  none found: fallback would run on latency alone")
    lines.append(f"opencv {cv2.__version__}: GStreamer {'yes' if has_gstreamer() else 'NO'}, "
                 f"video devices: {', '.join(sorted(str(p) for p in Path('/dev').glob('video*'))) or 'none'}")
    try:
        import onnxruntime as ort
        lines.append(f"onnxruntime {ort.__version__}: {', '.join(ort.get_available_providers())}")
    except ImportError:
        lines.append("onnxruntime: not installed")
    try:
        import tensorrt as trt  # noqa: F401
        lines.append(f"tensorrt {trt.__version__}")
    except ImportError:
        lines.append("tensorrt: not installed (ONNX Runtime serves .onnx rungs)")
    return lines
