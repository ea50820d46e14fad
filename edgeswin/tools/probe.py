"""`edgeswin fallback-sim`, `edgeswin probe` and `edgeswin snapshot`: tuning and inspection
aids, no daemon needed. probe lists thermal zones, power rails, the GPU node and the nvpmodel
modes as the governor sees them."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np

from ..config import FallbackConfig, PowerConfig, load_config
from ..govern.fallback import FallbackPolicy, Readings
from ..govern.nvpmodel import query, read_modes
from ..govern.power import EnergyMeter, PowerSensor, total_power
from ..govern.sensors import NvmlGpus, ThermalZone, discover_zones, selected


def simulate(trace: Path, cfg: FallbackConfig, rungs: int, *, fps_steps: int | None = None,
             twins: dict[int, int] | None = None,
             total_rails: list[str] | None = None) -> list[str]:
    """Replay a CSV trace through the policy; return the timeline of every lever's action.
    Columns: t (s), latency_p95_ms, one per thermal zone (C), one per power rail in watts
    named `<rail>_w`; empty cells mean no reading. `fps_steps` defaults to the config's (as if
    some camera had a min_fps)."""
    with trace.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "t" not in rows[0]:
        raise ValueError(f"{trace}: needs a header with a 't' column")
    rails = [k for k in rows[0] if k.endswith("_w")]
    zones = [k for k in rows[0] if k not in ("t", "latency_p95_ms") and k not in rails]
    modes = len(cfg.power_modes) if "power_mode" in cfg.levers else 0
    policy = FallbackPolicy(cfg, rungs, float(rows[0]["t"]), thermal=bool(zones),
                            fps_steps=cfg.fps_steps if fps_steps is None else fps_steps,
                            power_modes=modes, twins=twins)
    total_rails = PowerConfig().total_rails if total_rails is None else total_rails
    energy = EnergyMeter()
    lines = [f"{float(rows[0]['t']):8.1f}s  start: {_levels(policy)}"]
    actions = 0
    for row in rows:
        now = float(row["t"])
        temps = {z: float(row[z]) for z in zones if row.get(z, "").strip()}
        watts = {r[:-2]: float(row[r]) for r in rails if row.get(r, "").strip()}
        total = total_power(watts, total_rails)
        energy.add(now, total[1] if total else None)
        p95 = row.get("latency_p95_ms", "").strip()
        action = policy.update(Readings(now, temps, float(p95) if p95 else None, {}, watts))
        if action:
            actions += 1
            power = f" [{total[0]} {total[1]:.1f} W]" if total else ""
            lines.append(f"{now:8.1f}s  {action.lever} {action.frm} -> {action.to}: "
                         f"{action.reason}{power}")
    joules, seconds = energy.take()
    # The rails are the trace's own, recorded under the policy that made it: other thresholds
    # change when the levers act, not these joules. Said, so that no one compares configs by it.
    spent = f"; the trace's recorded power: {joules:.0f} J in {seconds:.0f} s, " \
        f"{joules / seconds:.2f} W mean" if seconds else ""
    lines.append(f"{float(rows[-1]['t']):8.1f}s  end: {_levels(policy)} ({actions} "
                 f"action(s)){spent}")
    return lines


def _levels(policy: FallbackPolicy) -> str:
    return ", ".join(f"{lever} {level}" for lever, level in policy.levels().items()) or \
        "no lever usable"


def _zone_line(zone: ThermalZone, reading: str, prefixes: list[str]) -> str:
    mark = "*" if selected(zone, prefixes) else " "
    trips = ", ".join(f"{t.type} {t.temp_c:g}" for t in zone.trips)
    return (f"  {mark} {zone.path.name if zone.path.parent.name != 'nvml' else 'nvml':<16} "
            f"{zone.type:<20} {reading:<10} {'trips: ' + trips if trips else ''}").rstrip()


def probe(config_dir: Path | None) -> list[str]:
    """What this device has: thermal zones, OpenCV video back-ends, inference back-ends."""
    import cv2

    from ..config import opencv_has_gstreamer as has_gstreamer

    fb, pw = FallbackConfig(), PowerConfig()
    if config_dir is not None:
        device = load_config(config_dir).device
        fb, pw = device.fallback, device.power
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
    lines += _power_lines(pw)
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


def _power_lines(pw: PowerConfig) -> list[str]:
    """Power rails, the GPU node and the nvpmodel modes, as the governor would see them."""
    sensor = PowerSensor(pw.hwmon_root, pw.devfreq_root, pw.total_rails)
    watts = sensor.read()
    total = sensor.total(watts)
    lines = [f"power rails under {pw.hwmon_root} (total: {total[0] if total else '-'}):"]
    lines += [f"  {rail.name:<24} {watts[rail.name]:.2f} W" if rail.name in watts
              else f"  {rail.name:<24} unreadable" for rail in sensor.rails]
    if not sensor.rails:
        lines.append("  none found: no power or energy in stats")
    gpu = sensor.gpu_state()
    lines.append(f"GPU: {sensor.gpu.devfreq} load {gpu.get('load_pct', '?')} %, "
                 f"{gpu.get('freq_mhz', '?')} MHz" if sensor.gpu else
                 f"GPU: no devfreq node under {pw.devfreq_root}")
    modes = read_modes(pw.nvpmodel_conf)
    active = query(pw.nvpmodel)
    lines.append(f"nvpmodel modes in {pw.nvpmodel_conf} (for fallback.power_modes): " +
                 (", ".join(f"{m.name} (id {m.id}){' *active*' if m == active else ''}"
                            for m in modes) or "none (not a Jetson, or unreadable)"))
    return lines


def _platform() -> list[str]:
    import platform

    lines = [f"host: {platform.machine()} {platform.system()} {platform.release()}, "
             f"Python {platform.python_version()}"]
    try:
        release = Path("/etc/nv_tegra_release").read_text().splitlines()[0]
        lines.append(f"Jetson L4T: {release.strip('# ')}")
    except (OSError, IndexError):
        lines.append("Jetson L4T: not a Jetson (/etc/nv_tegra_release absent)")
    try:
        import pycuda.driver as cuda
        cuda.init()
        gpu = cuda.Device(0)
        lines.append(f"CUDA driver {cuda.get_driver_version()}: {gpu.name()} "
                     f"(sm_{''.join(map(str, gpu.compute_capability()))})")
    except ImportError:
        lines.append("pycuda: not installed (needed by the TensorRT backend)")
    except Exception as exc:  # no driver, no device: say so and carry on
        lines.append(f"CUDA: unusable ({exc})")
    return lines


def selftest(model: Path, n_frames: int = 24) -> tuple[list[str], bool]:
    """Run the demo model through ONNX Runtime and, where TensorRT exists, through an engine
    built here; compare and time both. Returns the report and whether everything passed."""
    import statistics
    import tempfile
    import time

    from ..engine import open_engine
    from ..engine.cache import agreement
    from ..prepare.preprocess import Preprocessor
    from ..scenes import LABELS, random_scene

    lines = ["edgeswin self-test", *_platform(), *probe(None)]
    rng = np.random.default_rng(2024)
    scenes = [random_scene(rng, 1280, 720) for _ in range(n_frames)]
    frames = [image for image, _ in scenes]

    def timed(engine) -> tuple[float, float]:
        prep = Preprocessor(engine.info.input)
        samples = []
        for image in frames:
            x = prep(image)
            t0 = time.perf_counter()
            engine.infer(x)
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]

    ok = True
    reference = open_engine(model, "onnxruntime")
    prep = Preprocessor(reference.info.input)
    hits = sum(LABELS[label] == reference.info.labels[int(reference.infer(prep(image)).argmax())]
               for image, label in scenes)
    p50, p95 = timed(reference)
    accuracy_ok = hits >= 0.9 * n_frames
    ok &= accuracy_ok
    lines.append(f"ONNX Runtime: {model.name}: {hits}/{n_frames} scenes right "
                 f"({'ok' if accuracy_ok else 'FAIL'}), inference p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    try:
        import tensorrt  # noqa: F401

        from ..engine.build import build_engine
    except ImportError:
        lines.append("TensorRT: not installed here: engine build and comparison skipped")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{model.stem}-fp16.engine"
            try:
                t0 = time.monotonic()
                build_engine(model, out, "fp16", progress=lambda message: None)
                built_s = time.monotonic() - t0
                engine = open_engine(out, "tensorrt")
                agree, worst = agreement(engine, reference, frames)
                trt_p50, trt_p95 = timed(engine)
                same = agree == 1.0
                ok &= same
                lines.append(f"TensorRT {tensorrt.__version__}: fp16 engine built in "
                             f"{built_s:.1f} s on {engine.gpu}; top-1 agreement with ONNX "
                             f"Runtime {agree:.0%} ({'ok' if same else 'FAIL'}), max |diff| "
                             f"{worst:.3g}; inference p50 {trt_p50:.2f} ms, p95 {trt_p95:.2f} ms")
            except Exception as exc:  # the report must come out whatever failed
                ok = False
                lines.append(f"TensorRT {tensorrt.__version__}: FAIL: "
                             f"{exc.__class__.__name__}: {exc}")
    lines.append(f"verdict: {'PASS' if ok else 'FAIL'}")
    return lines, ok


def grab_snapshot(config_dir: Path, camera: str, out: Path) -> list[str]:
    """`edgeswin snapshot`: open one camera once, read a frame, classify each region (or the
    whole frame) with the first rung that loads here, and write the frame at full size with
    the boxes, labels and scores drawn, so regions can be placed by looking. Returns what to
    print."""
    from ..capture.camera import open_capture
    from ..capture.stream_open import GRACE_S, Opener
    from ..classify.schedule import region_runtimes
    from ..classify.stats import CameraStats
    from ..config.credentials import redact
    from ..engine import open_engine
    from ..errors import EdgeswinError
    from ..prepare.preprocess import Preprocessor, crop
    from ..publish.snapshot import annotate, jpeg

    config = load_config(config_dir)
    entries = {e.config.name: e for e in config.cameras}
    if camera not in entries:
        raise EdgeswinError(f"no camera {camera!r} in {config_dir}: "
                            f"{', '.join(sorted(entries)) or 'none'}")
    entry = entries[camera]
    # At the camera's full size (an rtsp:// camera through GStreamer is not scaled down here):
    # boxes are placed on what the camera really sends.
    # The daemon's own opener: a network or gst: open that never returns is given up on.
    opened = Opener(camera).open(lambda: open_capture(entry.source, entry.config, width=7680),
                                 entry.config.open_timeout_s + GRACE_S, threading.Event())
    if opened is None:
        raise EdgeswinError(f"camera {camera}: {redact(entry.config.source)} did not open within "
                            f"{entry.config.open_timeout_s + GRACE_S:g} s")
    cap = opened[0]
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
    finally:
        cap.release()
    if not ok or frame is None:
        raise EdgeswinError(f"camera {camera}: no frame from {redact(entry.config.source)}")
    engine, lines = None, []
    for rung in config.device.engines:
        model = Path(rung.model)
        backend = "onnxruntime" if model.suffix == ".onnx" else rung.backend
        try:
            engine = open_engine(model, backend, rung.threads, rung.host_code_allowed)
            break
        except EdgeswinError as exc:
            lines.append(f"engine rung {rung.name} not usable here: {exc}")
    regions = region_runtimes(entry.config, engine.info.labels if engine else ("-",),
                              CameraStats())
    h, w = frame.shape[:2]
    lines.append(f"camera {camera}: {w}x{h} frame" + (f", engine {engine.info.name}"
                                                      if engine else ", no engine"))
    for region in regions:
        part = frame if region.config is None else crop(
            frame, region.config.box, region.config.aspect,
            (engine.info.input.width, engine.info.input.height) if engine else (1, 1))
        name = region.name or "whole frame"
        if engine is not None:
            label, score, _ = region.post.apply(
                engine.infer(Preprocessor(engine.info.input)(part)), engine.info.output_kind)
            region.state_label, region.stats.score = label, score
            lines.append(f"  {name}: {region.state_label} {region.stats.score:.2f} "
                         f"({part.shape[1]}x{part.shape[0]} px)")
        else:
            lines.append(f"  {name}: {part.shape[1]}x{part.shape[0]} px")
    cam = type("Shown", (), {"regions": regions})()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(jpeg(annotate(frame, cam), w, 90))
    lines.append(f"wrote {out}")
    return lines
