"""The rollout gate: a candidate model compared with the current one on the same live frames,
and the verdicts (promote, reject, roll back). Pure: numbers in, decisions out; no engines,
threads or MQTT, so every rule is tested with made-up outputs and a fake clock.

Hands `rollouts` a `Comparison` to feed and `verdict()` / `watch_verdict()` answers, and
`status_payload()` for the retained `<root>/rollout` message.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ..classify.postprocess import softmax
from ..config import RolloutConfig

STATES = ("queued", "building", "shadow", "promoted", "rejected", "rolled_back")
LATENCY_MIN_FRAMES = 20


def probabilities(output: np.ndarray, kind: str) -> np.ndarray:
    return softmax(output) if kind == "logits" else np.asarray(output, dtype=np.float64)


CONFIDENCE = 0.999  # a latency verdict needs the model slower with this confidence
LATENCY_PATIENCE = 5  # a slower-looking but unproven candidate is shadowed up to this x longer


@dataclass
class Comparison:
    """Two models on the same frames, timed back to back in alternating order (so a busy
    moment of the device lands on both): top-1 agreement (when both share the labels), score
    drift (mean |difference| of the first model's top-1 probability) and paired inference
    times. "current" is the model serving before; "candidate" the new one."""

    same_labels: bool
    frames: int = 0
    agreed: int = 0
    drift_sum: float = 0.0
    current_ms: list[float] = field(default_factory=list)
    candidate_ms: list[float] = field(default_factory=list)

    def add(self, current: np.ndarray, current_kind: str, current_ms: float,
            candidate: np.ndarray, candidate_kind: str, candidate_ms: float) -> None:
        self.frames += 1
        self.current_ms.append(current_ms)
        self.candidate_ms.append(candidate_ms)
        if self.same_labels:
            a, b = probabilities(current, current_kind), probabilities(candidate, candidate_kind)
            top = int(np.argmax(a))
            self.agreed += int(top == int(np.argmax(b)))
            self.drift_sum += abs(float(a[top]) - float(b[top]))

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.frames if self.same_labels and self.frames else None

    @property
    def drift(self) -> float | None:
        return self.drift_sum / self.frames if self.same_labels and self.frames else None

    @staticmethod
    def _pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 3) if values else None

    def latency(self) -> dict:
        return {"current": {"p50": self._pct(self.current_ms, 50),
                            "p95": self._pct(self.current_ms, 95)},
                "candidate": {"p50": self._pct(self.candidate_ms, 50),
                              "p95": self._pct(self.candidate_ms, 95)}}

    def slowdown(self) -> tuple[float, float] | None:
        """(median, lower bound) of candidate/current time over the pairs: the median is how
        many times slower the candidate runs on the same frame; the bound is what the pairs
        prove with `CONFIDENCE` (a sign test: order statistic k of n where fewer than k of n
        fair coin flips land heads with probability at most 1 - CONFIDENCE). A stall of the
        device slows one pair, not the median; an identical model's median is about 1."""
        n = len(self.current_ms)
        if n == 0:
            return None
        ratios = sorted(c / max(k, 1e-9) for k, c in zip(self.current_ms, self.candidate_ms))
        rank = _lower_rank(n)
        return float(np.median(ratios)), ratios[rank - 1] if rank else 0.0


@functools.lru_cache(maxsize=256)
def _lower_rank(n: int) -> int:
    """The largest k (1-based; 0: none) with P(Binomial(n, 1/2) <= k - 1) <= 1 - CONFIDENCE."""
    if n > 1000:  # the normal approximation, exact enough here (and 2**n overflows a float)
        return max(int(n / 2 - 3.0902 * math.sqrt(n) / 2), 0)
    alpha, cdf, k = 1 - CONFIDENCE, 0.0, 0
    for j in range(n + 1):
        cdf += math.comb(n, j) / 2 ** n
        if cdf > alpha:
            break
        k = j + 1
    return k


def latency_frames(cfg: RolloutConfig) -> int:
    """Frames a latency rejection is judged on: twice `min_frames`, and never fewer than 20,
    below which the pairs cannot prove a slowdown."""
    return max(2 * cfg.min_frames, LATENCY_MIN_FRAMES)


def _timing(cmp: Comparison, limit: float, than: str) -> str:
    slow = cmp.slowdown()
    lat = cmp.latency()
    return (f"inference {slow[0]:.2f}x {than} on the same frames (proven at least "
            f"{max(slow[1], 0):.2f}x; limit {limit:g}x; p95 {lat['candidate']['p95']:.2f} ms vs "
            f"{lat['current']['p95']:.2f} ms)")


def verdict(cmp: Comparison, cfg: RolloutConfig, accuracy: float | None) -> tuple[str, str] | None:
    """("promote" | "reject", reason) once `min_frames` were compared, else None. `accuracy`
    is the candidate's top-1 on `check_images` (needed when the label sets differ).

    Latency rejects only a candidate proven slower than `max_latency_ratio` on paired frames
    (over at least `latency_frames()`); one that looks slower but is not proven is shadowed
    on, up to `LATENCY_PATIENCE` times as long, and then judged by its median."""
    if cmp.frames < cfg.min_frames:
        return None
    limit = cfg.max_latency_ratio
    median, lower = cmp.slowdown()
    timing = _timing(cmp, limit, "the current model's")
    if cmp.same_labels:
        agree = cmp.agreement or 0.0
        quality = (f"top-1 agreement {agree:.1%} over {cmp.frames} frames (need "
                   f"{cfg.min_agreement:.1%}), score drift {cmp.drift:.3f}")
        if agree < cfg.min_agreement:
            return "reject", quality
    else:
        measured = "not measured" if accuracy is None else f"{accuracy:.1%}"
        quality = (f"top-1 {measured} on check_images (need {cfg.min_accuracy:.1%}); "
                   "labels differ, agreement not measured")
        if accuracy is None or accuracy < cfg.min_accuracy:
            return "reject", quality
    if median > limit:
        if cmp.frames < latency_frames(cfg):
            return None
        if lower > limit or cmp.frames >= LATENCY_PATIENCE * latency_frames(cfg):
            return "reject", f"{timing} over {cmp.frames} frames; {quality}"
        return None
    return "promote", f"{quality}; {timing}"


def watch_verdict(cmp: Comparison, cfg: RolloutConfig,
                  latency_budget_ms: float | None) -> str | None:
    """While a promotion is watched, the promoted model ("candidate") and the previous one
    ("current", still open) are timed in pairs as in shadow: the reason to roll back now, or
    None. Rolled back when proven slower than `max_latency_ratio`, or, with a latency budget,
    when its p95 is over the budget, it is proven slower than the previous model, and the
    previous model's median on the same frames is within the budget (a device too busy for
    both is the fallback's business, not the new model's fault)."""
    if cmp.frames < latency_frames(cfg):
        return None
    _, lower = cmp.slowdown()
    if lower > cfg.max_latency_ratio:
        return _timing(cmp, cfg.max_latency_ratio, "the previous model's") + " while watched"
    lat = cmp.latency()
    new95, old50 = lat["candidate"]["p95"], lat["current"]["p50"]
    # The previous model's median, not its tail, says whether it fits the budget here: a
    # stall of a busy device moves a p95 over few frames.
    if latency_budget_ms is not None and new95 > latency_budget_ms >= old50 and lower > 1.0:
        return (f"inference p95 {new95:.2f} ms over the budget of {latency_budget_ms:.2f} ms, "
                f"slower than the previous model on the same {cmp.frames} frames (its p50 "
                f"{old50:.2f} ms)")
    return None


def status_payload(rung: int, name: str, state: str, candidate: dict | None,
                   current: dict | None, cmp: Comparison | None, reason: str,
                   ts: str, queued: list[dict] | None = None) -> dict:
    """The retained `<root>/rollout` message (edgeswin/schemas/rollout.schema.json)."""
    return {
        "rung": rung, "name": name, "state": state,
        "candidate": candidate, "current": current,
        "frames": cmp.frames if cmp else 0,
        "agreement": None if cmp is None or cmp.agreement is None else round(cmp.agreement, 4),
        "score_drift": None if cmp is None or cmp.drift is None else round(cmp.drift, 4),
        "latency_ms": cmp.latency() if cmp else None,
        "reason": reason, "ts": ts, "queued": queued or []}
