"""Which images an engine's canary runs, read once per folder: `canary.images` when set, else
the folder its model's sidecar names as `check_images` (relative to the model file).

Hands on (image name, expected label, BGR image) triples, at most `max_images`, spread over the
labels; an empty list (said once in the log) when there are none or they do not fit the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import CanaryConfig
from ..errors import EdgeswinError
from ..labelled import labelled_images, read_image
from ..records import ModelInfo

log = logging.getLogger(__name__)

Image = tuple[str, str, np.ndarray]


class CanaryImages:
    def __init__(self, cfg: CanaryConfig):
        self.cfg = cfg
        self._read: dict[tuple[str, tuple[str, ...]], list[Image]] = {}

    def folder(self, model: Path, info: ModelInfo) -> Path | None:
        if self.cfg.images is not None:
            return Path(self.cfg.images)
        if info.check_images is None:
            return None
        return (Path(model).parent / info.check_images).resolve()

    def for_engine(self, model: Path, info: ModelInfo) -> list[Image]:
        folder = self.folder(model, info)
        key = (str(folder), info.labels)
        if key in self._read:
            return self._read[key]
        images: list[Image] = []
        if folder is None:
            log.info("canary: model %s names no check_images and canary.images is not set: "
                     "no canary for it", info.name)
        else:
            try:
                pairs = labelled_images(folder, info.labels, self.cfg.max_images)
                images = [(f"{p.parent.name}/{p.name}", info.labels[i], read_image(p))
                          for p, i in pairs]
            except EdgeswinError as exc:
                log.warning("canary: no canary for model %s: %s", info.name, exc)
        self._read[key] = images
        return images
