"""Soak: the daemon under load and faults for a long time, watching what grows.

Two cameras at their maximum rate (a video file read as fast as the engine takes it, and an
MJPEG stream that drops its connection every `--reconnect-every` seconds), a private broker
restarted every `--broker-every` seconds (down for 10 s), and a subscriber counting messages.
Every `--sample` seconds: the daemon's RSS, open fds, threads and outbox depth. Writes
`<out>.csv`, `<out>.json` (with the growth after warm-up) and `<out>.png`.

    python -m benchmarks.soak --minutes 30 --out benchmarks/results/soak-30min

With `--chaos-every S`, every S seconds one fault drawn at random (seeded) instead of the
regular broker restarts: the broker SIGKILLed, SIGTERMed or SIGSTOPped for a while, a reload
that adds a third camera or removes it, or a burst of SIGHUPs. Reported besides: per camera,
classifications that arrived after a newer one (out of order) and seqs never seen, and the
RSS growth between the second and the last fifth of the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from edgeswin.demo.assets import VideoSpec, make_video
from edgeswin.tools.broker import PrivateBroker
from tests.harness import Subscriber
from tests.streams import MjpegCamera

REPO = Path(__file__).resolve().parent.parent


def sample(pid: int, outbox: Path) -> dict:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    field = {line.split(":")[0]: line.split(":")[1].split() for line in status}
    depth = 0
    if outbox.exists():
        try:
            with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
                depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.Error:
            depth = -1
    return {"rss_mb": int(field["VmRSS"][0]) / 1024, "threads": int(field["Threads"][0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "outbox_depth": depth}


def growth(rows: list[dict], key: str, warmup_s: float) -> dict:
    after = [r for r in rows if r["t"] >= warmup_s]
    if len(after) < 3:
        return {}
    t = np.array([r["t"] for r in after]) / 3600
    v = np.array([r[key] for r in after])
    slope = float(np.polyfit(t, v, 1)[0])
    return {"first": float(v[0]), "last": float(v[-1]), "min": float(v.min()),
            "max": float(v.max()), "slope_per_hour": round(slope, 3)}


class Chaos:
    """One fault at a time, drawn at random: what an hour of a real site does to the daemon."""

    KINDS = ("broker SIGKILL", "broker SIGTERM", "broker SIGSTOP", "camera added",
             "camera removed", "SIGHUP burst")

    def __init__(self, rng: random.Random, broker, daemon, cfg: Path, video: Path,
                 events: list, t0: float):
        self.rng, self.broker, self.daemon, self.cfg, self.video = rng, broker, daemon, cfg, video
        self.events, self.t0 = events, t0

    def strike(self) -> None:
        kind = self.rng.choice(self.KINDS)
        extra = self.cfg / "cameras" / "extra.yaml"
        if kind == "camera added" and extra.exists() or kind == "camera removed" and \
                not extra.exists():
            kind = "camera removed" if extra.exists() else "camera added"
        self.events.append((time.monotonic() - self.t0, kind))
        if kind == "broker SIGKILL":
            self.broker.proc.kill()
            self.broker.proc.wait()
            time.sleep(self.rng.uniform(1, 5))
            self.broker.start()
        elif kind == "broker SIGTERM":
            self.broker.stop(graceful=True)
            time.sleep(self.rng.uniform(1, 5))
            self.broker.start()
        elif kind == "broker SIGSTOP":
            os.kill(self.broker.proc.pid, signal.SIGSTOP)
            time.sleep(self.rng.uniform(1, 8))
            os.kill(self.broker.proc.pid, signal.SIGCONT)
        elif kind == "camera added":
            extra.write_text(yaml.safe_dump({"source": str(self.video), "fps": 5, "loop": True}))
            self.daemon.send_signal(signal.SIGHUP)
        elif kind == "camera removed":
            extra.unlink()
            self.daemon.send_signal(signal.SIGHUP)
        else:
            for _ in range(5):
                self.daemon.send_signal(signal.SIGHUP)
                time.sleep(0.1)


def order_report(messages: list[tuple[str, bytes]]) -> dict:
    """Per camera: classifications that arrived after a newer one, and seqs never seen (a
    camera added again starts from 1: a new run of seqs)."""
    out = {}
    by_camera: dict[str, list[int]] = {}
    for topic, payload in messages:
        if topic.endswith("/classification"):
            by_camera.setdefault(topic.split("/")[-2], []).append(json.loads(payload)["seq"])
    for camera, seqs in by_camera.items():
        late = missing = duplicates = 0
        top, seen = 0, set()
        for seq in seqs:
            if seq == 1 and top > 1:  # the camera came back: its seq starts again
                missing += top - len(seen)
                top, seen = 0, set()
            if seq in seen:
                duplicates += 1
                continue
            late += seq < top
            seen.add(seq)
            top = max(top, seq)
        missing += top - len(seen)
        out[camera] = {"classifications": len(seqs), "out_of_order": late,
                       "missing": missing, "duplicates": duplicates}
    return out


def plot(rows: list[dict], events: list[tuple[float, str]], out: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # the `bench` extra: the figures are in the CSV and JSON anyway
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart drawn")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] / 60 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    for ax, key, label in zip(axes, ("rss_mb", "fds", "threads", "outbox_depth"),
                              ("RSS (MB)", "open fds", "threads", "outbox depth")):
        ax.plot(t, [r[key] for r in rows], lw=1.2)
        ax.set_ylabel(label)
        for when, what in events:
            ax.axvline(when / 60, color="red" if what == "broker down" else "grey",
                       lw=0.6, alpha=0.5)
    axes[-1].set_xlabel("minutes (red: broker down, grey: broker up)" if events else
                        "minutes")
    fig.suptitle("edgeswin soak: two cameras at full rate, broker restarts, stream reconnects")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--broker-every", type=float, default=300, help="seconds")
    parser.add_argument("--reconnect-every", type=float, default=120, help="seconds")
    parser.add_argument("--sample", type=float, default=5, help="seconds")
    parser.add_argument("--warmup", type=float, default=120, help="seconds left out of growth")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/soak")
    parser.add_argument("--chaos-every", type=float, default=0, help="seconds; 0: off")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replot", action="store_true", help="only redraw <out>.png from "
                        "<out>.csv and <out>.json")
    args = parser.parse_args()
    if args.replot:
        with args.out.with_suffix(".csv").open() as fh:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
        saved = json.loads(args.out.with_suffix(".json").read_text())
        plot(rows, [tuple(e) for e in saved.get("events", [])], args.out.with_suffix(".png"))
        return 0

    work = Path(tempfile.mkdtemp(prefix="edgeswin-soak-"))
    video = work / "cam.mp4"
    make_video(video, VideoSpec(seconds=10, fps=15, width=640, height=360, seed=8))
    frames = [np.full((360, 640, 3), v, np.uint8) for v in (30, 90, 150, 210)]
    broker = PrivateBroker(work, persistent=True)
    broker.start()
    stream_fps = 15
    rows, events = [], []
    with MjpegCamera(frames, fps=stream_fps, stall=False,
                     frames_per_connection=int(stream_fps * args.reconnect_every)) as cam:
        cfg = work / "cfg"
        (cfg / "cameras").mkdir(parents=True)
        (cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
            "device_id": "soak", "mqtt": {"host": "127.0.0.1", "port": broker.port, "qos": 1,
                                          "keepalive_s": 5},
            "engines": [{"name": "primary", "model": str(REPO / "models/swin-demo-112.onnx")}],
            "state_dir": str(work / "state"), "stats_interval_s": 10,
            "fallback": {"thermal_root": str(work / "none")}}))
        (cfg / "cameras" / "file.yaml").write_text(yaml.safe_dump(
            {"source": str(video), "fps": 0, "loop": True, "realtime": False}))
        (cfg / "cameras" / "stream.yaml").write_text(yaml.safe_dump(
            {"source": cam.url, "fps": 0, "reconnect": {"initial_s": 0.5, "max_s": 5}}))
        log = (work / "daemon.log").open("w")
        daemon = subprocess.Popen([sys.executable, "-m", "edgeswin", "run", "-c", str(cfg)],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        sub = Subscriber(broker.port, "edgeswin/#", client_id="soak-subscriber")
        t0 = time.monotonic()
        next_restart = args.broker_every if not args.chaos_every else float("inf")
        next_fault = args.chaos_every or float("inf")
        chaos = Chaos(random.Random(args.seed), broker, daemon, cfg, video, events, t0)
        end = args.minutes * 60
        try:
            while (now := time.monotonic() - t0) < end:
                if now >= next_fault:
                    chaos.strike()
                    next_fault += args.chaos_every
                if now >= next_restart:
                    events.append((now, "broker down"))
                    broker.stop(graceful=True)
                    time.sleep(10)
                    broker.start()
                    events.append((time.monotonic() - t0, "broker up"))
                    next_restart += args.broker_every
                if daemon.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {daemon.returncode}")
                rows.append({"t": round(time.monotonic() - t0, 1),
                             **sample(daemon.pid, work / "state" / "outbox.sqlite3"),
                             "received": len(sub.messages), "connections": cam.connections})
                time.sleep(args.sample)
        finally:
            daemon.terminate()
            code = daemon.wait(30)
            broker.stop(graceful=False)
            if broker.proc is not None and broker.proc.poll() is None:
                broker.proc.kill()
            time.sleep(0.5)
            sub_messages = [(t, bytes(p)) for t, p, _ in sub.messages]
            sub.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.with_suffix(".csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fifth = len(rows) // 5
    second, last = rows[fifth:2 * fifth], rows[-fifth:]
    report = {"minutes": args.minutes, "broker_restarts": sum(e[1] == "broker down"
                                                             for e in events),
              "faults": {kind: sum(e[1] == kind for e in events)
                         for kind in sorted({e[1] for e in events})},
              "order": order_report(sub_messages),
              "rss_second_fifth_mb": round(float(np.median([r["rss_mb"] for r in second])), 1)
              if second else None,
              "rss_last_fifth_mb": round(float(np.median([r["rss_mb"] for r in last])), 1)
              if last else None,
              "stream_connections": rows[-1]["connections"], "exit_code": code,
              "messages_received": rows[-1]["received"], "warmup_s": args.warmup,
              "growth_after_warmup": {k: growth(rows, k, args.warmup)
                                      for k in ("rss_mb", "fds", "threads", "outbox_depth")},
              "log_errors": sum(" ERROR " in line for line in (work / "daemon.log").open()),
              "events": [[round(when, 1), what] for when, what in events]}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    plot(rows, events, args.out.with_suffix(".png"))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
