"""`edgeswin demo`: the daemon on bundled assets, with a live view and a closing summary.

Generates missing demo videos (with ground truth), runs the real daemon on `configs/demo`
(ONNX Runtime, the bundled Swin models, the broker on localhost:1883), prints one line per
camera every second and a paragraph at the end, including agreement with the ground truth.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TextIO

from .config import load_config
from .demo_assets import VideoSpec, ensure_video, read_ground_truth
from .pipeline import Daemon

DEMO_VIDEOS = {"lobby": 11, "yard": 23}  # camera -> seed
# Frames this close to a label change are not scored: the newest frame may straddle it.
TRANSITION_GUARD = 3


def prepare_assets(assets: Path, seconds: float) -> None:
    for name, seed in DEMO_VIDEOS.items():
        ensure_video(assets / f"{name}.mp4", VideoSpec(seconds=seconds, seed=seed))


class Scoreboard:
    """Compares each classification with the source's ground truth, away from transitions."""

    def __init__(self, truths: dict[str, list[str]]):
        self.truths = truths
        self.hits: dict[str, int] = defaultdict(int)
        self.scored: dict[str, int] = defaultdict(int)

    def __call__(self, payload: dict) -> None:
        truth = self.truths.get(payload["camera"])
        i = payload["frame_index"]
        if not truth or i >= len(truth):
            return
        window = truth[max(0, i - TRANSITION_GUARD):i + TRANSITION_GUARD + 1]
        if any(label != truth[i] for label in window):
            return
        self.scored[payload["camera"]] += 1
        self.hits[payload["camera"]] += int(payload["label"] == truth[i])

    def agreement(self, camera: str) -> float | None:
        n = self.scored.get(camera, 0)
        return self.hits[camera] / n if n else None


class LiveView:
    """One line per camera, redrawn in place on a terminal, every few seconds otherwise."""

    def __init__(self, daemon: Daemon, out: TextIO = sys.stdout):
        self.daemon = daemon
        self.out = out
        self.tty = out.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveview", daemon=True)
        self._drawn = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def lines(self) -> list[str]:
        stats = self.daemon.stats()
        mqtt = "connected" if stats["mqtt"]["connected"] else "not connected (retrying)"
        rows = [f"engine {stats['engine']} (rung {stats['rung']})  mqtt {mqtt}  "
                f"up {stats['uptime_s']:.0f}s"]
        for name, cam in stats["cameras"].items():
            label = cam["label"] or "-"
            rows.append(f"  {name:<10} {cam['state']:<8} {cam['fps']:5.1f} fps  "
                        f"{label:<9} {cam['score']:.2f}  infer {cam['infer_ms_p50'] or 0:5.1f} ms"
                        f"  capture->publish {cam['capture_to_publish_ms_p50'] or 0:5.1f} ms")
        return rows

    def _run(self) -> None:
        period = 1.0 if self.tty else 5.0
        while not self._stop.wait(period):
            rows = self.lines()
            if self.tty and self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")
            self.out.write("".join(f"{r}\x1b[K\n" if self.tty else f"{r}\n" for r in rows))
            self.out.flush()
            self._drawn = len(rows)


def summary(daemon: Daemon, board: Scoreboard, seconds: float) -> str:
    stats = daemon.stats()
    parts = []
    for name, cam in stats["cameras"].items():
        agree = board.agreement(name)
        agree_text = f", {agree:.1%} agreement with ground truth" if agree is not None else ""
        parts.append(f"{name}: {cam['classified']} frames classified at {cam['fps']:.1f}/s "
                     f"({cam['skipped']} newer frames skipped by design), infer p50 "
                     f"{cam['infer_ms_p50']} ms / p95 {cam['infer_ms_p95']} ms, "
                     f"capture-to-publish p50 {cam['capture_to_publish_ms_p50']} ms"
                     f"{agree_text}")
    mqtt = stats["mqtt"]
    broker = (f"{mqtt['sent']} messages handed to the broker"
              if mqtt["sent"] else "no broker answered, nothing was published")
    return (f"Demo finished after {seconds:.1f}s ({daemon.stop_reason}) on engine "
            f"{stats['engine']} (rung {stats['rung']}): " + "; ".join(parts) + f". {broker}.")


def run_demo(config_dir: Path, assets: Path, seconds: float) -> int:
    prepare_assets(assets, seconds)
    config = load_config(config_dir)
    truths = {}
    for entry in config.cameras:
        if entry.source.kind == "file":
            truths[entry.config.name] = read_ground_truth(Path(str(entry.source.target)))
    daemon = Daemon(config)
    board = Scoreboard(truths)
    daemon.listeners.append(board)
    view = LiveView(daemon)
    view.start()
    t0 = time.monotonic()
    try:
        code = daemon.run()
    finally:
        view.stop()
    print(summary(daemon, board, time.monotonic() - t0))
    return code
