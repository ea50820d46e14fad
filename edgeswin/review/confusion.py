"""The confusion matrix on the reviewed frames: rows the label a person chose, columns the
label the model answered.

Without a model, the answers are the device's own, as each frame's sidecar recorded them when
it was kept. With `--model`, they are that model's, run here through the daemon's engine and
preprocessing (each image answered once per file version, then cached), so a fine-tuned model
can be compared on the same frames. Hands on a `Matrix`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..labelled import read_image
from .examples import given_label, images_in


@dataclass
class Matrix:
    labels: list[str]  # rows and columns, in the model's order, then any others seen
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # chosen -> answered -> n
    unanswered: int = 0  # reviewed frames with no recorded answer (no or an old sidecar)
    by: str = "the device's answers when it kept each frame"

    def add(self, chosen: str, answered: str) -> None:
        for label in (chosen, answered):
            if label not in self.labels:
                self.labels.append(label)
        row = self.counts.setdefault(chosen, {})
        row[answered] = row.get(answered, 0) + 1

    @property
    def total(self) -> int:
        return sum(sum(row.values()) for row in self.counts.values())

    @property
    def right(self) -> int:
        return sum(row.get(label, 0) for label, row in self.counts.items())

    def as_dict(self) -> dict:
        return {"labels": self.labels, "counts": self.counts, "total": self.total,
                "right": self.right, "unanswered": self.unanswered, "by": self.by}


class Answers:
    """What answers the reviewed frames: the sidecars, or a model opened once."""

    def __init__(self, labels: tuple[str, ...], model: Path | None = None):
        self.labels, self.model = labels, model
        self._engine = self._prep = None
        self._cache: dict[tuple[Path, int, int], str] = {}
        self._lock = threading.Lock()  # the engine and the cache, across the server's threads
        if model is not None:
            from ..engine import open_engine
            from ..prepare.preprocess import Preprocessor
            self._engine = open_engine(model)
            self._prep = Preprocessor(self._engine.info.input)

    def close(self) -> None:
        if self._engine is not None:
            from ..engine.ladder import close_engine
            close_engine(self._engine)

    def _by_model(self, image: Path) -> str | None:
        stat = image.stat()
        key = (image, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key not in self._cache:
                try:
                    scores = self._engine.infer(self._prep(read_image(image)))
                except Exception:  # an unreadable image is left out, never the page
                    return None
                self._cache[key] = self._engine.info.labels[int(np.argmax(scores))]
            return self._cache[key]

    def matrix(self, labelled: Path) -> Matrix:
        matrix = Matrix(list(self.labels))
        if self.model is not None:
            matrix.by = f"{self.model.name}, run here on each frame"
        for image in images_in(labelled):
            answered = self._by_model(image) if self._engine is not None else given_label(image)
            if answered is None:
                matrix.unanswered += 1
            else:
                matrix.add(image.parent.name, answered)
        return matrix
