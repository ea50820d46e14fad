"""Running figures per camera (rates, latency percentiles) for the live view and `<root>/stats`."""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class CameraStats:
    """Counters and sliding windows of one camera; read by the live view and the stats topic."""

    def __init__(self, window: int = 300, rate_span_s: float = 5.0):
        self.classified = 0
        self.published = 0
        self.label: str | None = None
        self.score = 0.0
        self.infer_ms: deque[float] = deque(maxlen=window)
        self.total_ms: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque()
        self._span = rate_span_s

    def record(self, label: str, score: float, infer_ms: float, total_ms: float,
               published: bool) -> None:
        now = time.monotonic()
        self.classified += 1
        self.published += int(published)
        self.label, self.score = label, score
        self.infer_ms.append(infer_ms)
        self.total_ms.append(total_ms)
        self._times.append(now)
        while self._times and now - self._times[0] > self._span:
            self._times.popleft()

    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = max(self._times[-1] - self._times[0], time.monotonic() - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    @staticmethod
    def percentile(values: deque[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if values else None

    def snapshot(self) -> dict:
        return {
            "fps": round(self.fps(), 2),
            "classified": self.classified,
            "published": self.published,
            "label": self.label,
            "score": round(self.score, 4),
            "infer_ms_p50": self.percentile(self.infer_ms, 50),
            "infer_ms_p95": self.percentile(self.infer_ms, 95),
            "capture_to_publish_ms_p50": self.percentile(self.total_ms, 50),
            "capture_to_publish_ms_p95": self.percentile(self.total_ms, 95),
        }
