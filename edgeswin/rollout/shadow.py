"""Comparing a candidate model with the one that serves: both on the same live frame, back to
back (`compare_on`), and, when their label sets differ so that agreement means nothing, top-1 on
a labelled folder (`accuracy_on`).

Hands on samples to a `gate.Comparison`, or a fraction; the verdicts are `gate`'s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from ..engine.ladder import ActiveEngine
from ..labelled import labelled_images
from ..prepare.preprocess import Preprocessor
from .gate import Comparison

log = logging.getLogger(__name__)


def accuracy_on(folder: Path, engine) -> float:
    """Top-1 of `engine` on a labelled folder (0.0 when the folder cannot be read: the
    error is logged, and a gate that needs it fails). On the open thread, before any frame
    waits."""
    try:
        items = labelled_images(folder, engine.info.labels)
    except Exception as exc:
        log.error("rollout: check_images: %s", exc)
        return 0.0
    prep, right = Preprocessor(engine.info.input), 0
    for path, index in items:
        image = cv2.imread(str(path))
        if image is not None:
            right += int(int(np.argmax(engine.infer(prep(image)))) == index)
    return right / len(items) if items else 0.0


def compare_on(old: ActiveEngine, new: ActiveEngine, image, cmp: Comparison,
               old_first: bool) -> None:
    """Both models on one frame, back to back (callers alternate which goes first): a busy
    moment of the device (another process, the capture threads, heat) falls on both timings
    alike, which two models timed at other moments cannot promise."""
    if old_first:
        old_out, old_ms = _timed(old, image)
        new_out, new_ms = _timed(new, image)
    else:
        new_out, new_ms = _timed(new, image)
        old_out, old_ms = _timed(old, image)
    cmp.add(old_out, old.engine.info.output_kind, old_ms,
            new_out, new.engine.info.output_kind, new_ms)


def _timed(active: ActiveEngine, image) -> tuple[np.ndarray, float]:
    x = active.preprocess(image)
    t0 = time.perf_counter()
    out = active.engine.infer(x)
    return out, (time.perf_counter() - t0) * 1000
