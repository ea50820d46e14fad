"""Which way a GPU rung's frames are prepared, per frame size: the CUDA kernel
(`preprocess_cuda`) or the CPU (`preprocess`), whichever costs the daemon less here, tried
again now and then; what it chose is logged.

Hands on what the chosen way hands on: a `DeviceInput` from the kernel, or the input array.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from .preprocess import to_bgr
from .preprocess_cuda import CudaPreprocessor

log = logging.getLogger(__name__)


class ChoosePerSize:
    """A GPU rung's preprocessing: the kernel for frame sizes where it costs less than the
    CPU, the CPU for the others (a 4K frame's copy may cost more than the CPU's pre-shrinking
    resize). The first frames of each size go both ways; after `TRIALS` (the first one not
    counted: it pays for allocation) the cheaper way by median stays, and the GPU's idle
    buffers are freed when no size uses it.

    Cost is what a way takes from the daemon, measured so that a busy host cannot move it:
    the CPU time of the preparing thread itself (`time.thread_time`: what the cameras and
    the engine lose; waiting for the GIL or a core is not counted), plus, for the GPU way,
    the device's own time for the copy and the kernel (CUDA events), since the frame is
    ready only then. So the kernel is chosen only where it is both lighter on the host and
    no later with the input. Wall-clock timings of several short GPU calls against one CPU
    call inflate several-fold under contention and decide by noise; these do not. The device
    changes (a build, more cameras, heat), so every `RETRIAL_EVERY` frames of a size the
    trial runs again. Hands on a DeviceInput or, from the CPU, the input array."""

    TRIALS = 5
    RETRIAL_EVERY = 2000

    def __init__(self, gpu: CudaPreprocessor, cpu, label: str):
        self.gpu, self.cpu, self.label = gpu, cpu, label
        self.chosen: dict[tuple[int, int], str] = {}  # (height, width) -> "gpu" | "cpu"
        self.costs: dict[tuple[int, int], tuple[float, float]] = {}  # size -> (GPU, CPU) ms
        self._trials: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self._since: dict[tuple[int, int], int] = {}  # frames of a size since its choice
        self._was: dict[tuple[int, int], str] = {}  # the choice before a re-trial
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray):
        image = to_bgr(image)
        if not self.gpu.fits(image):
            return self.cpu(image)
        size = image.shape[:2]
        way = self.chosen.get(size)
        if way is not None:
            seen = self._since[size] = self._since.get(size, 0) + 1
            if seen >= self.RETRIAL_EVERY:
                with self._lock:
                    self._was[size] = self.chosen.pop(size, way)
                    self._trials.pop(size, None)
                    self._since[size] = 0
        if way == "cpu":
            if self.gpu.idle_slots and "gpu" not in self.chosen.values():
                self.gpu.trim()  # a trial frame's slot, back since the choice
            return self.cpu(image)
        if way == "gpu":
            prepared = self.gpu(image)
            return prepared if prepared is not None else self.cpu(image)
        return self._trial(size, image)

    def _trial(self, size: tuple[int, int], image: np.ndarray):
        c0 = time.thread_time()
        prepared = self.gpu(image)
        if prepared is None:
            return self.cpu(image)
        c1 = time.thread_time()
        device_ms = self.gpu.device_ms(prepared)
        c2 = time.thread_time()
        self.cpu(image)  # timed only: the GPU result is handed on
        c3 = time.thread_time()
        decided_cpu, kept = False, -1
        with self._lock:
            trials = self._trials.setdefault(size, [])
            trials.append(((c1 - c0) * 1000 + device_ms, (c3 - c2) * 1000))
            if len(trials) > self.TRIALS and size not in self.chosen:
                gpu_ms = float(np.median([t[0] for t in trials[1:]]))
                cpu_ms = float(np.median([t[1] for t in trials[1:]]))
                way = "gpu" if gpu_ms <= cpu_ms else "cpu"
                changed = self._was.get(size) != way
                self.chosen[size] = way
                self.costs[size] = (gpu_ms, cpu_ms)
                if changed:
                    log.info("%s: %dx%d frames preprocessed on the %s (GPU %.2f ms of host and "
                             "device time, CPU %.2f ms%s)", self.label, size[1], size[0],
                             way.upper(), gpu_ms, cpu_ms,
                             ", mapped memory" if self.gpu.mapped else "")
                if way == "cpu" and len(self.chosen) == len(self._trials):
                    on_gpu = [h * w * 3 for (h, w), went in self.chosen.items() if went == "gpu"]
                    decided_cpu, kept = not on_gpu, max(on_gpu, default=-1)
        if decided_cpu:  # no size uses the kernel now: its buffers go back, this frame's too
            del prepared
            freed = self.gpu.trim()
            log.debug("%s: %d idle GPU preprocessing slot(s) freed", self.label, freed)
            return self.cpu(image)
        if kept >= 0:  # a larger size went to the CPU: its trial slots are of no use now
            log.debug("%s: %d idle GPU preprocessing slot(s) freed", self.label,
                      self.gpu.trim(larger_than=kept))
        return prepared
