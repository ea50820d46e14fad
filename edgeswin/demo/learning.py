"""The learning loop on demo assets: videos of a camera mounted farther away than the demo
models were trained for (smaller shapes: `scenes.FAR`), labelled frames cut from a video by its
ground truth, and the true label of a hard example the daemon kept from one.

Hands on video files (with their `.labels.csv`), labelled image folders (`label/NNNNN.png`)
and labels; `tests/toolchain/test_learning_loop.py` and `benchmarks/learning_loop.py` run the loop on
them: daemon -> hard examples -> review -> finetune -> eval -> rollout.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from ..scenes import FAR
from .assets import VideoSpec, make_video, read_ground_truth


def far_video(path: Path, seconds: float, seed: int, fps: int = 10) -> Path:
    """A 320x180 video of far-away shapes, and its ground truth beside it."""
    make_video(path, VideoSpec(seconds=seconds, fps=fps, width=320, height=180, seed=seed,
                               sizes=FAR))
    return path


def frames_folder(video: Path, folder: Path, every: int = 1) -> Path:
    """Every `every`-th frame of `video` into folder/<true label>/<frame>.png."""
    truth = read_ground_truth(video)
    capture = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0 and index < len(truth):
            (folder / truth[index]).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / truth[index] / f"{index:05d}.png"), frame)
        index += 1
    capture.release()
    return folder


def true_label(example: Path, video: Path) -> str:
    """The ground truth of the frame a hard example (its .jpg) was kept from."""
    meta = json.loads(example.with_suffix(".json").read_text())
    return read_ground_truth(video)[int(meta["frame_index"])]
