"""A loop step's cadence, for the daemon's loop: due from a first time on, then once per
period after each run (a slow run pushes the next one back rather than bunching them)."""

from __future__ import annotations


class Every:
    """A loop step's cadence: due from `first` on, then once per `period_s` after each run."""

    def __init__(self, period_s: float, first: float):
        self.period_s = period_s
        self.next = first

    def due(self, now: float) -> bool:
        return now >= self.next

    def done(self, now: float) -> None:
        self.next = now + self.period_s
