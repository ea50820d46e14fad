"""Stage 4: raw model output -> a labelled, smoothed result, and whether to publish it.

Hands on (label, score, top-k) from `CameraPostprocessor.apply` and a yes/no from
`PublishGate.should_publish`. Per-camera state (the smoothing window, the last label) lives
here, so the pipeline stays a loop.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .config import CameraConfig

UNKNOWN = "unknown"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


class CameraPostprocessor:
    """Softmax, smoothing over the last N inferences, top-k and the score threshold."""

    def __init__(self, cfg: CameraConfig, labels: tuple[str, ...]):
        self.cfg = cfg
        self.labels = labels
        self._window: deque[np.ndarray] = deque(maxlen=cfg.smoothing.window)

    def reset(self, labels: tuple[str, ...]) -> None:
        """Start over, e.g. after an engine with other labels took over."""
        self.labels = labels
        self._window.clear()

    def apply(self, output: np.ndarray, output_kind: str = "logits"
              ) -> tuple[str, float, list[tuple[str, float]]]:
        probs = softmax(output) if output_kind == "logits" else output
        self._window.append(probs)
        smoothed = np.mean(self._window, axis=0) if len(self._window) > 1 else probs
        k = min(self.cfg.topk, len(self.labels))
        order = np.argsort(smoothed)[::-1][:k]
        topk = [(self.labels[i], round(float(smoothed[i]), 4)) for i in order]
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
