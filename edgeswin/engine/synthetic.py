"""A synthetic engine for `edgeswin bench --engine-ms`: it holds the calling thread for a set
time without the GIL, as a GPU engine does while its stream synchronises, and hands on fixed
scores. With it the bench charts what the daemon around an engine costs, from a free engine
(0 ms) to a slow one, apart from what any real model costs on this machine.

Hands on the same 1-D float32 scores as the real backends, for the model sidecar's labels and
input spec (so preprocessing and postprocessing are the real ones).
"""

from __future__ import annotations

import time

import numpy as np

from ..records import ModelInfo


class SyntheticEngine:
    backend = "synthetic"

    def __init__(self, info: ModelInfo, hold_ms: float):
        self.info = info
        self.hold_s = max(hold_ms, 0.0) / 1000
        self._scores = np.linspace(1.0, 0.0, len(info.labels), dtype=np.float32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.info.input.shape:
            raise ValueError(f"input {x.shape} but the engine takes {self.info.input.shape}")
        if self.hold_s:
            time.sleep(self.hold_s)  # releases the GIL, like a wait on a CUDA stream
        return self._scores.copy()
