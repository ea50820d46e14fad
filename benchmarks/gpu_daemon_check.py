"""The daemon end to end on a real NVIDIA GPU with real pycuda and the TensorRT test double
(tests/fakes/trt: TensorRT itself cannot be installed there); prints and writes JSON.

Part 1, one daemon process for `--seconds`:
- 4 looping cameras (two 1920x1080, two 1280x720; two prepared ahead by their capture
  threads at fps 0, two at a set rate), a real Mosquitto broker and a subscriber;
- a ladder of two TensorRT rungs built in the background on first start (rung 0 with GPU
  preprocessing, its kernel compiled with nvcc into the state dir) and an ONNX Runtime rung;
- forced switches: a scripted thermal zone heated and cooled every few seconds;
- reloads: SIGHUP every few seconds, alternating one camera's fps;
- SIGTERM at the end.
Checked: exit code 0, no warning, traceback or pycuda clean-up complaint in the log, every
camera's seq gap-free, top-1 agreement with the videos' ground truth on rung 0, GPU memory
(nvidia-smi) flat from the first switch to the end.

Part 2, the GPU-preprocessing rung against the CPU-preprocessing one: the same cached engine
pinned, four 1080p cameras at fps 0, `--compare-seconds` each; classifications per second,
inference-step and capture-to-publish p50 from the payloads. (The double runs the network with
ONNX Runtime on the CPU, so the engine step costs what the CPU makes it cost, not a GPU's.)

Run on the GPU machine with pycuda, pydantic, paho-mqtt and PyYAML importable and a Mosquitto
binary: python3 benchmarks/gpu_daemon_check.py --mosquitto PATH --out report.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from edgeswin.bench import LocalBroker  # noqa: E402 (the repo on the path first)

PRIMARY = REPO / "models" / "swin-demo-112.onnx"
SMALL = REPO / "models" / "swin-demo-64.onnx"
ROOT = "edgeswin/gpu"
WARNINGS = ("could not be cleaned up", "Traceback", "UserWarning", "out-of-thread")


class Subscriber:
    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{ROOT}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload.decode(errors="replace")
        with self.lock:
            self.messages.append((msg.topic, payload))

    def on(self, topic: str) -> list:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def gpu_memory_mb() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,"
                              "nounits", "-i", "0"], capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def make_videos(tmp: Path) -> dict[str, Path]:
    from edgeswin.demo_assets import VideoSpec, make_video

    videos = {}
    for name, (w, h, seed) in {"hd1": (1920, 1080, 11), "hd2": (1920, 1080, 12),
                               "sd1": (1280, 720, 13), "sd2": (1280, 720, 14)}.items():
        path = tmp / f"{name}.mp4"
        make_video(path, VideoSpec(seconds=10, fps=15, width=w, height=h, seed=seed))
        videos[name] = path
    return videos


def write_config(cfg: Path, port: int, cameras: dict[str, dict], engines: list[dict],
                 fallback: dict, state: Path) -> None:
    (cfg / "cameras").mkdir(parents=True, exist_ok=True)
    for old in (cfg / "cameras").glob("*.yaml"):
        old.unlink()
    device = {"device_id": "gpu", "mqtt": {"host": "127.0.0.1", "port": port, "qos": 1},
              "engines": engines, "fallback": fallback, "state_dir": str(state),
              "stats_interval_s": 2}
    (cfg / "edgeswin.yaml").write_text(yaml.safe_dump(device))
    for name, cam in cameras.items():
        (cfg / "cameras" / f"{name}.yaml").write_text(yaml.safe_dump(cam))


def start_daemon(cfg: Path, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, **(extra_env or {}), "PYTHONPATH": os.pathsep.join(
        [str(REPO / "tests" / "fakes" / "trt"), os.environ.get("PYTHONPATH", ""), str(REPO)])}
    env["PATH"] = "/usr/local/cuda/bin:" + env.get("PATH", "")  # nvcc, for the kernel's cubin
    return subprocess.Popen([sys.executable, "-W", "default", "-m", "edgeswin", "run", "-c",
                             str(cfg)], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=REPO)


def stop_daemon(proc: subprocess.Popen, timeout: float = 30) -> tuple[int | None, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    return code, round(time.monotonic() - t0, 2)


def seq_report(sub: Subscriber, cameras) -> dict:
    out = {}
    for cam in cameras:
        seqs = [m["seq"] for m in sub.on(f"{ROOT}/{cam}/classification")]
        out[cam] = {"classifications": len(seqs),
                    "gap_free_from_1": seqs == list(range(1, len(seqs) + 1))}
    return out


def part1(args, tmp: Path, videos: dict[str, Path], broker) -> dict:
    from edgeswin.demo_assets import read_ground_truth

    thermal = tmp / "thermal" / "thermal_zone0"
    thermal.mkdir(parents=True)
    (thermal / "type").write_text("gpu-thermal\n")
    temp = thermal / "temp"
    temp.write_text("50000\n")
    cameras = {"hd1": {"source": str(videos["hd1"]), "loop": True, "fps": 0},
               "hd2": {"source": str(videos["hd2"]), "loop": True, "fps": 8},
               "sd1": {"source": str(videos["sd1"]), "loop": True, "fps": 0},
               "sd2": {"source": str(videos["sd2"]), "loop": True, "fps": 5}}
    engines = [{"name": "primary", "model": str(PRIMARY), "backend": "tensorrt",
                "precision": "fp16", "preprocess": "gpu"},
               {"name": "small", "model": str(SMALL), "backend": "tensorrt", "precision": "fp16"},
               {"name": "small-cpu", "model": str(SMALL)}]
    fallback = {"thermal_root": str(tmp / "thermal"), "zones": ["gpu"], "nvml": False,
                "degrade_above_c": 80, "recover_below_c": 60, "hold_s": 0.3, "cooldown_s": 0.5,
                "min_dwell_s": 1, "poll_s": 0.2}
    cfg, state = tmp / "cfg", tmp / "state"
    write_config(cfg, broker.port, cameras, engines, fallback, state)
    sub = Subscriber(broker.port)
    log = tmp / "daemon.log"
    proc = start_daemon(cfg, log)
    engine_topic = f"{ROOT}/engine"
    t0 = time.monotonic()
    built = False
    while time.monotonic() - t0 < 300 and proc.poll() is None:
        msgs = sub.on(engine_topic)
        if msgs and msgs[-1]["rung"] == 0 and msgs[-1].get("builds", {}).get(
                "small", {}).get("state") in ("ready", "failed", "rejected"):
            built = True
            break
        time.sleep(0.5)
    report: dict = {"builds_done_s": round(time.monotonic() - t0, 1), "built": built}
    if not built:
        report["log_tail"] = log.read_text()[-4000:]
        proc.kill()
        sub.stop()
        return report
    report["builds"] = sub.on(engine_topic)[-1].get("builds")
    memory = [gpu_memory_mb()]
    period = args.seconds / 3
    # Forced switches: heat and cool the zone.
    end = time.monotonic() + period
    hot = False
    while time.monotonic() < end:
        hot = not hot
        temp.write_text("90000\n" if hot else "50000\n")
        time.sleep(2.5)
        memory.append(gpu_memory_mb())
    temp.write_text("50000\n")
    # Reloads: SIGHUP with sd2's fps alternating.
    end = time.monotonic() + period
    reloads = 0
    while time.monotonic() < end:
        cameras["sd2"]["fps"] = 6 if reloads % 2 == 0 else 5
        (cfg / "cameras" / "sd2.yaml").write_text(yaml.safe_dump(cameras["sd2"]))
        proc.send_signal(signal.SIGHUP)
        reloads += 1
        time.sleep(2)
        memory.append(gpu_memory_mb())
    # Steady on rung 0.
    end = time.monotonic() + period
    while time.monotonic() < end:
        time.sleep(2)
        memory.append(gpu_memory_mb())
    code, took = stop_daemon(proc)
    time.sleep(1)
    sub.stop()
    text = log.read_text()
    switches = [m for m in sub.on(engine_topic) if m.get("from") is not None]
    truth = {cam: read_ground_truth(videos[cam]) for cam in cameras}
    on_primary = [(cam, m) for cam in cameras for m in sub.on(f"{ROOT}/{cam}/classification")
                  if m["rung"] == 0]
    agree = sum(m["label"] == truth[cam][m["frame_index"]] for cam, m in on_primary)
    prep = [m["latency_ms"]["preprocess"] for _, m in on_primary]
    report.update({
        "exit_code": code, "sigterm_to_exit_s": took,
        "warnings_in_log": [line for line in text.splitlines() if any(w in line for w in WARNINGS)],
        "switches": len(switches), "rungs_visited": sorted({m["rung"] for m in switches}),
        "reloads": reloads, "reloads_logged": text.count("reload"),
        "cameras": seq_report(sub, cameras),
        "rung0_top1_vs_ground_truth": round(agree / max(len(on_primary), 1), 4),
        "rung0_classifications": len(on_primary),
        # The finisher thread as <root>/stats said it, every stats message.
        "finisher_in_stats": [m.get("finisher") for m in sub.on(f"{ROOT}/stats")],
        "rung0_preprocess_ms_p50_on_the_inference_thread_or_ahead": statistics.median(prep)
        if prep else None,
        "kernel_choice": [line.split("INFO", 1)[-1].strip() for line in text.splitlines()
                          if "frames preprocessed on the" in line],
        "kernels_cached": sorted(p.name for p in (state / "kernels").glob("*.cubin")),
        "gpu_memory_mb": {"samples": memory, "first": memory[0], "last": memory[-1],
                          "max": max(m for m in memory if m is not None)
                          if any(m is not None for m in memory) else None},
    })
    return report


def part2(args, tmp: Path, videos: dict[str, Path], broker) -> dict:
    """The same cached engine, pinned, fed by the GPU kernel or by the CPU."""
    # Consumer-paced (realtime off): each camera decodes its next frame once the last one was
    # taken, so the engine, not the files' 15 fps, sets the pace.
    cameras = {f"cam{i}": {"source": str(videos["hd1" if i % 2 else "hd2"]), "loop": True,
                           "fps": 0, "realtime": False} for i in range(4)}
    out = {}
    runs = [(way, i) for i in range(args.repeats) for way in ("cpu", "gpu")]  # interleaved
    for way, i in runs:
        engines = [{"name": "primary", "model": str(PRIMARY), "backend": "tensorrt",
                    "precision": "fp16", "preprocess": way}]
        cfg = tmp / f"cfg-{way}"
        write_config(cfg, broker.port, cameras, engines,
                     {"pinned_rung": 0, "nvml": False, "thermal_root": str(tmp / "none")},
                     tmp / "state")
        sub = Subscriber(broker.port)
        # The double computes the network on the CPU; two threads leave the cores mostly to
        # the daemon, as a real engine on the GPU would.
        log = tmp / f"daemon-{way}-{i}.log"
        proc = start_daemon(cfg, log, {"FAKE_TRT_THREADS": "2"})
        topic = f"{ROOT}/cam0/classification"
        deadline = time.monotonic() + 120
        while not sub.on(topic) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # past the per-size trials and warm-up
        sub.clear()
        t0 = time.monotonic()
        time.sleep(args.compare_seconds)
        got = [m for cam in cameras for m in sub.on(f"{ROOT}/{cam}/classification")]
        seconds = time.monotonic() - t0
        code, _ = stop_daemon(proc)
        sub.stop()
        run = {"chosen": [line.split(": ", 2)[-1] for line in log.read_text().splitlines()
                          if "frames preprocessed on the" in line],
               "classifications_per_s": round(len(got) / seconds, 1),
               "inference_ms_p50": statistics.median(m["latency_ms"]["inference"] for m in got),
               "preprocess_ms_p50": statistics.median(m["latency_ms"]["preprocess"] for m in got),
               "capture_to_publish_ms_p50": statistics.median(
                   m["latency_ms"]["capture_to_publish"] for m in got),
               "exit_code": code}
        out.setdefault(way, []).append(run)
    cpu_rate = statistics.mean(r["classifications_per_s"] for r in out["cpu"])
    gpu_rate = statistics.mean(r["classifications_per_s"] for r in out["gpu"])
    out["gpu_over_cpu_rate"] = round(gpu_rate / cpu_rate, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mosquitto", default="mosquitto")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--compare-seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="copy the daemon logs here")
    parser.add_argument("--parts", default="12", help="which parts to run (1, 2 or 12)")
    parser.add_argument("--repeats", type=int, default=2, help="part 2 runs of each way")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeswin-gpu-"))
    broker = LocalBroker(args.mosquitto)
    report: dict = {"gpu_memory_idle_mb": gpu_memory_mb()}
    try:
        videos = make_videos(tmp)
        if "1" in args.parts:
            report["part1_daemon"] = part1(args, tmp, videos, broker)
            print(json.dumps(report["part1_daemon"], indent=1), flush=True)
        if "2" in args.parts:
            report["part2_gpu_vs_cpu_preprocessing"] = part2(args, tmp, videos, broker)
            print(json.dumps(report["part2_gpu_vs_cpu_preprocessing"], indent=1), flush=True)
    finally:
        broker.close()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("daemon*.log"):
                (args.keep / log.name).write_text(log.read_text())
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
