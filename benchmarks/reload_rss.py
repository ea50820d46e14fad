"""Memory across reloads: a daemon with one small camera; a 4K camera is added by reload,
classifies for a while, and is removed again, `--cycles` times. The daemon's RSS is sampled
before the first add and after each removal (settled), and the growth reported: the median of
the last five removals against the median of the first five.

    python -m benchmarks.reload_rss --cycles 20 --out benchmarks/results/reload-rss-cpu.json

`--env K=V` passes settings to the daemon (e.g. the TensorRT double and GPU preprocessing on
the GPU machine: see benchmarks/gpu_daemon_check.py). Exit status 1 when that growth is more
than `--limit-pct`, or the daemon did not exit 0.
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
import time
from pathlib import Path

import cv2
import yaml

from edgeswin.demo.assets import VideoSpec, make_video
from edgeswin.tools.broker import PrivateBroker

REPO = Path(__file__).resolve().parent.parent


class Counter:
    """Counts the messages on each topic under edgeswin/rss/."""

    def __init__(self, port: int):
        import threading

        import paho.mqtt.client as mqtt

        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("edgeswin/rss/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.counts[msg.topic] = self.counts.get(msg.topic, 0) + 1

    def on(self, topic: str) -> int:
        with self._lock:
            return self.counts.get(topic, 0)

    def wait_for(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def settled_rss(pid: int, seconds: float = 3.0) -> float:
    """The median of samples over a few seconds (a frame in flight moves one sample)."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(rss_mb(pid))
        time.sleep(0.25)
    return sorted(samples)[len(samples) // 2]


def video_4k(tmp: Path) -> Path:
    """A 1080p scene video scaled to 3840x2160 (rendering 4K frames directly is slow)."""
    small = tmp / "hd.mp4"
    make_video(small, VideoSpec(seconds=6, fps=15, width=1920, height=1080, seed=5))
    out = tmp / "uhd.mp4"
    src = cv2.VideoCapture(str(small))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 15, (3840, 2160))
    while True:
        ok, frame = src.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (3840, 2160), interpolation=cv2.INTER_LINEAR))
    writer.release()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--frames", type=int, default=20, help="4K classifications per cycle")
    ap.add_argument("--engine", action="append", default=[],
                    help="YAML of an engines entry (default: the demo model, ONNX Runtime)")
    ap.add_argument("--env", action="append", default=[], help="K=V for the daemon")
    ap.add_argument("--limit-pct", type=float, default=5.0)
    ap.add_argument("--mosquitto", default="mosquitto")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeswin-rss-"))
    uhd = video_4k(tmp)
    small = tmp / "small.mp4"
    make_video(small, VideoSpec(seconds=6, fps=15, width=640, height=360, seed=6))
    broker = PrivateBroker(binary=args.mosquitto).start()
    cfg = tmp / "cfg"
    (cfg / "cameras").mkdir(parents=True)
    engines = [yaml.safe_load(e) for e in args.engine] or [
        {"name": "primary", "model": str(REPO / "models" / "swin-demo-112.onnx")}]
    (cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
        "device_id": "rss", "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "engines": engines, "state_dir": str(tmp / "state"), "stats_interval_s": 5}))
    (cfg / "cameras" / "small.yaml").write_text(yaml.safe_dump(
        {"source": str(small), "loop": True, "fps": 5}))
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    log = (tmp / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "edgeswin", "run", "-c", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    sub = Counter(broker.port)
    report: dict = {"cycles": [], "daemon_env": args.env, "engines": engines}
    try:
        assert sub.wait_for(lambda: sub.on("edgeswin/rss/small/classification"), 180), \
            (tmp / "daemon.log").read_text()
        report["rss_before_mb"] = settled_rss(proc.pid)
        camera = cfg / "cameras" / "uhd.yaml"
        topic = "edgeswin/rss/uhd/classification"
        for cycle in range(args.cycles):
            seen = sub.on(topic)
            camera.write_text(yaml.safe_dump({"source": str(uhd), "loop": True, "fps": 0,
                                              "realtime": False}))
            proc.send_signal(signal.SIGHUP)
            assert sub.wait_for(lambda s=seen: sub.on(topic) >= s + args.frames, 120), \
                (tmp / "daemon.log").read_text()[-3000:]
            with_4k = settled_rss(proc.pid, 1.5)
            camera.unlink()
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            after = settled_rss(proc.pid)
            report["cycles"].append({"cycle": cycle + 1, "rss_with_4k_mb": round(with_4k, 1),
                                     "rss_after_removal_mb": round(after, 1)})
            print(json.dumps(report["cycles"][-1]), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        sub.close()
        broker.close()
    removals = [c["rss_after_removal_mb"] for c in report["cycles"]]
    first, last = removals[0], removals[-1]
    # One settled sample moves by tens of MB with what the allocator happens to hold: the
    # trend is the median of the last five removals against the median of the first five.
    early, late = statistics.median(removals[:5]), statistics.median(removals[-5:])
    report.update({"exit_code": code, "first_removal_mb": first, "last_removal_mb": last,
                   "growth_pct_first_to_last": round(100 * (last - first) / first, 2),
                   "median_first5_mb": early, "median_last5_mb": late,
                   "growth_pct_median_first5_to_last5": round(100 * (late - early) / early, 2),
                   "peak_with_4k_mb": max(c["rss_with_4k_mb"] for c in report["cycles"])})
    print(json.dumps({k: v for k, v in report.items() if k != "cycles"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if code == 0 and report["growth_pct_median_first5_to_last5"] <= args.limit_pct else 1


if __name__ == "__main__":
    sys.exit(main())
