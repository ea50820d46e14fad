"""What one QoS 1 message costs the daemon's MQTT side: the publisher (outbox on) alone, fed
at a steady rate from one thread as the daemon's loop feeds it, against a private Mosquitto.
CPU per message by thread (the caller, the sender, paho's network thread), read from /proc.

    python -m benchmarks.publish_cost [--rate 200] [--messages 2000] [-o OUT.json]

Run it in two checkouts for a before/after (the figures move with the machine's load). It
imports only what older checkouts have too, and reads /proc and writes its report itself,
so it also runs against a checkout older than itself (`PYTHONPATH=OLD python
benchmarks/publish_cost.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from edgeswin.config import MqttConfig
from edgeswin.publish.message import topic_message
from edgeswin.publish.mqtt import Publisher
from edgeswin.publish.outbox import Outbox
from edgeswin.tools.broker import PrivateBroker
from edgeswin.tools.measure import machine

PAYLOAD = {"camera": "cam0", "seq": 1, "ts": "2026-12-06T22:00:00.000+00:00", "label": "star",
           "score": 0.9, "topk": [{"label": "star", "score": 0.9}] * 3,
           "latency_ms": {"decode": 1.0, "preprocess": 0.5, "inference": 1.0}}


def thread_seconds() -> dict[str, float]:
    """CPU seconds so far of this process's threads, by thread name (native: unnamed)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "native")
        kind = "sender" if name == "mqtt-sender" else "paho" if name.startswith("paho") \
            else "caller" if name == "MainThread" else "other"
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def one_run(port: int, rate: float, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        pub = Publisher(MqttConfig(host="127.0.0.1", port=port), "bench", "publish-cost",
                        Outbox(Path(tmp) / "outbox.sqlite3", 50_000_000))
        pub.start()
        if not pub.connected.wait(10):
            raise SystemExit("the broker did not take the connection")
        time.sleep(0.5)
        before, t0 = thread_seconds(), time.monotonic()
        for i in range(n):
            pub.publish(topic_message("bench", "classification", PAYLOAD, unit="cam0", qos=1))
            delay = t0 + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        time.sleep(0.6)  # the last acks in
        after = thread_seconds()
        left = pub.outbox.depth()
        pub.stop([])
    return {"ms_per_message": {k: round((v - before.get(k, 0.0)) * 1000 / n, 3)
                               for k, v in sorted(after.items()) if k != "other"},
            "left_unacknowledged": left}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    broker = PrivateBroker().start()
    try:
        runs = [one_run(broker.port, args.rate, args.messages) for _ in range(args.rounds)]
    finally:
        broker.stop()
    report = {"machine": machine(), "rate_per_s": args.rate, "messages": args.messages,
              "runs": runs}
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
