"""Stage 4: raw model output -> a labelled, smoothed result, and whether to publish it.

Hands on (label, score, top-k) from `CameraPostprocessor.apply` and a yes/no from
`PublishGate.should_publish`. Per-camera state (the smoothing window, the last label) lives
here, so the daemon stays a loop.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from ..config import CameraConfig

UNKNOWN = "unknown"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


class CameraPostprocessor:
    """Softmax, smoothing over the last N inferences, top-k and the score threshold.

    In plain Python on a list: a model's handful of scores costs less that way than numpy's
    calls do right after an inference has pushed the interpreter out of the CPU caches (the
    postprocessing p50 before and after, in benchmarks/RESULTS.md's goals table).
    Equal scores keep the model's label order. Scores with a NaN or an infinity (a broken
    engine, an FP16 overflow) give `unknown` at 0 and leave the smoothing window alone."""

    def __init__(self, cfg: CameraConfig, labels: tuple[str, ...]):
        self.cfg = cfg
        self.labels = labels
        self._window: deque[list[float]] = deque(maxlen=cfg.smoothing.window)

    def reset(self, labels: tuple[str, ...]) -> None:
        """Start over, e.g. after an engine with other labels took over."""
        self.labels = labels
        self._window.clear()

    def apply(self, output: np.ndarray, output_kind: str = "logits"
              ) -> tuple[str, float, list[tuple[str, float]]]:
        values = output.reshape(-1).tolist()
        if not all(map(math.isfinite, values)):
            return UNKNOWN, 0.0, [(UNKNOWN, 0.0)]
        if output_kind == "logits":
            top = max(values)
            exps = [math.exp(v - top) for v in values]
            total = sum(exps)
            values = [v / total for v in exps]
        self._window.append(values)
        n = len(self._window)
        smoothed = [sum(column) / n for column in zip(*self._window)] if n > 1 else values
        k = min(self.cfg.topk, len(self.labels))
        order = sorted(range(len(smoothed)), key=smoothed.__getitem__, reverse=True)[:k]
        topk = [(self.labels[i], round(smoothed[i], 4)) for i in order]
        label, score = topk[0]
        if score < self.cfg.threshold:
            label = UNKNOWN
        return label, score, topk


class PublishGate:
    """The per-camera publish policy: every inference, on label change, or at most every N s."""

    def __init__(self, cfg: CameraConfig):
        self.policy = cfg.publish
        self._last_label: str | None = None
        self._last_time = float("-inf")

    def should_publish(self, label: str, now: float) -> bool:
        mode = self.policy.mode
        publish = (mode == "every"
                   or (mode == "change" and label != self._last_label)
                   or (mode == "interval" and now - self._last_time >= self.policy.interval_s))
        if publish:
            self._last_time = now
        self._last_label = label
        return publish
