"""A rollout's gate and what a reload applies, alone, with made-up numbers: the candidate is
judged on enough frames by agreement and paired latency, stalls on either side decide nothing,
a promoted model is watched against the previous one, and a reload names the device settings
that wait for a restart."""

from __future__ import annotations

import numpy as np
import pytest

from edgeswin.config import DeviceConfig, RolloutConfig
from edgeswin.process.reload import device_changes
from edgeswin.rollout.gate import Comparison, verdict, watch_verdict
from tests.harness import PRIMARY


def _compared(frames: int, agree: int, current_ms: float, candidate_ms: float,
              same_labels: bool = True) -> Comparison:
    cmp = Comparison(same_labels)
    for i in range(frames):
        a = np.array([3.0, 1.0, 0.0])
        b = a if i < agree else np.array([0.0, 1.0, 3.0])
        cmp.add(a, "logits", current_ms, b, "logits", candidate_ms)
    return cmp


def test_the_gate_waits_for_min_frames_then_weighs_agreement_and_latency():
    cfg = RolloutConfig(min_frames=20, min_agreement=0.9, max_latency_ratio=1.5)
    assert verdict(_compared(19, 19, 10, 10), cfg, None) is None
    decision, reason = verdict(_compared(20, 20, 10, 14), cfg, None)
    assert decision == "promote" and "agreement 100.0%" in reason and "1.40x" in reason
    decision, reason = verdict(_compared(20, 17, 10, 10), cfg, None)
    assert decision == "reject" and "85.0%" in reason
    # Slow on latency alone: shadowed on to twice min_frames, then rejected on all of them.
    assert verdict(_compared(20, 20, 10, 16), cfg, None) is None
    assert verdict(_compared(39, 39, 10, 16), cfg, None) is None
    decision, reason = verdict(_compared(40, 40, 10, 16), cfg, None)
    assert decision == "reject" and "1.60x" in reason and "limit 1.5x" in reason
    assert "over 40 frames" in reason
    # Other labels: agreement means nothing; the check images decide, with latency.
    other = _compared(20, 0, 10, 10, same_labels=False)
    assert other.agreement is None
    assert verdict(other, cfg.model_copy(update={"min_accuracy": 0.8}), 0.85)[0] == "promote"
    assert verdict(other, cfg.model_copy(update={"min_accuracy": 0.8}), 0.5)[0] == "reject"
    assert verdict(other, cfg, None)[0] == "reject"


def test_one_stall_does_not_reject_a_candidate_as_fast_as_the_current_model():
    # 10 frames: the one slow sample is the candidate's p95, yet its median pair is 1.0x.
    cfg = RolloutConfig(min_frames=10, max_latency_ratio=1.5)
    cmp = Comparison(True)
    logits = np.array([3.0, 1.0, 0.0])
    for i in range(10):
        cmp.add(logits, "logits", 30.0 + i % 3, logits, "logits", 100.0 if i == 0 else 31.0)
    decision, reason = verdict(cmp, cfg, None)
    assert decision == "promote" and "1.00x" in reason, reason
    # Two min_frames windows never go below 20 frames, so a tiny min_frames is no shortcut.
    tiny = RolloutConfig(min_frames=3, max_latency_ratio=1.5)
    slow = _compared(19, 19, 10, 20)
    assert verdict(slow, tiny, None) is None
    assert verdict(_compared(20, 20, 10, 20), tiny, None)[0] == "reject"


def test_score_drift_is_the_change_in_the_current_top1_probability():
    cmp = Comparison(True)
    cmp.add(np.array([0.7, 0.3]), "probabilities", 1, np.array([0.6, 0.4]), "probabilities", 1)
    cmp.add(np.array([0.2, 0.8]), "probabilities", 1, np.array([0.2, 0.8]), "probabilities", 1)
    assert cmp.agreement == 1.0 and cmp.drift == pytest.approx(0.05)


def test_while_watched_the_promoted_model_is_judged_against_the_previous_one_on_the_same_frames():
    cfg = RolloutConfig(min_frames=10, max_latency_ratio=2.0)
    assert watch_verdict(_compared(19, 19, 10, 30), cfg, None) is None, "too few pairs yet"
    assert "3.00x the previous model's" in watch_verdict(_compared(20, 20, 10, 30), cfg, None)
    assert watch_verdict(_compared(20, 20, 10, 19), cfg, None) is None
    # A budget rolls back only a model over it while the previous one meets it on the same
    # frames: a device too busy for both is not the new model's fault.
    over = watch_verdict(_compared(20, 20, 10, 12), cfg, 11.0)
    assert over.startswith("inference p95 12.00 ms over the budget of 11.00 ms")
    assert watch_verdict(_compared(20, 20, 12, 13), cfg, 11.0) is None


def test_the_gate_reads_paired_times_so_stalls_on_either_side_do_not_decide():
    # Identical models on a device that stalls often: each stall lands on one model's half of
    # a pair. The p95 of one side can be twice the other's; the median pair is about 1.
    rng = np.random.default_rng(7)
    cfg = RolloutConfig(min_frames=50, max_latency_ratio=1.5)
    logits = np.array([3.0, 1.0, 0.0])
    for trial in range(200):
        cmp = Comparison(True)
        for _ in range(100):
            base = 8.0 * rng.uniform(0.9, 1.1)
            a = base * (rng.uniform(2, 3) if rng.random() < 0.1 else 1)
            b = base * (rng.uniform(2, 3) if rng.random() < 0.1 else 1)
            cmp.add(logits, "logits", a, logits, "logits", b)
            decided = verdict(cmp, cfg, None)
            if decided:
                break
        assert decided[0] == "promote", (trial, decided)
    # A model really 1.7x slower with the same stalls is proven so.
    cmp = Comparison(True)
    for _ in range(100):
        base = 8.0 * rng.uniform(0.9, 1.1)
        cmp.add(logits, "logits", base * (3 if rng.random() < 0.1 else 1),
                logits, "logits", 1.7 * base * (3 if rng.random() < 0.1 else 1))
    decision, reason = verdict(cmp, cfg, None)
    assert decision == "reject" and "limit 1.5x" in reason


def test_a_reload_says_which_device_settings_wait_for_a_restart():
    base = DeviceConfig(device_id="d", engines=[{"name": "a", "model": str(PRIMARY)},
                                                {"name": "b", "model": str(PRIMARY)}])
    same_but_model = base.model_copy(update={"engines": [
        base.engines[0].model_copy(update={"model": str(PRIMARY.with_name("x.onnx"))}),
        base.engines[1]]})
    assert device_changes(base, same_but_model) == ([], [0, 1])
    other = base.model_copy(update={
        "mqtt": base.mqtt.model_copy(update={"port": 1884}),
        "rollout": RolloutConfig(min_frames=3),
        "engines": [base.engines[0].model_copy(update={"precision": "int8"}), base.engines[1]]})
    assert device_changes(base, other) == (["mqtt.port", "engines[0].precision"], [1])
    fewer = base.model_copy(update={"engines": base.engines[:1]})
    assert device_changes(base, fewer) == (["engines (rungs added or removed)"], [])


# --- a real daemon -----------------------------------------------------------------------
