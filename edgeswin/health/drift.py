"""Drift: whether a camera's recent frames and answers still look like its baseline (night
where there was day, rain, a new layout, a model meeting what it was not trained on).

Takes the inputs of healthy judged frames (brightness, contrast, sharpness, mean blue, green and
red) and every classification's answer (top label, top score, `unknown`), learns a baseline over
`drift.baseline_s` of healthy running, and compares the last `drift.window_s` with it. Hands on
whether the camera drifts now and why, in words; the baseline as a dict to keep across restarts.

Inputs are compared by medians: the recent median this many spreads (the baseline's median
absolute deviation, with a floor per input so that a very steady camera is not called drifting
for a cloud) away from the baseline's. Outputs by the share of each label (total variation
distance), the median top score and the `unknown` rate, counted only for answers of the engine
the baseline was learned on (a smaller rung answers differently, and that is not the scene's
doing).

Answers are not independent: a camera says `person` for as long as the person stays. The
baseline learns how long an answer persists (`persist_s`: the duration-weighted mean length of
a run of one label), and a window holds about `window / persist_s` independent events, not as
many as it has answers. Each output test must clear chance on that many events by Z standard
errors, so a short window on a busy scene (a few events) cannot raise drift on its label mix at
all, and a long one raises it only for a change that chance would not make.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, deque
from dataclasses import asdict, dataclass

from ..classify.postprocess import UNKNOWN
from ..config.health import DriftConfig
from .signals import Signals

INPUTS = ("brightness", "contrast", "sharpness", "blue", "green", "red")
AS_RATIO = ("contrast", "sharpness")  # compared as ln(1 + value): a ratio, whatever the scene
FLOOR = {"brightness": 4.0, "blue": 4.0, "green": 4.0, "red": 4.0,  # grey levels
         "contrast": 0.1, "sharpness": 0.15}  # ln units: about 10 % and 16 %
SPREADS = 4.0  # the recent median this many spreads from the baseline's: drift
LABELS_APART = 0.5  # total variation distance of the label mix (0: the same, 1: disjoint)
SCORE_DROP = 0.2  # the median top score this much lower
UNKNOWN_RISE = 0.25  # the share of `unknown` answers this much higher
MIN_FRAMES = 10  # judged frames in the window (about 5 s)
MIN_ANSWERS = 20  # answers of the baseline's engine in the window
KEEP_SAMPLES = 4000  # frames kept to learn from (a reservoir: a long baseline stays small)
MAX_ANSWERS = 20_000  # answers kept in the window (the window is shorter at higher rates)
CHECK_EVERY_S = 2.0  # the window compared with the baseline this often (medians of thousands)
Z = 4.0  # an output test must exceed chance by this many standard errors (one-sided: 3e-5)
MIN_EVENTS = 8.0  # independent events in the window before its median top score is compared
SHARE_CLAMP = 0.02  # a share is taken as at least this (and at most 1 - it) for its error


def inputs_of(s: Signals) -> dict[str, float]:
    values = {"brightness": s.mean, "contrast": s.contrast, "sharpness": s.sharpness,
              "blue": s.colour[0], "green": s.colour[1], "red": s.colour[2]}
    return {k: math.log1p(max(v, 0.0)) if k in AS_RATIO else v for k, v in values.items()}


@dataclass
class Baseline:
    inputs: dict[str, tuple[float, float]]  # input -> (median, spread)
    engine: str  # the answers below are this engine's
    labels: dict[str, float]  # label -> share of answers
    score: float  # median top score
    unknown: float  # share of `unknown` answers
    frames: int
    answers: int
    persist_s: float  # how long one answer lasts, duration-weighted: the length of an event

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Baseline:
        """ValueError, KeyError or TypeError for anything but what `as_dict` wrote."""
        inputs = {k: (float(d["inputs"][k][0]), float(d["inputs"][k][1])) for k in INPUTS}
        labels = {str(k): float(v) for k, v in d["labels"].items()}
        values = [v for pair in inputs.values() for v in pair] + list(labels.values())
        if not all(math.isfinite(v) for v in values):
            raise ValueError("not a number in the baseline")
        persist_s = float(d["persist_s"])  # a baseline kept without it is learned afresh
        if not math.isfinite(persist_s) or persist_s < 0:
            raise ValueError(f"persist_s {persist_s}")
        return cls(inputs, str(d["engine"]), labels, float(d["score"]), float(d["unknown"]),
                   int(d["frames"]), int(d["answers"]), persist_s)


class Drift:
    def __init__(self, cfg: DriftConfig, baseline: Baseline | None = None):
        self.cfg, self.baseline = cfg, baseline
        self.learned_now = False  # a baseline was just learned: the board keeps it
        self._frames: deque[tuple[float, dict[str, float]]] = deque()
        self._answers: deque[tuple[float, str, float, str]] = deque(maxlen=MAX_ANSWERS)
        self._learn_from: float | None = None
        self._sample: list[dict[str, float]] = []
        self._seen = 0
        self._rng = random.Random(0)
        self._learn_answers: Counter[str] = Counter()
        self._learn_scores: dict[str, list[float]] = {}
        self._labels_seen: dict[str, Counter[str]] = {}
        self._runs: dict[str, _Runs] = {}  # engine -> how long its answers persisted
        self._checked_at = float("-inf")
        self._verdict: tuple[bool, str] = (False, "")

    def answer(self, clock: float, label: str, score: float, engine: str) -> None:
        """A classification of this camera while it was healthy."""
        if self.baseline is None:
            if self._learn_from is not None:
                self._learn_answers[engine] += 1
                scores = self._learn_scores.setdefault(engine, [])
                if len(scores) < KEEP_SAMPLES * 4:
                    scores.append(score)
                self._labels_seen.setdefault(engine, Counter())[label] += 1
                self._runs.setdefault(engine, _Runs()).answer(clock, label)
            return
        self._answers.append((clock, label, score, engine))

    def frame(self, clock: float, s: Signals) -> None:
        """A judged frame that showed no other problem."""
        values = inputs_of(s)
        if self.baseline is None:
            if self._learn_from is None:
                self._learn_from = clock
            self._seen += 1
            if len(self._sample) < KEEP_SAMPLES:
                self._sample.append(values)
            else:  # reservoir: each frame seen so far equally likely to be kept
                j = self._rng.randrange(self._seen)
                if j < KEEP_SAMPLES:
                    self._sample[j] = values
            return
        self._frames.append((clock, values))

    def check(self, clock: float) -> tuple[bool, str]:
        """(drifting now, why in words), compared afresh every CHECK_EVERY_S of the camera's
        clock. Learns the baseline once `baseline_s` has passed."""
        if self.baseline is None:
            if self._learn_from is not None and clock - self._learn_from >= \
                    self.cfg.baseline_s and len(self._sample) >= MIN_FRAMES:
                self.baseline, self.learned_now = self._learned(clock), True
            return False, ""
        if clock - self._checked_at < CHECK_EVERY_S:
            return self._verdict
        self._checked_at = clock
        start = clock - self.cfg.window_s
        while self._frames and self._frames[0][0] < start:
            self._frames.popleft()
        while self._answers and self._answers[0][0] < start:
            self._answers.popleft()
        # Half a window at least: right after a start, a few frames are not "recent".
        if len(self._frames) < MIN_FRAMES or \
                clock - self._frames[0][0] < min(self.cfg.window_s / 2, self.cfg.window_s - 1):
            self._verdict = (False, "")
        else:
            why = self._inputs_apart() + self._outputs_apart()
            self._verdict = (bool(why), "; ".join(why))
        return self._verdict

    def _inputs_apart(self) -> list[str]:
        out = []
        for name in INPUTS:
            median, spread = self.baseline.inputs[name]
            now = statistics.median(v[name] for _, v in self._frames)
            if abs(now - median) <= SPREADS * max(spread, FLOOR[name]):
                continue
            if name in AS_RATIO:
                out.append(f"{name} x{math.expm1(now) / max(math.expm1(median), 1e-9):.2f} "
                           f"of the baseline")
            else:
                out.append(f"{name} {now:.0f} (baseline {median:.0f})")
        return out

    def _outputs_apart(self) -> list[str]:
        b = self.baseline
        answers = [(label, score) for _, label, score, engine in self._answers
                   if engine == b.engine]
        if len(answers) < MIN_ANSWERS:
            return []
        events = self._events(len(answers))
        out = []
        counts = Counter(label for label, _ in answers)
        labels = set(counts) | set(b.labels)
        apart = 0.5 * sum(abs(counts[k] / len(answers) - b.labels.get(k, 0.0)) for k in labels)
        # Chance alone moves each share by its standard error on `events` draws.
        chance = 0.5 * Z * sum(_error(b.labels.get(k, 0.0), events) for k in labels)
        if apart >= max(LABELS_APART, chance):
            out.append(f"label mix {apart:.2f} apart from the baseline's "
                       f"(about {events:.0f} events in the window)")
        score = statistics.median(s for _, s in answers)
        if events >= MIN_EVENTS and b.score - score >= SCORE_DROP:
            out.append(f"median top score {score:.2f} (baseline {b.score:.2f})")
        unknown = counts[UNKNOWN] / len(answers)
        if unknown - b.unknown >= max(UNKNOWN_RISE, Z * _error(b.unknown, events)):
            out.append(f"unknown {unknown:.0%} of answers (baseline {b.unknown:.0%})")
        return out

    def _events(self, answers: int) -> float:
        """Independent events the window's answers hold: its span over how long an answer
        lasted in the baseline, at least one and at most one per answer."""
        span = self._answers[-1][0] - self._answers[0][0] if self._answers else 0.0
        persist = self.baseline.persist_s
        events = span / persist if persist > 0 else float(answers)
        return min(float(answers), max(1.0, events))

    def _learned(self, clock: float) -> Baseline:
        inputs = {}
        for name in INPUTS:
            values = [v[name] for v in self._sample]
            median = statistics.median(values)
            inputs[name] = (median, 1.4826 * statistics.median(abs(v - median) for v in values))
        engine, answers = (self._learn_answers.most_common(1) or [("", 0)])[0]
        labels = self._labels_seen.get(engine, Counter())
        scores = self._learn_scores.get(engine) or [0.0]
        runs = self._runs.get(engine, _Runs())
        self._sample, self._learn_scores, self._labels_seen, self._runs = [], {}, {}, {}
        return Baseline(inputs, engine, {k: n / max(answers, 1) for k, n in labels.items()},
                        statistics.median(scores), labels[UNKNOWN] / max(answers, 1),
                        self._seen, answers, runs.persist_s(clock))


def _error(share: float, events: float) -> float:
    """The standard error of a share on this many independent events."""
    p = min(max(share, SHARE_CLAMP), 1.0 - SHARE_CLAMP)
    return math.sqrt(p * (1.0 - p) / events)


class _Runs:
    """How long one engine's answers persisted while the baseline was learned: the runs of one
    label, weighted by their length (sum d^2 / sum d), so that a label flickering for one
    frame at the edge of an event does not make the events look many."""

    def __init__(self):
        self.label: str | None = None
        self.start = 0.0
        self.last = 0.0
        self.total = 0.0
        self.squares = 0.0

    def answer(self, clock: float, label: str) -> None:
        if label != self.label:
            self._close(clock)
            self.label, self.start = label, clock
        self.last = clock

    def _close(self, clock: float) -> None:
        if self.label is not None:
            d = max(clock - self.start, 0.0)
            self.total += d
            self.squares += d * d

    def persist_s(self, clock: float) -> float:
        self._close(max(clock, self.last))
        self.label = None
        return self.squares / self.total if self.total > 0 else 0.0
