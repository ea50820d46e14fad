"""The rollout gate: a candidate model compared with the current one on the same live frames,
and the verdicts (promote, reject, roll back). Pure: numbers in, decisions out; no engines,
threads or MQTT, so every rule is tested with made-up outputs and a fake clock.

Hands `model_rollout` a `Comparison` to feed and `verdict()` / `watch_verdict()` answers, and
`status_payload()` for the retained `<root>/rollout` message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import RolloutConfig
from .postprocess import softmax

STATES = ("building", "shadow", "promoted", "rejected", "rolled_back")
LATENCY_MIN_FRAMES = 20


def probabilities(output: np.ndarray, kind: str) -> np.ndarray:
    return softmax(output) if kind == "logits" else np.asarray(output, dtype=np.float64)


@dataclass
class Comparison:
    """Current and candidate on the same frames: top-1 agreement (when both share the labels),
    score drift (mean |difference| of the current top-1's probability) and each one's
    inference times on this device."""

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


def latency_frames(cfg: RolloutConfig) -> int:
    """Frames a latency rejection is judged on: twice `min_frames`, and never fewer than 20,
    below which a p95 is mostly the slowest single sample."""
    return max(2 * cfg.min_frames, LATENCY_MIN_FRAMES)


def verdict(cmp: Comparison, cfg: RolloutConfig, accuracy: float | None) -> tuple[str, str] | None:
    """("promote" | "reject", reason) once `min_frames` were compared, else None. `accuracy`
    is the candidate's top-1 on `check_images` (needed when the label sets differ).

    A candidate that fails on latency alone is shadowed on until `latency_frames()` and
    judged again on all its frames: one stall of a busy device (another process, a page-in)
    lands on one model's sample and, over few frames, would decide the p95 by itself."""
    if cmp.frames < cfg.min_frames:
        return None
    lat = cmp.latency()
    cur95, cand95 = lat["current"]["p95"], lat["candidate"]["p95"]
    ratio = cand95 / cur95 if cur95 else float("inf")
    timing = (f"inference p95 {cand95:.2f} ms vs {cur95:.2f} ms ({ratio:.2f}x, limit "
              f"{cfg.max_latency_ratio:g}x)")
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
    if ratio > cfg.max_latency_ratio:
        if cmp.frames < latency_frames(cfg):
            return None
        return "reject", f"{timing} over {cmp.frames} frames; {quality}"
    return "promote", f"{quality}; {timing}"


def watch_budget_ms(cfg: RolloutConfig, latency_budget_ms: float | None,
                    cmp: Comparison) -> float | None:
    """The promoted rung's inference p95 that rolls it back while watched: the fallback's
    latency budget when set, else `max_latency_ratio` x the old model's p95 in shadow."""
    if latency_budget_ms is not None:
        return latency_budget_ms
    old95 = cmp.latency()["current"]["p95"]
    return cfg.max_latency_ratio * old95 if old95 else None


def watch_verdict(p95_ms: float | None, budget_ms: float | None) -> str | None:
    """The reason to roll back now, or None."""
    if p95_ms is not None and budget_ms is not None and p95_ms > budget_ms:
        return f"inference p95 {p95_ms:.2f} ms over the budget of {budget_ms:.2f} ms"
    return None


def status_payload(rung: int, name: str, state: str, candidate: dict | None,
                   current: dict | None, cmp: Comparison | None, reason: str,
                   ts: str) -> dict:
    """The retained `<root>/rollout` message (edgeswin/schemas/rollout.schema.json)."""
    return {
        "rung": rung, "name": name, "state": state,
        "candidate": candidate, "current": current,
        "frames": cmp.frames if cmp else 0,
        "agreement": None if cmp is None or cmp.agreement is None else round(cmp.agreement, 4),
        "score_drift": None if cmp is None or cmp.drift is None else round(cmp.drift, 4),
        "latency_ms": cmp.latency() if cmp else None,
        "reason": reason, "ts": ts}
