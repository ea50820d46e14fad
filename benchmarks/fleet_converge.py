"""A fleet converging: `--devices` real daemons (one camera each at 1 frame a second, the small
demo model, health and canary off, so that many fit on a small machine) on one private broker.
A signed camera change is pushed to their group; measured: the time from the push to every
device reporting it applied (and to the first and the median), the messages and bytes each
device received and sent for it (its bundle, its reports), and the broker's retained messages.
"taken" is the first report (`rolling_out`: checked, staged, validated, reloaded); `applied`
follows `revert_after_s` (5 s here) later.

    python -m benchmarks.fleet_converge --devices 20 50 -o benchmarks/results/fleet-converge.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from edgeswin.demo.assets import VideoSpec, make_video
from edgeswin.fleet.bundle import keygen
from edgeswin.tools.broker import PrivateBroker
from edgeswin.tools.measure import machine

REPO = Path(__file__).resolve().parent.parent


class Tap:
    """Every message under edgeswin/#, and the broker's retained count ($SYS)."""

    def __init__(self, port: int):
        self.lock = threading.Lock()
        self.messages: list[tuple[float, str, int, bytes]] = []
        self.retained_count = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: (c.subscribe("edgeswin/#", 1),
                                               c.subscribe("$SYS/broker/retained messages/count"))
        self.client.on_message = self._take
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _take(self, client, userdata, msg) -> None:
        with self.lock:
            if msg.topic.startswith("$SYS"):
                self.retained_count = int(msg.payload)
            else:
                self.messages.append((time.monotonic(), msg.topic, len(msg.payload),
                                      bytes(msg.payload)))


def run(n: int, work: Path, video: Path, port: int) -> dict:
    keys, trusted = work / "keys", work / "trusted"
    keygen(keys)
    trusted.mkdir()
    shutil.copy(keys / "fleet.pub", trusted)
    procs = []
    small = REPO / "models" / "swin-demo-64.onnx"
    for i in range(n):
        cfg = work / f"dev{i}"
        (cfg / "cameras").mkdir(parents=True)
        (cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
            "device_id": f"dev{i}", "mqtt": {"host": "127.0.0.1", "port": port},
            "engines": [{"name": "small", "model": str(small), "threads": 1}],
            "state_dir": str(cfg / "state"), "stats_interval_s": 30,
            "health": {"enabled": False}, "canary": {"enabled": False},
            "snapshots": {"enabled": False},
            "fleet": {"enabled": True, "group": "bench", "trusted_keys": str(trusted),
                      "revert_after_s": 5}}))
        (cfg / "cameras" / "lobby.yaml").write_text(yaml.safe_dump(
            {"source": str(video), "fps": 1, "loop": True}))
        procs.append(subprocess.Popen([sys.executable, "-m", "edgeswin", "--log-level",
                                       "warning", "run", "-c", str(cfg)], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    tap = Tap(port)
    try:
        deadline = time.monotonic() + 60 + 6 * n
        while time.monotonic() < deadline:
            with tap.lock:
                online = {t for _, t, _, p in tap.messages if t.endswith("/status")
                          and p == b"online"}
            if len(online) == n:
                break
            time.sleep(0.5)
        started = len(online)
        change = work / "change"
        (change / "cameras").mkdir(parents=True)
        (change / "cameras" / "yard.yaml").write_text(yaml.safe_dump(
            {"source": str(video), "fps": 1, "loop": True}))
        with tap.lock:
            before = len(tap.messages)
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "edgeswin", "fleet", "push", "--config",
                        str(change), "--group", "bench", "--key", str(keys / "fleet.key"),
                        "--port", str(port)], check=True, cwd=REPO, capture_output=True)
        applied: dict[str, float] = {}
        taken: dict[str, float] = {}
        digests: set[str] = set()
        deadline = time.monotonic() + 120 + 2 * n
        while len(applied) < n and time.monotonic() < deadline:
            time.sleep(0.2)
            with tap.lock:
                for at, topic, _, payload in tap.messages[before:]:
                    if topic.endswith("/reported"):
                        report = json.loads(payload)
                        if report.get("version") == 1 and report.get("state") == "rolling_out":
                            taken.setdefault(topic, at - t0)
                        if report.get("version") == 1 and report.get("state") == "applied":
                            applied.setdefault(topic, at - t0)
                            digests.add(report.get("config_sha256"))
        time.sleep(1.5)  # the $SYS count is published every few seconds
        with tap.lock:
            after = tap.messages[before:]
            retained = tap.retained_count
        bundle = [size for _, t, size, _ in after if t == "edgeswin/fleet/bench/desired"]
        reports = [size for _, t, size, _ in after if t.endswith("/reported")]
        times = sorted(applied.values())
        return {"devices": n, "online_before_push": started, "applied": len(applied),
                "distinct_config_sha256": len(digests),
                "seconds_to_first_applied": round(times[0], 2) if times else None,
                "seconds_to_median_applied": round(statistics.median(times), 2) if times
                else None,
                "seconds_to_all_applied": round(times[-1], 2) if len(times) == n else None,
                "seconds_to_all_taken": round(max(taken.values()), 2) if len(taken) == n
                else None,
                "revert_after_s": 5,
                "per_device": {"received": {"messages": 1, "bytes": bundle[0] if bundle
                                            else None},
                               "sent": {"messages": round(len(reports) / n, 2),
                                        "bytes": round(sum(reports) / n)}},
                "broker_retained_messages": retained}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        tap.client.loop_stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[20])
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "lobby.mp4"
        make_video(video, VideoSpec(seconds=10, fps=5, width=320, height=180, seed=3))
        for n in args.devices:
            broker = PrivateBroker().start()
            try:
                work = Path(tmp) / f"fleet{n}"
                work.mkdir()
                results.append(run(n, work, video, broker.port))
            finally:
                broker.close()
            print(json.dumps(results[-1]), flush=True)
    report = {"machine": machine(), "runs": results}
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
