"""`edgeswin demo`: the daemon on bundled assets, with a live view and a closing summary.

Generates missing demo videos (with ground truth) where the demo config's cameras expect
them, runs the real daemon on `configs/demo` (ONNX Runtime, the bundled Swin models, the
broker on localhost:1883), prints one line per camera every second (its health too) and a
paragraph at the end, including agreement with the ground truth and each camera's health
problems (the `door` camera is a fixed camera whose lens is covered midway). The config is
found from the package, so the demo runs from any directory; everything else the config needs
is checked before a video is made.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TextIO

from ..config import CAMERA_DIR, CAMERA_SUFFIXES, load_config, read_config_file
from ..daemon import Daemon
from ..errors import ConfigError, EdgeswinError
from . import fixed_camera
from .assets import VideoSpec, ensure_video, install_bases, labels_path, read_ground_truth

DEMO_VIDEOS = {"lobby": 11, "yard": 23}  # camera -> seed
FIXED_VIDEOS = {"door": 31}  # a fixed camera, its lens covered midway -> seed
COVERED = (0.45, 0.7)  # of the video's length: at 30 s, 13.5 s to 21 s
# Frames this close to a label change are not scored: the newest frame may straddle it.
TRANSITION_GUARD = 3


def demo_config_places() -> list[Path]:
    return [base / "configs" / "demo" for base in install_bases()]


def default_demo_config() -> Path:
    found = next((p for p in demo_config_places() if (p / "edgeswin.yaml").is_file()), None)
    if found is None:
        raise EdgeswinError("no demo config in " + ", ".join(map(str, demo_config_places()))
                            + ": pass -c DIR")
    return found


def demo_videos(config_dir: Path) -> dict[Path, tuple[str, int]]:
    """The demo videos the config's cameras play, where they expect them -> (camera, seed)."""
    videos = {}
    for path in sorted((config_dir / CAMERA_DIR).glob("*")):
        if path.suffix not in CAMERA_SUFFIXES or path.stem not in DEMO_VIDEOS | FIXED_VIDEOS:
            continue
        raw = read_config_file(path)  # bounded as load_config reads it, which says what is wrong
        source = raw.get("source") if isinstance(raw, dict) else None
        if isinstance(source, str) and source.endswith(".mp4"):
            video = Path(os.path.expanduser(source))
            seed = (DEMO_VIDEOS | FIXED_VIDEOS)[path.stem]
            videos[(path.parent / video).resolve()] = (path.stem, seed)
    return videos


def prepare(config_dir: Path, seconds: float):
    """The loaded config, after making the videos it lacks: a problem other than a missing
    demo video is raised before anything is generated."""
    videos = demo_videos(config_dir)
    try:
        return load_config(config_dir)
    except ConfigError as exc:
        missing = {str(v) for v in videos if not v.is_file()}
        if not missing or any(not any(m in i.message for m in missing) for i in exc.issues):
            raise
    for video, (camera, seed) in videos.items():
        try:
            video.parent.mkdir(parents=True, exist_ok=True)
            if camera in FIXED_VIDEOS:
                if not video.is_file():
                    covered = (COVERED[0] * seconds, COVERED[1] * seconds)
                    fixed_camera.make(video, seconds, 10, {"covered": covered}, seed)
            else:
                ensure_video(video, VideoSpec(seconds=seconds, seed=seed))
        except OSError as exc:
            raise EdgeswinError(f"cannot write the demo video {video}: {exc.strerror} (run the "
                                "demo as a user who can, or pass -c a copy of configs/demo "
                                "in a folder of yours)") from None
    return load_config(config_dir)


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
        self._t0 = time.monotonic()
        # camera -> kind -> [seconds after start it was seen raised, last seen raised]
        self.seen: dict[str, dict[str, list[float]]] = defaultdict(dict)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def health(self) -> dict[str, list[str]]:
        """Each judged camera's problems raised now, noted for the summary."""
        now, out = time.monotonic() - self._t0, {}
        for camera, kinds in self.daemon.health.problems().items():
            out[camera] = [k for k, raised in kinds.items() if raised]
            for kind in out[camera]:
                self.seen[camera].setdefault(kind, [now, now])[1] = now
        return out

    def lines(self) -> list[str]:
        health = self.health()
        stats = self.daemon.stats()
        mqtt = "connected" if stats["mqtt"]["connected"] else "not connected (retrying)"
        rows = [f"engine {stats['engine']} (rung {stats['rung']})  mqtt {mqtt}  "
                f"up {stats['uptime_s']:.0f}s"]
        for name, cam in stats["cameras"].items():
            label = cam["label"] or "-"
            rows.append(f"  {name:<10} {cam['state']:<8} {cam['fps']:5.1f} fps  "
                        f"{label:<9} {cam['score']:.2f}  infer {cam['infer_ms_p50'] or 0:5.1f} ms"
                        f"  capture->publish {cam['capture_to_publish_ms_p50'] or 0:5.1f} ms"
                        f"  health {', '.join(health[name]) or 'ok' if name in health else '-'}")
        return rows

    def _run(self) -> None:
        period, ticks = 1.0 if self.tty else 5.0, 0
        while not self._stop.wait(1.0):  # health noted every second, drawn every period
            ticks += 1
            if ticks % period:
                self.health()
                continue
            rows = self.lines()
            if self.tty and self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")
            self.out.write("".join(f"{r}\x1b[K\n" if self.tty else f"{r}\n" for r in rows))
            self.out.flush()
            self._drawn = len(rows)


def summary(daemon: Daemon, board: Scoreboard, seconds: float,
            seen: dict[str, dict[str, list[float]]] | None = None) -> str:
    stats = daemon.stats()
    parts = []
    for name, cam in stats["cameras"].items():
        agree = board.agreement(name)
        agree_text = f", {agree:.1%} agreement with ground truth" if agree is not None else ""
        agree_text += "".join(f", health said {kind} from {a:.0f} s to {b:.0f} s"
                              for kind, (a, b) in (seen or {}).get(name, {}).items())
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


def run_demo(config_dir: Path | None, seconds: float, prepare_only: bool = False) -> int:
    config = prepare(config_dir or default_demo_config(), seconds)
    if prepare_only:
        print(f"{config.directory}: OK: demo videos ready")
        return 0
    state = Path(config.device.state_dir)
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeswinError(f"cannot make the demo's state_dir {state}: {exc.strerror}") from None
    truths = {}
    for entry in config.cameras:
        video = Path(str(entry.source.target))
        if entry.source.kind == "file" and labels_path(video).is_file():
            truths[entry.config.name] = read_ground_truth(video)
    daemon = Daemon(config)
    board = Scoreboard(truths)
    daemon.recorder.listeners.append(board)
    view = LiveView(daemon)
    view.start()
    t0 = time.monotonic()
    try:
        code = daemon.run()
    finally:
        view.stop()
    print(summary(daemon, board, time.monotonic() - t0, view.seen))
    return code
