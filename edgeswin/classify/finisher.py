"""The tail of each classification on a thread of its own, so the loop's next inference runs
while this one is postprocessed, published and recorded.

Hands the loop nothing but back-pressure and failures: jobs are finished one at a time and in
the order given (a region's `seq` stays in order); at most `depth` wait, after which `submit`
blocks until the oldest is done, so a finisher slower than the engine slows the loop instead
of growing a queue. A job that raises is kept, with its exception, for the loop to handle
(`drain`, `failures`), as if it had raised there; the jobs after it are still finished.

Whether a hand-off pays is `HandOffPolicy`'s call: only when another frame already waits and
the finishing is found to hide behind the engine's time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Job = TypeVar("Job")

THREAD_NAME = "finisher"


class Finisher(Generic[Job]):
    def __init__(self, finish: Callable[[Job], None], depth: int = 2):
        self._finish = finish
        self._depth = depth
        self._cond = threading.Condition()
        self._jobs: deque[Job] = deque()
        self._running = False  # a job is being finished (it has left the deque)
        self._failed: list[tuple[Job, BaseException]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            while len(self._jobs) >= self._depth and not self._closed:
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the finisher is closed")
            self._jobs.append(job)
            self._cond.notify_all()

    @property
    def idle(self) -> bool:
        """Nothing waits or is being finished (a plain read: the loop's own thread submits)."""
        return not self._jobs and not self._running

    def failures(self) -> list[tuple[Job, BaseException]]:
        """The jobs that raised since the last call, with their exceptions."""
        if not self._failed:  # the common case, without the lock
            return []
        with self._cond:
            failed, self._failed = self._failed, []
        return failed

    def drain(self) -> list[tuple[Job, BaseException]]:
        """Wait until every job given so far is finished; the ones that raised."""
        with self._cond:
            while not self.idle:
                self._cond.wait()
        return self.failures()

    def close(self) -> list[tuple[Job, BaseException]]:
        """Finish what was given, stop the thread; the jobs that raised (the caller is the
        only submitter, so nothing is given after the drain)."""
        failed = self.drain()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        return failed

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                self._running = True  # before the deque empties: `idle` reads without the lock
                job = self._jobs.popleft()
                self._cond.notify_all()  # a slot is free for a blocked submit
            try:
                self._finish(job)
            except BaseException as exc:  # the loop decides: roll a model back or stop
                with self._cond:
                    self._failed.append((job, exc))
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()


class HandOffPolicy:
    """Whether to hand the next classification to the finisher, decided by measuring both.

    A hand-off pays when the engine holds the loop without the GIL (a GPU engine waiting on
    its stream, ONNX Runtime computing) for longer than the finishing takes: the finishing
    then hides behind the next inference. With a near-free engine it only adds wake-ups and a
    third thread taking turns at the GIL with the capture threads; how long the engine "takes"
    is no guide either, as the loop's clock also counts waiting for the GIL afterwards. So
    while the loop is saturated (another frame waits whenever one is done), a trial times the
    loop's whole cycle both ways, in interleaved blocks of `BLOCK` cycles (so drift in the
    engine's or the machine's speed falls on both alike) until each way has `MIN_SAMPLES`
    cycles and `trial_s` has passed. The faster way is kept for `keep_s`, then tried again;
    each trial that agrees with the one before doubles the wait, up to `max_keep_s` (trials
    cost time in the slower way), and an engine switch (`retry`) starts one at once."""

    MIN_SAMPLES = 60  # counted cycles of each way per trial
    BLOCK = 8  # decisions in a row one way; the first cycle of a block (the switch) is not counted

    def __init__(self, trial_s: float = 1.0, keep_s: float = 10.0, max_keep_s: float = 80.0,
                 enabled: bool = True):
        self.enabled = enabled  # off: every classification finished on the loop (the bench's A/B)
        self.handing_off = False
        self.cycle_ms: dict[bool, float | None] = {False: None, True: None}  # last trial's means
        self.trials = 0
        self._trial_s, self._keep_s, self._max_keep_s = trial_s, keep_s, max_keep_s
        self._keep = keep_s  # the wait after this trial
        self._kept: bool | None = None  # what the last trial chose
        self._keep_until = 0.0  # no trial before this: the choice holds
        self._trial: dict[bool, list[float]] | None = None  # way -> [sum of cycles, count]
        self._trial_end = 0.0
        self._in_block = 0  # decisions made so far in the current block
        self._last: float | None = None  # the previous saturated decision

    def decide(self, now: float) -> bool:
        """Another frame already waits: hand this classification off?"""
        if not self.enabled:
            return False
        cycle, self._last = (now - self._last if self._last is not None else None), now
        if self._trial is None:
            if now >= self._keep_until:
                self.trials += 1
                self._trial = {True: [0.0, 0], False: [0.0, 0]}
                self._trial_end = now + self._trial_s
                self.handing_off, self._in_block = self.trials % 2 == 1, 1
            return self.handing_off
        if cycle is not None and self._in_block >= 2:  # the cycle run the way chosen last time
            way = self._trial[self.handing_off]
            way[0] += cycle
            way[1] += 1
        if now >= self._trial_end and min(n for _, n in self._trial.values()) >= self.MIN_SAMPLES:
            self.cycle_ms = {w: total / n * 1000 for w, (total, n) in self._trial.items()}
            self.handing_off = self.cycle_ms[True] < self.cycle_ms[False]
            self._keep = min(self._keep * 2, self._max_keep_s) \
                if self.handing_off == self._kept else self._keep_s
            self._kept = self.handing_off
            self._trial, self._keep_until = None, now + self._keep
        elif self._in_block >= self.BLOCK:
            self.handing_off, self._in_block = not self.handing_off, 1
        else:
            self._in_block += 1
        return self.handing_off

    def retry(self) -> None:
        """Another engine serves: what paid with the last one may not; try again now."""
        self._trial, self._keep_until, self._keep, self._kept = None, 0.0, self._keep_s, None

    @property
    def in_trial(self) -> bool:
        return self._trial is not None

    def unsaturated(self) -> None:
        """No frame waited: the cycle from here is the cameras' pace, not the loop's."""
        self._last = None
