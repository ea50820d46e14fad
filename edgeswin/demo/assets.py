"""Demo videos with ground truth, made from the same scene generator the demo models learned.

Hands on `<name>.mp4` and `<name>.labels.csv` (`frame,label`, one row per frame). A video is a
run of segments, 1.2-3 s each: one shape (or none) drifting and turning over a background;
the label changes only at a segment boundary. Deterministic by seed.
"""

from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..scenes import LABELS, NEAR, make_background, moved, random_look, random_scene, random_shape, render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoSpec:
    seconds: float = 30.0
    fps: int = 25
    width: int = 1280
    height: int = 720
    seed: int = 0
    sizes: tuple[float, float] = NEAR  # the shapes' circumradius, fraction of the height


def labels_path(video: Path) -> Path:
    return video.with_name(video.stem + ".labels.csv")


def read_ground_truth(video: Path) -> list[str]:
    with labels_path(video).open() as fh:
        return [row["label"] for row in csv.DictReader(fh)]


def make_video(path: Path, spec: VideoSpec) -> list[str]:
    """Write the video and its ground-truth CSV; return the per-frame labels."""
    rng = np.random.default_rng(spec.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps,
                             (spec.width, spec.height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {tmp} (no mp4v encoder?)")
    total = int(spec.seconds * spec.fps)
    labels: list[str] = []
    previous = None
    while len(labels) < total:
        kind = LABELS[int(rng.integers(0, len(LABELS)))]
        if kind == previous:
            continue
        previous = kind
        look = random_look(rng)
        # Video codecs add their own artefacts; a JPEG round trip per frame would be twice.
        look = type(look)(look.background_seed, look.style, look.noise_sigma, look.blur_sigma, 0)
        bg = make_background(look, spec.width, spec.height)
        shape = None if kind == "empty" else random_shape(rng, kind, look, spec.width,
                                                          spec.height, spec.sizes)
        n = min(int(rng.uniform(1.2, 3.0) * spec.fps), total - len(labels))
        vx, vy, spin = rng.uniform(-0.004, 0.004), rng.uniform(-0.004, 0.004), rng.uniform(-3, 3)
        for _ in range(n):
            writer.write(render(shape, look, spec.width, spec.height, rng, bg))
            labels.append(kind)
            if shape is not None:
                margin_x = shape.size * spec.height / spec.width
                if not margin_x < shape.cx + vx < 1 - margin_x:
                    vx = -vx
                if not shape.size < shape.cy + vy < 1 - shape.size:
                    vy = -vy
                shape = moved(shape, vx, vy, spin)
    writer.release()
    tmp.replace(path)
    with labels_path(path).open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["frame", "label"])
        out.writerows(enumerate(labels))
    return labels


def ensure_video(path: Path, spec: VideoSpec) -> None:
    """Generate the video and its labels unless both are already there."""
    if path.is_file() and labels_path(path).is_file():
        return
    log.info("generating demo video %s (%gs at %dx%d)", path, spec.seconds, spec.width,
             spec.height)
    make_video(path, spec)


def make_image_folder(folder: Path, per_class: int, seed: int, width: int = 640,
                      height: int = 360, sizes: tuple[float, float] = NEAR) -> Path:
    """A labelled image folder (folder/<label>/NNNN.png) of rendered scenes, for `edgeswin
    eval` and `edgeswin quantize` on the demo models. Another seed gives other images."""
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(LABELS, 0)
    for label in LABELS:
        (folder / label).mkdir(parents=True, exist_ok=True)
    while min(counts.values()) < per_class:
        image, index = random_scene(rng, width, height, sizes)
        label = LABELS[index]
        if counts[label] < per_class:
            cv2.imwrite(str(folder / label / f"{counts[label]:04d}.png"), image)
            counts[label] += 1
    return folder


def install_bases() -> list[Path]:
    """Where the bundled files (models/, configs/, clips/) may be: beside the package in a
    checkout, beside the venv that runs this (install.sh and the images put them next to
    venv/), /opt/edgeswin."""
    return [Path(__file__).resolve().parents[2], Path(sys.prefix).resolve().parent,
            Path("/opt/edgeswin")]


def demo_model_places() -> list[Path]:
    return [base / "models" / "swin-demo-112.onnx" for base in install_bases()]


def default_demo_model() -> Path | None:
    return next((p for p in demo_model_places() if p.is_file()), None)
