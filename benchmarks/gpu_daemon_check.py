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

Part 2, what the per-size GPU/CPU preprocessing choice is worth: the same cached engine
pinned; for each frame size (1280x720, 1920x1080, 3840x2160) and 1 and 4 cameras at `fps: 0`
(consumer-paced, realtime off: the engine sets the pace), the frames prepared the CPU way,
the GPU way (both forced: benchmarks/forced_prep.py) and the daemon's own choice, each
`--repeats` times, `--compare-seconds` each; classifications per second, host CPU seconds per
classification, capture-to-publish p50 and the choice the daemon logged. (The double runs the
network with ONNX Runtime on the CPU, so the engine step costs what the CPU makes it cost.)

Part 3, one realtime 1080p camera (30 fps, `fps: 0`): capture-to-publish minus inference, and
its steps (wait, preprocess), each way; judged: the daemon's own choice within
`--realtime-goal-ms` (0.5), the same choice in every repeat, every run clean.

Every claim checked is listed under "claims" with its figures; the exit status is 1 when any
one fails.

Run on the GPU machine with pycuda, pydantic, paho-mqtt and PyYAML importable and a Mosquitto
binary: python3 -m benchmarks.gpu_daemon_check --mosquitto PATH --out report.json
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

from edgeswin.tools.broker import PrivateBroker

REPO = Path(__file__).resolve().parent.parent

PRIMARY = REPO / "models" / "swin-demo-112.onnx"
SMALL = REPO / "models" / "swin-demo-64.onnx"
ROOT = "edgeswin/gpu"
WARM_S = 4.0  # after every camera's first classification: past the per-size trials
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
    """Part 1's four cameras, two videos per Part 2 size (4K: 1080p scaled 2x, as rendering
    4K scenes is slow; decoding costs what 4K costs) and a 30 fps 1080p one."""
    import cv2

    from edgeswin.demo.assets import VideoSpec, make_video

    videos = {}
    for name, (w, h, seed) in {"hd1": (1920, 1080, 11), "hd2": (1920, 1080, 12),
                               "sd1": (1280, 720, 13), "sd2": (1280, 720, 14)}.items():
        path = tmp / f"{name}.mp4"
        make_video(path, VideoSpec(seconds=10, fps=15, width=w, height=h, seed=seed))
        videos[name] = path
    videos["720p-0"], videos["720p-1"] = videos["sd1"], videos["sd2"]
    videos["1080p-0"], videos["1080p-1"] = videos["hd1"], videos["hd2"]
    for i in (0, 1):
        src, out = cv2.VideoCapture(str(videos[f"1080p-{i}"])), tmp / f"uhd{i}.mp4"
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 15, (3840, 2160))
        while (frame := src.read())[0]:
            writer.write(cv2.resize(frame[1], (3840, 2160), interpolation=cv2.INTER_LINEAR))
        writer.release()
        videos[f"4k-{i}"] = out
    videos["realtime"] = tmp / "rt.mp4"
    make_video(videos["realtime"], VideoSpec(seconds=10, fps=30, width=1920, height=1080,
                                             seed=15))
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


def start_daemon(cfg: Path, log: Path, extra_env: dict | None = None,
                 forced: str | None = None) -> subprocess.Popen:
    env = {**os.environ, **(extra_env or {}), "PYTHONPATH": os.pathsep.join(
        [str(REPO / "tests" / "fakes" / "trt"), os.environ.get("PYTHONPATH", ""), str(REPO)])}
    env["PATH"] = "/usr/local/cuda/bin:" + env.get("PATH", "")  # nvcc, for the kernel's cubin
    run = ["-m", "benchmarks.forced_prep", forced] if forced else ["-m", "edgeswin"]
    return subprocess.Popen([sys.executable, "-W", "default", *run, "run", "-c", str(cfg)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=REPO)


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
    from edgeswin.demo.assets import read_ground_truth

    thermal = tmp / "thermal" / "thermal_zone0"
    thermal.mkdir(parents=True)
    (thermal / "type").write_text("gpu-thermal\n")
    temp = thermal / "temp"
    temp.write_text("50000\n")
    # hd1 and sd1 consumer-paced (realtime off: as fast as the engine takes them), the
    # others at a set rate.
    cameras = {"hd1": {"source": str(videos["hd1"]), "loop": True, "fps": 0, "realtime": False},
               "hd2": {"source": str(videos["hd2"]), "loop": True, "fps": 8},
               "sd1": {"source": str(videos["sd1"]), "loop": True, "fps": 0, "realtime": False},
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(tmp: Path, broker, cameras: dict, way: str, tag: str, seconds: float,
            warm: float | None = None) -> dict:
    """One daemon on the pinned cached primary: `way` cpu/gpu forced, or `chosen`."""
    engines = [{"name": "primary", "model": str(PRIMARY), "backend": "tensorrt",
                "precision": "fp16", "preprocess": "cpu" if way == "cpu" else "gpu"}]
    cfg = tmp / f"cfg-{tag}"
    write_config(cfg, broker.port, cameras, engines,
                 {"pinned_rung": 0, "nvml": False, "thermal_root": str(tmp / "none")},
                 tmp / "state")
    sub = Subscriber(broker.port)
    log = tmp / f"daemon-{tag}.log"
    # The double computes the network on the CPU; two threads leave the cores mostly to the
    # daemon, as a real engine on the GPU would.
    proc = start_daemon(cfg, log, {"FAKE_TRT_THREADS": "2"},
                        forced=way if way in ("cpu", "gpu") else None)
    topics = [f"{ROOT}/{cam}/classification" for cam in cameras]
    deadline = time.monotonic() + 180
    while not all(sub.on(t) for t in topics) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(WARM_S if warm is None else warm)  # past the per-size trials and warm-up
    sub.clear()
    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    got = [m for t in topics for m in sub.on(t)]
    c1, t1 = cpu_seconds(proc.pid), time.monotonic()
    code, _ = stop_daemon(proc)
    sub.stop()
    text = log.read_text()
    lat = [m["latency_ms"] for m in got] or [{"inference": 0, "preprocess": 0,
                                              "capture_to_publish": 0, "wait": 0}]
    return {"way": way, "chosen": [line.split(": ", 2)[-1] for line in text.splitlines()
                                   if "frames preprocessed on the" in line],
            "classifications_per_s": round(len(got) / (t1 - t0), 2),
            "host_cpu_ms_per_classification": round(1000 * (c1 - c0) / max(len(got), 1), 2),
            "inference_ms_p50": statistics.median(x["inference"] for x in lat),
            "preprocess_ms_p50": statistics.median(x["preprocess"] for x in lat),
            "wait_ms_p50": statistics.median(x.get("wait", 0) for x in lat),
            "capture_to_publish_ms_p50": statistics.median(x["capture_to_publish"] for x in lat),
            "overhead_ms_p50": statistics.median(x["capture_to_publish"] - x["inference"]
                                                 for x in lat),
            "exit_code": code,
            "warnings": [line for line in text.splitlines() if any(w in line for w in WARNINGS)]}


def keep_run(args, run: dict) -> None:
    """Each run as it ends: printed, and appended to `--runs` (a cut-short job keeps them)."""
    print(json.dumps(run), flush=True)
    if args.runs:
        with args.runs.open("a") as f:
            f.write(json.dumps(run) + "\n")


def part2(args, tmp: Path, videos: dict[str, Path], broker) -> dict:
    """Per frame size and camera count: CPU way, GPU way and the daemon's choice, interleaved."""
    out: dict = {"cells": []}
    for size in args.sizes.split(","):
        for count in (int(c) for c in args.cameras.split(",")):
            cameras = {f"cam{i}": {"source": str(videos[f"{size}-{i % 2}"]), "loop": True,
                                   "fps": 0, "realtime": False} for i in range(count)}
            runs: dict[str, list[dict]] = {"cpu": [], "gpu": [], "chosen": []}
            for i in range(args.repeats):
                for way in ("cpu", "gpu", "chosen"):
                    run = measure(tmp, broker, cameras, way, f"{size}-{count}-{way}-{i}",
                                  args.compare_seconds)
                    runs[way].append(run)
                    keep_run(args, {"part": 2, "size": size, "cameras": count, **run})
            out["cells"].append({"size": size, "cameras": count, "runs": runs})
    return out


def _exited_clean(name: str, runs: list[dict]) -> dict:
    bad = [r["exit_code"] for r in runs if r["exit_code"] != 0 or r["warnings"]]
    return {"claim": f"{name}: every run exited 0 without a warning", "ok": not bad,
            "figures": {"runs": len(runs), "failed": len(bad),
                        "warnings": [w for r in runs for w in r["warnings"]][:5]}}


def _same_choice(name: str, runs: list[dict]) -> dict:
    """Identical runs must log identical choices (the way each size went, without the costs
    measured): judged on what they logged, not on whether the two ways happen to cost the
    same."""
    choices = {tuple(sorted(line.split(" (")[0] for line in r["chosen"])) for r in runs}
    return {"claim": f"{name}: every repeat logged the same choice", "ok": len(choices) == 1
            and bool(runs), "figures": {"choices": sorted(choices)}}


def judge_choice(cell: dict) -> list[dict]:
    """The claims on one Part 2 cell."""
    rate = {way: [r["classifications_per_s"] for r in runs] for way, runs in cell["runs"].items()}
    mean = {way: statistics.mean(v) for way, v in rate.items()}
    spread = max(max(v) - min(v) for v in rate.values())
    noise = max(spread, 0.03 * max(mean.values()))  # what two runs of one way differ by
    best = max(mean["cpu"], mean["gpu"])
    name = f"{cell['size']} x{cell['cameras']}"
    return [
        {"claim": f"{name}: the chosen way is not measurably slower than the better way",
         "ok": mean["chosen"] >= best - noise,
         "figures": {"mean_per_s": {k: round(v, 2) for k, v in mean.items()},
                     "noise_per_s": round(noise, 2)}},
        _same_choice(name, cell["runs"]["chosen"]),
        _exited_clean(name, [r for runs in cell["runs"].values() for r in runs])]


def judge_realtime(out: dict, goal_ms: float) -> list[dict]:
    """The claims on Part 3: the daemon's own choice meets the goal for what it adds to
    inference (capture-to-publish minus inference, p50 over repeats' medians)."""
    name = "realtime 1080p"
    overhead = {way: statistics.median(r["overhead_ms_p50"] for r in runs)
                for way, runs in out.items() if runs}
    return [
        {"claim": f"{name}: capture-to-publish beyond inference <= {goal_ms} ms (chosen way)",
         "ok": "chosen" in overhead and overhead["chosen"] <= goal_ms,
         "figures": {"overhead_ms_p50": {k: round(v, 3) for k, v in overhead.items()}}},
        _same_choice(name, out.get("chosen", [])),
        _exited_clean(name, [r for runs in out.values() for r in runs])]


def part3(args, tmp: Path, videos: dict[str, Path], broker) -> dict:
    cameras = {"rt": {"source": str(videos["realtime"]), "loop": True, "fps": 0}}
    out = {}
    for way in ("cpu", "gpu", "chosen"):
        out[way] = [measure(tmp, broker, cameras, way, f"rt-{way}-{i}", args.compare_seconds)
                    for i in range(args.repeats)]
        for run in out[way]:
            keep_run(args, {"part": 3, "size": "1080p-realtime", "cameras": 1, **run})
    return out


def judge_part1(r: dict) -> list[dict]:
    if not r.get("built"):
        return [{"claim": "part 1: the background builds finished", "ok": False, "figures": {}}]
    mem = [m for m in r["gpu_memory_mb"]["samples"][1:] if m is not None]
    return [
        {"claim": "part 1: exit 0 after SIGTERM", "ok": r["exit_code"] == 0,
         "figures": {"exit_code": r["exit_code"], "s": r["sigterm_to_exit_s"]}},
        {"claim": "part 1: no warning, traceback or pycuda clean-up complaint",
         "ok": not r["warnings_in_log"], "figures": {"lines": r["warnings_in_log"][:5]}},
        {"claim": "part 1: every camera's seq gap-free from 1",
         "ok": all(c["gap_free_from_1"] and c["classifications"] > 0
                   for c in r["cameras"].values()), "figures": r["cameras"]},
        {"claim": "part 1: rung 0 top-1 >= 0.98 against the videos' ground truth",
         "ok": r["rung0_top1_vs_ground_truth"] >= 0.98,
         "figures": {"top1": r["rung0_top1_vs_ground_truth"]}},
        {"claim": "part 1: forced rung switches happened (>= 4)", "ok": r["switches"] >= 4,
         "figures": {"switches": r["switches"]}},
        {"claim": "part 1: GPU memory flat after the first samples (within 64 MiB)",
         "ok": bool(mem) and max(mem) - min(mem) <= 64, "figures": {"samples": mem}}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mosquitto", default="mosquitto")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--compare-seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="copy the daemon logs here")
    parser.add_argument("--parts", default="123", help="which parts to run (any of 1, 2, 3)")
    parser.add_argument("--repeats", type=int, default=3, help="part 2 and 3 runs of each way")
    parser.add_argument("--sizes", default="720p,1080p,4k")
    parser.add_argument("--cameras", default="1,4")
    parser.add_argument("--runs", type=Path, default=None, help="append each run here (JSONL)")
    parser.add_argument("--warm-seconds", type=float, default=4.0)
    parser.add_argument("--realtime-goal-ms", type=float, default=0.5,
                        help="part 3: the most capture-to-publish may add to inference (p50)")
    args = parser.parse_args()
    global WARM_S
    WARM_S = args.warm_seconds
    tmp = Path(tempfile.mkdtemp(prefix="edgeswin-gpu-"))
    broker = PrivateBroker(binary=args.mosquitto).start()
    report: dict = {"gpu_memory_idle_mb": gpu_memory_mb(), "claims": []}
    try:
        videos = make_videos(tmp)
        if "1" in args.parts:
            report["part1_daemon"] = part1(args, tmp, videos, broker)
            report["claims"] += judge_part1(report["part1_daemon"])
            print(json.dumps(report["part1_daemon"], indent=1), flush=True)
        if "2" in args.parts:
            report["part2_choice"] = part2(args, tmp, videos, broker)
            for cell in report["part2_choice"]["cells"]:
                report["claims"] += judge_choice(cell)
        if "3" in args.parts:
            report["part3_realtime"] = part3(args, tmp, videos, broker)
            report["claims"] += judge_realtime(report["part3_realtime"], args.realtime_goal_ms)
    finally:
        broker.close()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("daemon*.log"):
                (args.keep / log.name).write_text(log.read_text())
    for claim in report["claims"]:
        print(f"{'ok    ' if claim['ok'] else 'BROKEN'} {claim['claim']}: "
              f"{json.dumps(claim['figures'])}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    # Nothing judged is not a pass: every part asked for states at least one claim.
    return 0 if report["claims"] and all(c["ok"] for c in report["claims"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
