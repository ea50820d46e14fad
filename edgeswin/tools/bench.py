"""`edgeswin bench`: the daemon measured against the raw engine in one run, on one machine.

Hands on a JSON report (and `benchmarks/RESULTS.md` via `benchmarks/report.py`):
- raw engine throughput at batch 1 on ready inputs, with the daemon's thread setting;
- the daemon on 1, 2, 4, 8 cameras reading one video as fast as the engine takes frames
  (`realtime: false`: the file is paced by the consumer, so decoding never outruns the engine);
- a serial loop (read -> preprocess -> infer -> publish in one thread) for comparison;
- one camera cut into 4 regions against 4 cameras: classifications per second, frames
  decoded per classification, process CPU per classification;
- capture-to-publish latency and its breakdown, the daemon's overhead (total minus inference);
- preprocessing of one 1920x1080 frame; MQTT publish rate at QoS 0 and 1.
Ratios are what to compare across machines; absolute figures are for the record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .broker import PrivateBroker
from .measure import (
    OPENCV_DEFAULT_THREADS,
    DaemonRun,
    daemon_run,
    machine,
    mqtt_rate,
    preprocess_1080p,
    raw_engine,
    read_frames,
    serial_loop,
)

log = logging.getLogger(__name__)


def bench_video(path: Path, progress=print) -> Path:
    """The bench's video (640x360, 15 fps, 10 s of rendered scenes), made once at `path`."""
    if not path.is_file():
        from ..demo.assets import VideoSpec, make_video
        progress(f"generating {path} ...")
        path.parent.mkdir(parents=True, exist_ok=True)
        make_video(path, VideoSpec(seconds=10, fps=15, width=640, height=360, seed=5))
    return path


def _median_run(runs: list[dict]) -> dict:
    """The run with the median fps, with every round's fps kept beside it."""
    chosen = sorted(runs, key=lambda r: r["fps"])[len(runs) // 2]
    return {**chosen, "fps_rounds": [r["fps"] for r in runs]}


@contextmanager
def _broker(port: int | None) -> Iterator[int]:
    """The given broker's port, or a private mosquitto's for the duration."""
    if port is not None:
        yield port
        return
    broker = PrivateBroker().start()
    try:
        yield broker.port
    finally:
        broker.close()


def run_engine_sweep(model: Path, video: Path, engine_ms: list[float], cameras: list[int],
                     seconds: float, broker_port: int | None = None, progress=print) -> dict:
    """`--engine-ms`: for each engine cost, the synthetic engine alone, the serial loop and
    the daemon on each camera count, all in one run; plus host CPU per classification."""
    with _broker(broker_port) as broker_port:
        frames = read_frames(video, 60)
        sweep = []
        for ms in engine_ms:
            progress(f"engine {ms:g} ms: raw, serial loop, daemon on {cameras} camera(s) ...")
            row = {"engine_ms": ms,
                   "raw_fps": raw_engine(model, frames, 1, seconds, ms)["fps"],
                   "daemon": {}}
            serial = serial_loop(model, video, 1, seconds, broker_port, ms)
            row.update(serial_fps=serial["fps"],
                       serial_cpu_ms_per_frame=serial["process_cpu_ms_per_frame"],
                       serial_cores_used=serial["cores_used"])
            for n in cameras:
                run = daemon_run(DaemonRun(model, video, broker_port, n, 1, seconds,
                                           warmup_s=1.0, engine_ms=ms))
                row["daemon"][str(n)] = {
                    "fps": run["fps"], "vs_serial": round(run["fps"] / row["serial_fps"], 3),
                    "vs_raw": round(run["fps"] / row["raw_fps"], 3),
                    "host_cpu_ms_per_classification": run["process_cpu_ms_per_classification"],
                    "thread_cpu_ms_per_classification": run["thread_cpu_ms_per_classification"],
                    "cores_used": run["cores_used"],
                    "overhead_ms_p50": run["overhead_ms"]["p50"]}
            sweep.append(row)
    return {"machine": machine(), "model_sidecar": model.name, "video": video.name,
            "seconds_per_run": seconds, "engine_sweep": sweep,
            "opencv_threads": {"serial_loop": OPENCV_DEFAULT_THREADS, "daemon": 1}}


def run_bench(model: Path, video: Path, cameras: list[int], seconds: float, threads: int,
              broker_port: int | None = None, progress=print, repeats: int = 3) -> dict:
    with _broker(broker_port) as broker_port:
        frames = read_frames(video, 60)
        report = {"machine": machine(), "model": model.name, "video": {
            "file": video.name, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"},
            "engine_threads": threads, "seconds_per_run": seconds,
            "opencv_threads": {"serial_loop": OPENCV_DEFAULT_THREADS, "daemon": 1}}
        # This machine's speed drifts from minute to minute: alternate the three single-stream
        # setups (raw engine, daemon with 1 camera, serial loop) and keep each one's median.
        rounds: dict[str, list[dict]] = {"raw": [], "daemon": [], "serial": []}
        one = DaemonRun(model, video, broker_port, 1, threads, seconds)
        for i in range(repeats):
            progress(f"round {i + 1}/{repeats}: raw engine ({threads} thread(s)), daemon with "
                     "1 camera, serial loop ...")
            rounds["raw"].append(raw_engine(model, frames, threads, seconds))
            rounds["daemon"].append(daemon_run(one))
            rounds["serial"].append(serial_loop(model, video, threads, seconds, broker_port))
        report["raw_engine"] = _median_run(rounds["raw"])
        report["serial_loop"] = _median_run(rounds["serial"])
        report["daemon"] = [_median_run(rounds["daemon"])]
        for n in cameras:
            if n == 1:
                continue
            progress(f"daemon, {n} camera(s) ...")
            report["daemon"].append(daemon_run(replace(one, cameras=n)))
        progress("one camera with 4 regions, and 4 cameras ...")
        report["regions_vs_cameras"] = {
            "1cam_4regions": daemon_run(replace(one, regions=4)),
            "4cams": daemon_run(replace(one, cameras=4))}
        progress("latency: 1 camera at the video's own rate ...")
        report["latency_realtime_1cam"] = daemon_run(replace(one, realtime=True))
        progress("camera health: 1 camera with health off and on ...")
        report["health"] = {
            "off": daemon_run(replace(one, health=False)),
            "on": daemon_run(replace(one, health=True))}
        progress("preprocessing 1920x1080 ...")
        report["preprocess_1080p"] = preprocess_1080p(model, frames)
        progress("MQTT publish rate ...")
        report["mqtt"] = mqtt_rate(broker_port)
    raw = report["raw_engine"]["fps"]
    report["ratios"] = {
        f"daemon_{d['cameras']}cam_vs_raw": round(d["fps"] / raw, 3) for d in report["daemon"]}
    split = report["regions_vs_cameras"]
    report["ratios"]["4regions_vs_4cams"] = round(split["1cam_4regions"]["fps"]
                                                  / split["4cams"]["fps"], 3)
    one = next((d for d in report["daemon"] if d["cameras"] == 1), report["daemon"][0])
    report["ratios"]["daemon_1cam_vs_serial"] = round(one["fps"] / report["serial_loop"]["fps"], 3)
    health = report["health"]
    report["ratios"]["health_on_vs_off_cpu_per_classification"] = round(
        health["on"]["process_cpu_ms_per_classification"]
        / health["off"]["process_cpu_ms_per_classification"], 3)
    live = report["latency_realtime_1cam"]
    report["goals"] = {
        "daemon_1cam_vs_raw >= 0.95": report["ratios"].get("daemon_1cam_vs_raw", 0) >= 0.95,
        "daemon_8cam_vs_raw >= 0.90": report["ratios"].get("daemon_8cam_vs_raw", 0) >= 0.90,
        "overhead p50 <= 3 ms": (live["overhead_ms"]["p50"] or 99) <= 3.0,
        "preprocess 1080p p50 <= 2 ms": report["preprocess_1080p"]["ms_p50"] <= 2.0,
    }
    return report
