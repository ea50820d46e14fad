"""A labelled folder of images, one sub-folder per label (`label/*.jpg`): what `eval`,
`quantize` and the rollout's accuracy check read.

Hands on (image path, label index) pairs in a stable order, and images as BGR arrays; every
problem is an `EdgeswinError` that names the folder or file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import EdgeswinError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def labelled_images(folder: Path, labels: tuple[str, ...], limit: int | None = None
                    ) -> list[tuple[Path, int]]:
    """(image, label index) for every image under folder/<label>/; unknown folders are errors."""
    if not folder.is_dir():
        raise EdgeswinError(f"{folder}: not a folder of labelled images (one sub-folder per class)")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name not in index)
    if unknown:
        raise EdgeswinError(f"{folder}: sub-folders {unknown} are not labels of the model "
                            f"({', '.join(labels)})")
    items = sorted((p, index[p.parent.name]) for p in folder.glob("*/*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.parent.name in index)
    if not items:
        raise EdgeswinError(f"{folder}: no images found (expected {folder}/<label>/*.png)")
    if limit:
        step = max(len(items) // limit, 1)  # spread over the classes, not the first ones
        items = items[::step][:limit]
    return items


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdgeswinError(f"{path}: cannot read this image")
    return image
