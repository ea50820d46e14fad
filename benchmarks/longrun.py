"""A year of a device's life in hours: what grows, what is lost, what arrives out of order.

One daemon on this machine runs three file cameras of mixed sizes read as fast as they decode
(a fixed camera whose lens is covered for a while every pass: health problems, snapshots; a
1280x720 and a 320x240 scene), with health, the canary, snapshots, hard examples, Home
Assistant discovery and the durable outbox on, against a real Mosquitto with persistence. Time
is compressed into weeks of `--week-s` seconds; each week brings what a week brings a device:

- a model update: the primary rung's file replaced by the same network saved again (other
  bytes), SIGHUP: a rollout (building, shadow, promoted, watched); every 4th week it is rolled
  back by hand (`edgeswin rollback`) once promoted;
- a reload that changes one camera's rate, and a fourth camera added (even weeks) or removed
  (odd weeks);
- every 3rd week the broker restarted (SIGTERM, as `systemctl restart mosquitto`), and every
  5th week the broker paused (SIGSTOP) for 5 s, as a network that stops answering;
- every 13th week (a quarter; `--kill-every-weeks`) the daemon killed with SIGKILL and started
  again.

Sampled every `--sample` seconds: the daemon's RSS and USS, open files, threads, every store
under the state dir (outbox, model store, engine cache, health, snapshots, hard examples) and
its log, and the broker's retained topics under the device's root. A subscriber with a
persistent session records every classification's `seq` per camera in arrival order.

Judged (exit 1 when one fails; `--out` gets the figures as JSON):
- memory: within each daemon's life, after its first `--warmup-s`, the median RSS of its last
  third of weeks is at most 5 % (or 16 MB) above that of its first third (weekly medians:
  each week loads a new model; a leak of the kind users report, GBs a day, is hundreds of MB
  an hour here); the slope per million classifications is reported;
- disk: every store ends no larger than its own bound (outbox_max_mb, snapshots.keep_mb,
  hard_examples.keep_mb; the model store: what a rollback needs, at most three models per
  rung; TensorRT plans: theirs and the configured file's), and the state dir's last quarter
  is at most 10 % + 1 MB above its first half's peak;
- retained topics: none of the removed camera's is left, and their count does not grow;
- classifications: none lost within a daemon's life, none out of order per camera; duplicates
  only within 30 s after a broker restart or pause or a daemon kill (QoS 1 is at least once),
  counted. (A killed daemon's classifications not yet stored in its outbox are a tail no
  subscriber can see missing: the sender's queue, a few at most.)

Memory is judged only on a life of at least `--judge-memory-after` classifications (100,000):
a short run sees each week's new model loaded, not a trend. Not done here: fleet pushes, review
decisions, tracemalloc's view of the heap. `--tensorrt` puts the primary rung on TensorRT (the
test double, over real pycuda on a GPU machine) and samples the GPU's memory.

    .venv/bin/python -m benchmarks.longrun --hours 2 --out benchmarks/results/longrun-2h.json
    .venv/bin/python -m benchmarks.longrun --minutes 2.5 --week-s 15 --kill-every-weeks 6  # make test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import yaml

from benchmarks.gpu_daemon_check import gpu_memory_mb
from edgeswin.demo import fixed_camera
from edgeswin.demo.assets import VideoSpec, make_video
from edgeswin.tools.broker import PrivateBroker
from tests.model_variants import reexported

REPO = Path(__file__).resolve().parent.parent

PRIMARY = REPO / "models" / "swin-demo-112.onnx"
SMALL = REPO / "models" / "swin-demo-64.onnx"
DEVICE = "longrun"
ROOT = f"edgeswin/{DEVICE}"
DUPLICATE_WINDOW_S = 30.0
# What a life's weekly RSS medians move by without a leak (allocator arenas, a model loaded
# each week): a leak of the kind users report (GBs a day) is hundreds of MB an hour here.
MEMORY_NOISE_PCT, MEMORY_NOISE_MB = 5.0, 16.0
STORES = ("outbox.sqlite3", "models", "engines", "health", "snapshots", "hard", "kernels")


class Recorder:
    """A persistent-session subscriber: classifications as (camera, seq) in arrival order,
    every other message only counted (a day of payloads would not fit in memory)."""

    def __init__(self, port: int):
        self.seqs: list[tuple[str, int, float]] = []  # camera, seq, arrival (monotonic)
        self.other = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="longrun-sub",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{ROOT}/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        parts = msg.topic.split("/")
        if parts[-1] == "classification" and len(parts) == 4:
            self.seqs.append((parts[2], json.loads(msg.payload)["seq"], time.monotonic()))
        else:
            self.other += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, wait_s: float = 1.5) -> dict[str, int]:
    """The broker's retained topics under the root now, with their payload sizes."""
    got: dict[str, int] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        if msg.retain:
            with lock:
                got[msg.topic] = len(msg.payload)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(f"{ROOT}/#", 0),
                                                            ("homeassistant/#", 0)])
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(wait_s)
    client.loop_stop()
    client.disconnect()
    with lock:
        return {t: n for t, n in got.items() if n}  # an empty retained payload is a deletion


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                pass  # rotated away while walking
    return total


def process(pid: int) -> dict:
    status = {line.split(":")[0]: line.split(":")[1].split()
              for line in Path(f"/proc/{pid}/status").read_text().splitlines()}
    rollup = {line.split(":")[0]: line.split(":")[1].split()
              for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
    uss = sum(int(rollup.get(k, [0])[0]) for k in ("Private_Clean", "Private_Dirty"))
    return {"rss_mb": int(status["VmRSS"][0]) / 1024, "uss_mb": uss / 1024,
            "threads": int(status["Threads"][0]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def sequence_report(seqs: list[tuple[str, int, float]], t0: float = 0.0) -> dict:
    """Per camera, over runs of seq (a seq of 1 after a higher one starts a run again: a
    restart, or a camera added again): lost (seqs never seen below the run's highest), out of
    order (arrived after a higher one of its run), duplicates (seen twice) with the run
    seconds at which each arrived."""
    by_camera: dict[str, list[tuple[int, float]]] = {}
    for camera, seq, at in seqs:
        by_camera.setdefault(camera, []).append((seq, at - t0))
    out = {}
    for camera, values in by_camera.items():
        late = lost = runs = 0
        dup_at: list[float] = []
        top, seen = 0, set()
        for seq, at in values + [(1, 0.0)]:  # a last 1 closes the last run
            if seq == 1 and top > 1:
                lost += top - len(seen)
                top, seen, runs = 0, set(), runs + 1
            if seq in seen:
                dup_at.append(round(at, 1))
                continue
            late += seq < top
            seen.add(seq)
            top = max(top, seq)
        out[camera] = {"classifications": len(values), "runs": runs, "lost": lost,
                       "out_of_order": late, "duplicates": len(dup_at), "duplicates_at": dup_at}
    return out


class Device:
    """The daemon, its config and what is done to it."""

    def __init__(self, work: Path, port: int, videos: dict[str, Path], tensorrt: bool = False):
        self.work, self.port, self.videos, self.tensorrt = work, port, videos, tensorrt
        self.cfg = work / "cfg"
        self.state = work / "state"
        self.model = work / "models" / "current.onnx"
        self.model.parent.mkdir(parents=True)
        shutil.copyfile(PRIMARY, self.model)
        shutil.copyfile(PRIMARY.with_suffix(".json"), self.model.with_suffix(".json"))
        (self.cfg / "cameras").mkdir(parents=True)
        (self.cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
            "device_id": DEVICE, "state_dir": str(self.state), "stats_interval_s": 5,
            "mqtt": {"host": "127.0.0.1", "port": port, "qos": 1, "keepalive_s": 5},
            # With --tensorrt the primary rung is built on the device and fed by the GPU
            # kernel (the TensorRT double over real pycuda): plans, pruning, GPU memory.
            "engines": [{"name": "primary", "model": str(self.model),
                         **({"backend": "tensorrt", "precision": "fp16", "preprocess": "gpu"}
                            if tensorrt else {})},
                        {"name": "small", "model": str(SMALL)}],
            "rollout": {"min_frames": 40, "watch_s": 10},
            "canary": {"interval_s": 20},
            "hard_examples": {"enabled": True, "keep_files": 300, "keep_mb": 20},
            "snapshots": {"keep_files": 100, "keep_mb": 10, "min_interval_s": 1},
            "homeassistant": {"enabled": True},
            "fallback": {"thermal_root": str(work / "no-thermal")}}))
        for name in ("door", "lobby", "yard"):
            self.camera(name, {"source": str(videos[name]), "fps": 0, "loop": True,
                               "realtime": False})
        self.log = (work / "daemon.log").open("a")
        self.proc: subprocess.Popen | None = None
        self.lives: list[dict] = []  # one per daemon process: start, end, how it ended

    def camera(self, name: str, body: dict | None) -> None:
        path = self.cfg / "cameras" / f"{name}.yaml"
        if body is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(yaml.safe_dump(body))

    def start(self, now: float) -> None:
        env = dict(os.environ)
        if self.tensorrt:
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "fakes" / "trt"),
                                                 env.get("PYTHONPATH", ""), str(REPO)])
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeswin", "run", "-c",
                                      str(self.cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self.lives.append({"start": now, "pid": self.proc.pid, "end": None, "how": None})

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self, now: float) -> None:
        self.proc.kill()
        self.proc.wait()
        self.lives[-1].update(end=now, how="SIGKILL")

    def stop(self, now: float) -> int:
        self.proc.terminate()
        code = self.proc.wait(60)
        self.lives[-1].update(end=now, how=f"SIGTERM, exit {code}")
        return code

    def rollback(self) -> str:
        done = subprocess.run([sys.executable, "-m", "edgeswin", "rollback", "-c", str(self.cfg)],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        return f"rc {done.returncode}: {(done.stdout + done.stderr).strip()[:200]}"


class Year:
    """The week's events, at their fractions of the week."""

    def __init__(self, device: Device, broker: PrivateBroker, events: list, t0: float,
                 kill_every: int):
        self.device, self.broker, self.events, self.t0 = device, broker, events, t0
        self.kill_every = kill_every
        self.done: set[tuple[int, str]] = set()
        self.week = 0  # every event of the weeks before this one is done

    def say(self, what: str) -> None:
        self.events.append([round(time.monotonic() - self.t0, 1), what])

    def plan(self, week: int) -> list[tuple[float, str]]:
        return [(at, what) for at, what, due in [
            (0.0, "model update", True),
            (0.2, "reload: rate", True),
            (0.45, "broker restart", week % 3 == 2),
            (0.55, "broker paused", week % 5 == 4),
            (0.6, "rollback by hand", week % 4 == 3),
            (0.7, "camera added" if week % 2 == 0 else "camera removed", True),
            (0.8, "daemon SIGKILL", week % self.kill_every == self.kill_every - 1)] if due]

    def step(self, now: float, week_s: float) -> None:
        """Every event whose moment has come, in order (none skipped when one ran long)."""
        for week in range(self.week, int(now // week_s) + 1):
            for at, what in self.plan(week):
                if (week, what) not in self.done and (week + at) * week_s <= now:
                    self.done.add((week, what))
                    self.do(week, what)
            if (week + 1) * week_s <= now:
                self.week = week + 1

    def do(self, week: int, what: str) -> None:
        d, now = self.device, time.monotonic() - self.t0
        if what == "model update":
            reexported(PRIMARY, d.model, f"swin-demo-112-w{week}")
            d.signal(signal.SIGHUP)
        elif what == "reload: rate":
            d.camera("yard", {"source": str(d.videos["yard"]), "fps": 0 if week % 2 else 8,
                              "loop": True, "realtime": False})
            d.signal(signal.SIGHUP)
        elif what == "broker restart":
            self.broker.stop(graceful=True)
            time.sleep(3)
            self.broker.start()
        elif what == "broker paused":
            os.kill(self.broker.proc.pid, signal.SIGSTOP)
            time.sleep(5)
            os.kill(self.broker.proc.pid, signal.SIGCONT)
        elif what == "rollback by hand":
            what += ": " + d.rollback()
        elif what.startswith("camera"):
            d.camera("extra", {"source": str(d.videos["lobby"]), "fps": 5, "loop": True}
                     if what == "camera added" else None)
            d.signal(signal.SIGHUP)
        elif what == "daemon SIGKILL":
            d.kill(now)
            d.start(time.monotonic() - self.t0)
        self.say(f"week {week}: {what}")


def memory_per_life(rows: list[dict], lives: list[dict], warmup_s: float) -> list[dict]:
    """Within each daemon's life, after warm-up: RSS by week (the median of each week's
    samples: every week loads a new model, so single samples saw-tooth by tens of MB), the
    growth from the first third of its weeks to the last third, and the slope of the weekly
    medians per million classifications."""
    out = []
    for life in lives:
        end = life["end"] if life["end"] is not None else float("inf")
        part = [r for r in rows if life["start"] + warmup_s <= r["t"] < end
                and r["pid"] == life["pid"]]
        weeks: dict[int, list[dict]] = {}
        for r in part:
            weeks.setdefault(r["week"], []).append(r)
        if len(weeks) < 3 or part[-1]["classified"] - part[0]["classified"] < 2000:
            continue
        medians = [(float(np.median([r["classified"] for r in w])),
                    float(np.median([r["rss_mb"] for r in w])),
                    float(np.median([r["uss_mb"] for r in w]))) for _, w in sorted(weeks.items())]
        third = max(len(medians) // 3, 1)
        first = float(np.median([m[1] for m in medians[:third]]))
        last = float(np.median([m[1] for m in medians[-third:]]))
        x = np.array([m[0] for m in medians]) / 1e6
        out.append({"pid": life["pid"], "weeks": len(medians),
                    "classifications": part[-1]["classified"] - part[0]["classified"],
                    "rss_mb_first_third": round(first, 1), "rss_mb_last_third": round(last, 1),
                    "rss_growth_mb": round(last - first, 1),
                    "rss_mb_per_million": round(float(np.polyfit(x, [m[1] for m in medians],
                                                                 1)[0]), 2),
                    "uss_mb_per_million": round(float(np.polyfit(x, [m[2] for m in medians],
                                                                 1)[0]), 2)})
    return out


def judge(report: dict, args) -> list[dict]:
    claims = []

    def claim(text: str, ok: bool, figures) -> None:
        claims.append({"claim": text, "ok": bool(ok), "figures": figures})

    # Memory is judged only on lives long enough for a slope to mean something: a short
    # run sees each week's new model loaded, not a trend.
    lives = [s for s in report["memory"]["per_life"]
             if s["classifications"] >= args.judge_memory_after]
    if lives:
        claim(f"memory: within each daemon's life RSS grows at most {MEMORY_NOISE_PCT} % "
              f"(or {MEMORY_NOISE_MB} MB) from its first third of weeks to its last",
              all(s["rss_growth_mb"] <= max(s["rss_mb_first_third"] * MEMORY_NOISE_PCT / 100,
                                            MEMORY_NOISE_MB) for s in lives), lives)
    gpu = report["memory"].get("gpu_mb_quarters")
    if gpu:
        claim("GPU memory: the last quarter's peak within 64 MiB of the second quarter's",
              gpu[1] <= gpu[0] + 64, {"second_quarter_max": gpu[0], "last_quarter_max": gpu[1]})
    bounds = report["disk"]["bounds_mb"]
    last = report["disk"]["last_mb"]
    over = {k: (last.get(k, 0), b) for k, b in bounds.items() if last.get(k, 0) > b}
    claim("disk: every store within its bound at the end", not over, {"over": over,
                                                                       "last_mb": last})
    q2, q4 = report["disk"]["state_mb_first_half_max"], report["disk"]["state_mb_last_quarter"]
    claim("disk: the state dir's last quarter at most 10 % + 1 MB above its first half's peak",
          q4 <= q2 * 1.1 + 1, {"first_half_max_mb": q2, "last_quarter_mb": q4})
    ret = report["retained"]
    claim("retained: nothing of the removed camera is left", not ret["of_removed_camera"],
          ret["of_removed_camera"][:10])
    claim("retained: the count does not grow", ret["last"] <= ret["second_quarter_max"],
          {k: ret[k] for k in ("second_quarter_max", "last")})
    seq = report["classifications"]
    kills = report["daemon_kills"]
    lost = {c: s["lost"] for c, s in seq.items() if s["lost"]}
    claim("classifications: none lost", not lost, lost)
    late = {c: s["out_of_order"] for c, s in seq.items() if s["out_of_order"]}
    claim("classifications: none out of order per camera", not late, late)
    # QoS 1 is at least once: a resend after a broker restart or pause, or from the outbox
    # of a killed daemon, may deliver twice. Anywhere else a duplicate is a fault.
    faults = [at for at, what in report["events"] if any(
        k in what for k in ("broker restart", "broker paused", "daemon SIGKILL"))]
    dups = [at for s in seq.values() for at in s["duplicates_at"]]
    stray = [at for at in dups if not any(0 <= at - f <= DUPLICATE_WINDOW_S for f in faults)]
    claim(f"classifications: duplicates only within {DUPLICATE_WINDOW_S:g} s after a broker "
          "restart or pause or a daemon kill", not stray,
          {"duplicates": len(dups), "stray_at_s": stray[:10], "daemon_kills": kills})
    claim("classifications: every camera classified", seq and all(
        s["classifications"] > 0 for s in seq.values()), {c: s["classifications"]
                                                          for c, s in seq.items()})
    claim("the last daemon stopped with exit 0", report["exit_code"] == 0, report["exit_code"])
    return claims


def videos_in(work: Path) -> dict[str, Path]:
    out = {"door": work / "door.mp4", "lobby": work / "lobby.mp4", "yard": work / "yard.mp4"}
    fixed_camera.make(out["door"], 30, fps=10, events={"covered": (10, 18)})
    make_video(out["lobby"], VideoSpec(seconds=10, fps=15, width=1280, height=720, seed=8))
    make_video(out["yard"], VideoSpec(seconds=10, fps=15, width=320, height=240, seed=9))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=0)
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--week-s", type=float, default=120.0, help="seconds per week")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup-s", type=float, default=120.0, help="of each daemon's life")
    ap.add_argument("--judge-memory-after", type=int, default=100_000,
                    help="classifications a daemon's life needs for its memory to be judged")
    ap.add_argument("--kill-every-weeks", type=int, default=13, help="SIGKILL the daemon")
    ap.add_argument("--tensorrt", action="store_true", help="the primary rung on TensorRT "
                    "(the double, tests/fakes/trt) with GPU preprocessing: on a GPU machine")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, help="copy the daemon log here")
    args = ap.parse_args()
    seconds = args.hours * 3600 + args.minutes * 60 or 3600.0
    work = Path(tempfile.mkdtemp(prefix="edgeswin-longrun-"))
    broker = PrivateBroker(work, persistent=True)
    broker.start()
    device = Device(work, broker.port, videos_in(work), args.tensorrt)
    recorder = Recorder(broker.port)
    rows: list[dict] = []
    retained_rows: list[dict] = []
    events: list = []
    t0 = time.monotonic()
    device.start(0.0)
    year = Year(device, broker, events, t0, args.kill_every_weeks)
    code = None
    next_sample = 0.0
    try:
        while (now := time.monotonic() - t0) < seconds:
            year.step(now, args.week_s)
            if now < next_sample:
                time.sleep(0.25)
                continue
            next_sample = now + args.sample
            week = int(now // args.week_s)
            if device.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {device.proc.returncode}")
            try:
                memory = process(device.proc.pid)
            except OSError:  # between fork and exec (a restart this moment): the next sample
                time.sleep(1)
                continue
            sizes = {name: round(du(device.state / name) / 1e6, 3) for name in STORES}
            rows.append({"t": round(now, 1), "week": week, "pid": device.proc.pid,
                         "classified": len(recorder.seqs), **memory,
                         **{f"{k}_mb": v for k, v in sizes.items()},
                         "state_mb": round(du(device.state) / 1e6, 3),
                         "gpu_mb": gpu_memory_mb() if args.tensorrt else None,
                         "log_mb": round(du(work / "daemon.log") / 1e6, 3)})
            if len(rows) % 6 == 1:
                topics = retained(broker.port)
                retained_rows.append({"t": round(now, 1), "count": len(topics),
                                      "bytes": sum(topics.values())})
            print(json.dumps(rows[-1]), flush=True)
        if (device.cfg / "cameras" / "extra.yaml").exists():  # end with it removed
            device.camera("extra", None)
            device.signal(signal.SIGHUP)
            year.say("end: camera removed")
            time.sleep(5)
        code = device.stop(time.monotonic() - t0)
    finally:
        if device.proc.poll() is None:
            device.proc.kill()
        time.sleep(2)  # the subscriber's last messages
        final_retained = retained(broker.port)
        recorder.close()
        broker.stop(graceful=True)
        if args.keep:
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "daemon.log", args.keep)
    quarter = max(len(rows) // 4, 1)
    second, last = rows[quarter:2 * quarter] or rows, rows[-quarter:]
    rq = max(len(retained_rows) // 4, 1)
    report = {
        "seconds": round(seconds), "week_s": args.week_s, "weeks": int(seconds // args.week_s),
        "samples": len(rows), "events": events, "daemon_kills": sum(
            life["how"] == "SIGKILL" for life in device.lives),
        "lives": device.lives, "exit_code": code,
        "memory": {"per_life": memory_per_life(rows, device.lives, args.warmup_s),
                   "rss_mb_first_last": [rows[0]["rss_mb"], rows[-1]["rss_mb"]] if rows else [],
                   "threads_max": max(r["threads"] for r in rows),
                   "gpu_mb_first_last": [rows[0]["gpu_mb"], rows[-1]["gpu_mb"]],
                   "gpu_mb_quarters": [max((r["gpu_mb"] or 0) for r in second),
                                       max((r["gpu_mb"] or 0) for r in last)]
                   if any(r["gpu_mb"] is not None for r in rows) else None,
                   "fds_max": max(r["fds"] for r in rows)},
        "disk": {"last_mb": {k: rows[-1][f"{k}_mb"] for k in STORES},
                 "max_mb": {k: max(r[f"{k}_mb"] for r in rows) for k in STORES},
                 "bounds_mb": {"outbox.sqlite3": 64, "snapshots": 10, "hard": 20,
                               # plans: the configured file, current, previous, a candidate
                               "engines": 4 * 1.5 * PRIMARY.stat().st_size / 1e6,
                               "models": 3 * 2 * 2 * PRIMARY.stat().st_size / 1e6},
                 "state_mb_first_half_max": max(r["state_mb"] for r in rows[:2 * quarter]
                                                or rows),
                 "state_mb_last_quarter": float(np.median([r["state_mb"] for r in last])),
                 "log_mb_last": rows[-1]["log_mb"]},
        "retained": {"second_quarter_max": max(r["count"] for r in
                                               retained_rows[rq:2 * rq] or retained_rows),
                     "last": len(final_retained),
                     "of_removed_camera": sorted(t for t in final_retained if "extra" in t)},
        "classifications": sequence_report(recorder.seqs, t0),
        "other_messages": recorder.other,
        "rows": rows,
    }
    report["claims"] = judge(report, args)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    for c in report["claims"]:
        print(f"{'ok    ' if c['ok'] else 'BROKEN'} {c['claim']}: {json.dumps(c['figures'])[:300]}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(c["ok"] for c in report["claims"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
