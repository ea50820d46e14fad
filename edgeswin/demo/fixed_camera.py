"""A fixed camera as video: one structured view that stays put (walls, shelves, a floor), sensor
noise, things crossing it now and then, and tampering where asked: `covered` (a flat dark
view), `frozen` (the last picture repeated), `blurred` (defocused), `moved` (the camera turned
and shifted), `dark` (night falls: a third of the light and a noisy sensor; for drift). For the
health tests: the events, in seconds of the video, are the ground truth.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 360


def _view(rng: np.random.Generator) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(img, (0, 250), (W, H), (60, 70, 80), -1)  # floor
    for _ in range(14):  # shelves, doors, boxes
        x, y = int(rng.integers(0, W - 80)), int(rng.integers(0, 230))
        w, h = int(rng.integers(30, 160)), int(rng.integers(20, 120))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
        cv2.rectangle(img, (x, y), (x + w, y + h), (15, 15, 15), 2)
    for x in range(0, W, 80):
        cv2.line(img, (x, 250), (W // 2 + (x - W // 2) * 2, H), (40, 40, 40), 2)
    return img


def make(path: Path, seconds: float, fps: int = 10, events: dict[str, tuple[float, float]] | None = None,
         seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    view = _view(rng)
    turned = cv2.warpAffine(view, cv2.getRotationMatrix2D((W / 2, H / 2), 30, 1.3),
                            (W, H), borderMode=cv2.BORDER_REFLECT)
    events = events or {}
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    last = view
    for i in range(int(seconds * fps)):
        t = i / fps
        active = {k for k, (a, b) in events.items() if a <= t < b}
        if "frozen" in active:
            writer.write(last)
            continue
        frame = (turned if "moved" in active else view).copy()
        # Something crosses the view for 3 s of every 7.
        phase = t % 7.0
        if phase < 3.0:
            x = int(-60 + (W + 120) * phase / 3.0)
            y = 200 + int(30 * math.sin(t))
            cv2.circle(frame, (x, y), 40, (30, 200, 240), -1)
        if "blurred" in active:
            frame = cv2.GaussianBlur(frame, (0, 0), 6)
        if "covered" in active:
            frame = np.full_like(frame, 25)
        if "dark" in active:
            frame = (frame * 0.35).astype(np.uint8)
        noise = rng.normal(0, 12.0 if "dark" in active else 2.0, frame.shape)
        frame = np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        writer.write(frame)
        last = frame
    writer.release()
    return path
