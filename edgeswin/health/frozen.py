"""`frozen`: a camera that keeps sending the same picture, also when that picture goes through
an encoder on the way (a sensor or ISP that hangs while the encoder keeps sending).

A repeated picture through an encoder is not repeated exactly: every key frame encodes it
anew, and the thumbnail moves by 0.1 to 0.5 grey levels there, while between key frames it
moves by less than 0.02 (measured on real footage re-encoded as MPEG-4 and H.264 at CRF 18 to
30, docs/health.md). A still scene seen by a live sensor moves by its noise between any two
frames (0.03 grey levels and more at CRF 23 or better). So the judgement is over a window of
`frozen_after_s` of frame-to-frame changes: `frozen` when their median is under the camera's
`same` level; key frames, fewer than half of the changes, do not restart it. The median turns
once half the window is the same picture; the judge holds it half a window more, so `frozen` is
raised `frozen_after_s` after the picture stopped.

The `same` level is SAME, or, for a camera whose learned normal shows a quieter picture than
that (an encoder that already drops most of a still scene's noise), a fraction of its own
median change while it was learned, down to SAME_FLOOR.

Takes the change between each judged thumbnail and the one before; hands on whether the window
holds a frozen picture, and its median.
"""

from __future__ import annotations

import statistics
from collections import deque

SAME = 0.02  # grey levels: the median change of a repeated picture, key frames included
SAME_FLOOR = 0.002  # the `same` level never goes below this (exact repeats measure 0.000)
OF_QUIET = 0.5  # ... or below this fraction of the camera's own median change while learned
MIN_CHANGES = 3  # changes in the window before it can say anything


def same_level(quiet_change: float | None) -> float:
    """The median change under which this camera's picture counts as the same."""
    if quiet_change is None:
        return SAME
    return max(SAME_FLOOR, min(SAME, OF_QUIET * quiet_change))


class FrozenWindow:
    def __init__(self, span_s: float):
        self.span_s = span_s
        self._changes: deque[tuple[float, float]] = deque()
        self._since: float | None = None  # clock of the first change since the last reset

    def reset(self) -> None:
        """A frame that cannot be frozen (covered): the window starts again."""
        self._changes.clear()
        self._since = None

    def add(self, clock: float, change: float) -> None:
        if self._since is None:
            self._since = clock
        self._changes.append((clock, change))
        while self._changes and self._changes[0][0] < clock - self.span_s:
            self._changes.popleft()

    def median(self, clock: float) -> float | None:
        """The median change of a full window, or None while it has not spanned
        `frozen_after_s` yet (a picture needs that long to count as frozen)."""
        if self._since is None or clock - self._since < self.span_s or \
                len(self._changes) < MIN_CHANGES:
            return None
        return statistics.median(c for _, c in self._changes)
