"""What one bench run measures, each on its own: the raw engine, the real daemon in this
process on N copies of a video, the serial loop a user writes first, preprocessing of a 1080p
frame, the MQTT publish rate, and CPU time by kind of thread.

Hands on one dict of figures per run to `bench` (and to the scripts in `benchmarks/`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..classify.finisher import THREAD_NAME as FINISHER_THREAD
from ..config import load_config
from ..engine import open_engine
from ..prepare.preprocess import Preprocessor

log = logging.getLogger(__name__)

LOOP_THREAD = "bench-daemon"  # the daemon's inference loop runs on this thread in the bench

# OpenCV's thread count as imported, before a daemon sets its own (`opencv_threads`): the serial
# loop runs with it, as a first loop a user writes would.
OPENCV_DEFAULT_THREADS = cv2.getNumThreads()


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import onnxruntime as ort
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": ort.__version__, "opencv": cv2.__version__,
            "system": f"{platform.system()} {platform.release()}"}


def read_frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise RuntimeError(f"cannot read frames from {video}")
    return frames


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's threads, by kind: the capture threads, the
    inference loop, the finisher, MQTT (the sender and paho's network thread), and native threads that
    Python did not start (OpenCV's pool, FFmpeg's decoders, ONNX Runtime's pool)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = names.get(int(tid))
        kind = ("native" if name is None else "capture" if name.startswith("capture-")
                else "inference loop" if name == LOOP_THREAD
                else "finisher" if name == FINISHER_THREAD
                else "mqtt" if name.startswith(("mqtt", "paho")) else "other")
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _engine(model: Path, threads: int, engine_ms: float | None):
    """The model through ONNX Runtime, or (engine_ms given) a synthetic engine that holds the
    thread that long without the GIL."""
    if engine_ms is None:
        return open_engine(model, "onnxruntime", threads)
    from ..engine import read_model_info
    from ..engine.synthetic import SyntheticEngine
    return SyntheticEngine(read_model_info(model), engine_ms)


def raw_engine(model: Path, frames: list[np.ndarray], threads: int, seconds: float,
               engine_ms: float | None = None) -> dict:
    engine = _engine(model, threads, engine_ms)
    prep = Preprocessor(engine.info.input)
    inputs = [prep(f) for f in frames]
    times = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        t0 = time.perf_counter()
        engine.infer(inputs[i % len(inputs)])
        times.append((time.perf_counter() - t0) * 1000)
        i += 1
    return {"fps": round(len(times) / sum(times) * 1000, 2), "infer_ms_p50": _pct(times, 50),
            "infer_ms_p95": _pct(times, 95), "n": len(times)}


@dataclass(frozen=True)
class DaemonRun:
    """What one `daemon_run` measures: the real daemon on `cameras` copies of one video."""
    model: Path
    video: Path
    port: int  # the broker's
    cameras: int = 1
    threads: int = 1  # the engine's
    seconds: float = 8.0  # measured, after `warmup_s`
    warmup_s: float = 2.0
    realtime: bool = False  # at the video's own rate (latency without queueing)
    regions: int = 0  # each camera cut into this many vertical strips
    engine_ms: float | None = None  # a synthetic engine that takes this long, else the model
    opencv_threads: int | None = 1  # None: as a fresh process has it
    finisher: bool = True  # False: every tail on the loop's thread
    health: bool = True  # False: no camera's health judged


def daemon_run(run: DaemonRun) -> dict:
    """The real daemon in this process on `run.cameras` copies of one video: unpaced (as fast
    as the engine takes frames), or at the video's own rate for latency without queueing.
    With `regions`, each camera is cut into that many vertical strips classified on their
    own. `finisher=False` finishes every classification on the loop's thread, `health=False`
    judges no camera's health (the A/Bs)."""
    # Long: the config written, the daemon run and the figures read in one place, so that
    # one function says exactly what a bench run did.
    from ..daemon import Daemon

    if run.opencv_threads is None:  # the daemon leaves OpenCV alone: as a fresh process has it
        cv2.setNumThreads(OPENCV_DEFAULT_THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_dir = Path(tmp)
        (cfg_dir / "cameras").mkdir()
        (cfg_dir / "edgeswin.yaml").write_text(yaml.safe_dump({
            "device_id": "bench", "mqtt": {"host": "127.0.0.1", "port": run.port, "qos": 1},
            "engines": [{"name": "bench", "model": str(run.model), "threads": run.threads}],
            "state_dir": str(cfg_dir / "state"), "stats_interval_s": 3600,
            "opencv_threads": run.opencv_threads,
            "health": {"enabled": run.health},
            # The canary's images would count as classifications' CPU in spare time; a
            # synthetic engine answers them wrong besides.
            "canary": {"enabled": False},
            "fallback": {"thermal_root": str(cfg_dir / "no-thermal")}}))
        for i in range(run.cameras):
            camera = {"source": str(run.video), "fps": 0, "loop": True, "realtime": run.realtime}
            if run.regions:
                camera["regions"] = [{"name": f"r{j}", "box": [j / run.regions, 0,
                                                               (j + 1) / run.regions, 1]}
                                     for j in range(run.regions)]
            (cfg_dir / "cameras" / f"cam{i}.yaml").write_text(yaml.safe_dump(camera))
        opener = None if run.engine_ms is None else \
            (lambda path, *rest: _engine(path, run.threads, run.engine_ms))
        daemon = Daemon(load_config(cfg_dir), opener)
        daemon.hand_off.enabled = run.finisher
        payloads: list[dict] = []
        started = threading.Event()
        measuring = [False]

        def listen(payload: dict) -> None:
            started.set()
            if measuring[0]:
                payloads.append(payload)

        daemon.recorder.listeners.append(listen)
        runner = threading.Thread(target=daemon.run, name=LOOP_THREAD)
        runner.start()
        if not started.wait(60):
            daemon.request_stop("bench: no classification")
            runner.join(10)
            raise RuntimeError("the daemon classified nothing in 60 s")
        time.sleep(run.warmup_s)
        measuring[0] = True
        t0, cpu0, threads0 = time.monotonic(), time.process_time(), thread_cpu()
        time.sleep(run.seconds)
        measuring[0] = False
        elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
        by_thread = {k: v - threads0.get(k, 0.0) for k, v in thread_cpu().items()}
        daemon.request_stop("bench done")
        runner.join(30)
    lat = {k: [p["latency_ms"][k] for p in payloads] for k in payloads[0]["latency_ms"]}
    overhead = [p["latency_ms"]["capture_to_publish"] - p["latency_ms"]["inference"]
                for p in payloads]
    per_camera = {}
    for p in payloads:
        per_camera[p["camera"]] = per_camera.get(p["camera"], 0) + 1
    busy = sum(p["latency_ms"]["inference"] for p in payloads) / 1000 / elapsed
    frames = {(p["camera"], p["frame_ts"], p["frame_index"]) for p in payloads}
    return {"cameras": run.cameras, "regions_per_camera": run.regions,
            "fps": round(len(payloads) / elapsed, 2),
            "frames_decoded_per_classification": round(len(frames) / len(payloads), 3),
            "process_cpu_ms_per_classification": round(cpu * 1000 / len(payloads), 3),
            "cores_used": round(cpu / elapsed, 2),
            # Thread CPU is counted in clock ticks (10 ms): meaningful over seconds of run.
            "thread_cpu_ms_per_classification": {
                k: round(v * 1000 / len(payloads), 3) for k, v in sorted(by_thread.items())
                if v > 0},
            "engine_busy_fraction": round(busy, 3),
            "per_camera_fps": {k: round(v / elapsed, 2) for k, v in sorted(per_camera.items())},
            "latency_ms": {k: {"p50": _pct(v, 50), "p95": _pct(v, 95)} for k, v in lat.items()},
            "overhead_ms": {"p50": _pct(overhead, 50), "p95": _pct(overhead, 95)},
            "n": len(payloads)}


def serial_loop(model: Path, video: Path, threads: int, seconds: float, port: int,
                engine_ms: float | None = None) -> dict:
    """What a user writes first: one thread reads, preprocesses, infers and publishes."""
    import paho.mqtt.client as mqtt

    cv2.setNumThreads(OPENCV_DEFAULT_THREADS)
    engine = _engine(model, threads, engine_ms)
    prep = Preprocessor(engine.info.input)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    cap = cv2.VideoCapture(str(video))
    n, end = 0, time.monotonic() + seconds
    t0, cpu0 = time.monotonic(), time.process_time()
    while time.monotonic() < end:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        scores = engine.infer(prep(frame))
        client.publish("bench/serial", json.dumps({"label": int(scores.argmax())}), qos=1)
        n += 1
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    cap.release()
    client.loop_stop()
    client.disconnect()
    # Process CPU counts FFmpeg's decoder threads and OpenCV's pool too: the loop is one
    # Python thread, not one core.
    return {"fps": round(n / elapsed, 2), "n": n,
            "process_cpu_ms_per_frame": round(cpu * 1000 / max(n, 1), 3),
            "cores_used": round(cpu / elapsed, 2)}


def preprocess_1080p(model: Path, frames: list[np.ndarray]) -> dict:
    """On one OpenCV thread, as the daemon prepares a frame by default (`opencv_threads`)."""
    cv2.setNumThreads(1)
    spec = open_engine(model, "onnxruntime").info.input
    prep = Preprocessor(spec)
    big = [cv2.resize(f, (1920, 1080)) for f in frames[:10]]
    for f in big:
        prep(f)
    times = []
    for i in range(200):
        t0 = time.perf_counter()
        prep(big[i % len(big)])
        times.append((time.perf_counter() - t0) * 1000)
    return {"input": f"{spec.width}x{spec.height}", "ms_p50": _pct(times, 50),
            "ms_p95": _pct(times, 95)}


def mqtt_rate(port: int, n: int = 5000) -> dict:
    import paho.mqtt.client as mqtt

    payload = json.dumps({"camera": "cam0", "seq": 1, "label": "star", "score": 0.9,
                          "topk": [{"label": "star", "score": 0.9}] * 3}).encode()
    out = {}
    for qos in (0, 1):
        done = threading.Event()
        count = [0]

        def on_publish(client, userdata, mid, reason_code, properties, done=done, count=count):
            count[0] += 1
            if count[0] == n:
                done.set()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-qos{qos}")
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(100)
        client.on_publish = on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()
        t0 = time.perf_counter()
        for _ in range(n):
            client.publish("bench/rate", payload, qos=qos)
        done.wait(60)
        elapsed = time.perf_counter() - t0
        client.loop_stop()
        client.disconnect()
        out[f"qos{qos}"] = round(count[0] / elapsed, 1)
    return {"messages": n, "payload_bytes": len(payload), "per_second": out}
