"""`edgeswin eval`: top-1/top-5 accuracy on a labelled image folder (one sub-folder per class,
named as the model's labels), top-1 agreement with a reference model, and batch-1 latency.

Hands on an `Evaluation` (and its dict for JSON). Images are read with OpenCV and go through
the same `Preprocessor` the daemon uses, so the figures are the daemon's figures.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..engine import open_engine
from ..errors import EdgeswinError
from ..labelled import labelled_images, read_image
from ..prepare.preprocess import Preprocessor


@dataclass
class Evaluation:
    model: str
    images: int
    top1: float
    top5: float
    agreement: float | None  # top-1 agreement with the reference, when one is given
    latency_ms_median: float
    latency_ms_p95: float

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(model: Path, data: Path, reference: Path | None = None,
             limit: int | None = None) -> Evaluation:
    for path in (model, reference):
        if path is not None and not path.is_file():  # before its sidecar is looked for
            raise EdgeswinError(f"{path}: model file not found")
    engine = open_engine(model)
    prep = Preprocessor(engine.info.input)
    ref = open_engine(reference) if reference else None
    ref_prep = Preprocessor(ref.info.input) if ref else None
    if ref and ref.info.labels != engine.info.labels:
        raise EdgeswinError(f"{reference}: its labels differ from {model}'s")
    k = min(5, len(engine.info.labels))
    top1 = top5 = agree = 0
    times = []
    items = labelled_images(data, engine.info.labels, limit)
    for path, label in items:
        image = read_image(path)
        x = prep(image)
        t0 = time.perf_counter()
        scores = engine.infer(x)
        times.append((time.perf_counter() - t0) * 1000)
        best = np.argsort(scores)[::-1][:k]
        top1 += int(best[0] == label)
        top5 += int(label in best)
        if ref:
            agree += int(ref.infer(ref_prep(image)).argmax() == best[0])
    n = len(items)
    times.sort()
    return Evaluation(model.name, n, top1 / n, top5 / n, agree / n if ref else None,
                      round(statistics.median(times), 3),
                      round(times[int(0.95 * (len(times) - 1))], 3))
