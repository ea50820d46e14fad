"""Drift: a fixed camera whose night falls (a third of the light, a noisy sensor) is raised as
`drift` about half a window after it began and cleared after it ends; the outputs count too
(the `unknown` rate); the baseline is kept in the state dir across a restart of the real daemon,
unsure frames meanwhile go to hard examples, the problem's snapshot is drawn, and `edgeswin
relearn` forgets what was learned."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgeswin.config import HealthConfig
from edgeswin.config.health import DriftConfig
from edgeswin.demo import fixed_camera
from edgeswin.health.drift import Drift
from edgeswin.health.signals import Signals
from edgeswin.health.store import LearnedStore
from tests.footage import judged_video
from tests.harness import REPO, write_config

FPS = 10
DRIFT = DriftConfig(baseline_s=20, window_s=20)


def test_night_falling_on_a_fixed_camera_is_drift_and_clears_after(tmp_path):
    video = fixed_camera.make(tmp_path / "night.mp4", 110, FPS, {"dark": (45.0, 75.0)})
    cfg = HealthConfig(drift=DRIFT)
    changes = judged_video(video, cfg)
    raised = [t for t, kinds in changes if kinds == ("drift",)]
    cleared = [t for t, kinds in changes if not kinds]
    assert raised and cleared, changes
    half = DRIFT.window_s / 2  # the window's median turns once half of it is night
    assert 45 + half - 2 <= raised[0] <= 45 + half + 3, changes
    assert 75 + half + cfg.clear_after_s - 2 <= cleared[0] <= 75 + half + cfg.clear_after_s + 3
    assert len(changes) == 2, changes


def test_a_clean_fixed_camera_never_drifts(tmp_path):
    video = fixed_camera.make(tmp_path / "clean.mp4", 150, FPS, seed=9)
    assert judged_video(video, HealthConfig(drift=DRIFT)) == []


def _steady(value: float = 100.0) -> Signals:
    return Signals(value, 40.0, 500.0, np.zeros((36, 64), np.float32), (value,) * 3)


def test_answers_that_turn_unknown_are_drift_though_the_picture_is_the_same():
    drift = Drift(DriftConfig(baseline_s=10, window_s=10))
    labels = ["car", "person", "car", "truck"]
    t = 0.0
    for i in range(200):  # 20 s at 10 answers a second: the baseline
        t = i / 10
        drift.frame(t, _steady()) if i % 5 == 0 else None
        drift.answer(t, labels[i % 4], 0.9, "primary")
        assert drift.check(t) == (False, "")
    assert drift.baseline is not None and drift.baseline.unknown == 0
    assert drift.baseline.labels == pytest.approx({"car": 0.5, "person": 0.25, "truck": 0.25},
                                                  abs=0.01)
    for i in range(200, 400):
        t = i / 10
        drift.frame(t, _steady()) if i % 5 == 0 else None
        drift.answer(t, "unknown" if i % 2 else "car", 0.3 if i % 2 else 0.9, "primary")
    drifting, why = drift.check(t)
    assert drifting and "unknown 50% of answers" in why, why
    assert "brightness" not in why  # the picture did not change
    # Another engine's answers (a smaller rung) are not the scene's doing.
    other = Drift(DriftConfig(baseline_s=10, window_s=10), drift.baseline)
    for i in range(200):
        other.frame(i / 10, _steady()) if i % 5 == 0 else None
        other.answer(i / 10, "unknown", 0.1, "small")
    assert other.check(19.9) == (False, "")


def test_what_was_learned_is_kept_and_a_changed_source_learns_afresh(tmp_path):
    store = LearnedStore(tmp_path)
    drift = Drift(DriftConfig(baseline_s=1, window_s=10))
    for i in range(30):
        drift.frame(i / 10, _steady(100 + i % 3))
        drift.answer(i / 10, "car", 0.8, "primary")
        drift.check(i / 10)
    store.save("door", "rtsp://user:secret@cam/1", None, drift.baseline)
    kept = (tmp_path / "health" / "door.json").read_text()
    assert "secret" not in kept and "cam/1" not in kept  # a digest of the source only
    assert store.load("door", "rtsp://user:secret@cam/1")[1] == drift.baseline
    assert store.load("door", "rtsp://user:secret@cam/2") == (None, None)
    (tmp_path / "health" / "door.json").write_text('{"source": 1, "drift": [')
    assert store.load("door", "rtsp://user:secret@cam/1") == (None, None)  # said, not raised


@pytest.mark.mqtt
def test_the_baseline_outlives_a_restart_and_drift_keeps_unsure_frames(
        tmp_path, broker, subscriber, daemon_factory):
    """Day: the baseline is learned and kept. The same camera (the same file) shows night from
    its fifth second after a restart: a baseline learned afresh would call night normal."""
    video = tmp_path / "door.mp4"
    fixed_camera.make(video, 40, FPS, seed=5)
    health = {"drift": {"baseline_s": 20, "window_s": 20}}
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "door": {"source": str(video), "fps": 0, "realtime": False}},
        {"health": health, "hard_examples": {"below_score": 1.0, "min_interval_s": 0}})
    first = daemon_factory(cfg)
    assert first.proc.wait(120) == 0, first.log()
    kept = json.loads((cfg / "state" / "health" / "door.json").read_text())
    assert kept["drift"]["frames"] >= 30 and kept["normal"]["reference"], kept.keys()
    assert not list((cfg / "state" / "hard").rglob("*.jpg")), "no drift, hard examples off"

    fixed_camera.make(video, 40, FPS, {"dark": (5.0, 40.0)}, seed=5)
    second = daemon_factory(cfg)
    assert second.proc.wait(120) == 0, second.log()
    topic = "edgeswin/testdev/door/health"
    drifts = [m for m in subscriber.json_on(topic)
              if [p["kind"] for p in m["problems"]] == ["drift"]]
    assert drifts, subscriber.json_on(topic)
    # After the night began, within half a window (the window is empty after the restart).
    assert 5 <= drifts[0]["frame_index"] / FPS <= 5 + 10 + 3, drifts[0]
    assert "brightness" in drifts[0]["problems"][0]["detail"]
    picture = subscriber.on(f"{topic}/snapshot")
    assert picture, "a snapshot of the problem"
    image = cv2.imdecode(np.frombuffer(picture[-1], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image[2, image.shape[1] // 2, 2] > 150  # the red frame
    sidecars = [json.loads(p.read_text()) for p in (cfg / "state" / "hard").rglob("*.json")]
    assert sidecars and all("while the camera drifts" in s["why"] for s in sidecars), sidecars


@pytest.mark.mqtt
def test_relearn_asks_the_running_daemon_to_forget(tmp_path, broker, subscriber,
                                                   daemon_factory):
    video = fixed_camera.make(tmp_path / "door.mp4", 20, FPS, seed=5)
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "door": {"source": str(video), "fps": 5, "loop": True}},
        {"health": {"learn_s": 2}})
    daemon = daemon_factory(cfg)
    kept = cfg / "state" / "health" / "door.json"
    assert subscriber.wait_for(lambda: kept.exists(), 60), daemon.log()

    def relearn(*cameras: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edgeswin", "relearn", "-c", str(cfg),
                               *cameras], capture_output=True, text=True, cwd=REPO, timeout=60)

    wrong = relearn("gate")
    assert wrong.returncode == 1 and "no such camera: gate (running: door)" in wrong.stderr
    before = kept.stat().st_mtime_ns
    done = relearn("door")
    assert done.returncode == 0 and "learning afresh: door" in done.stdout, done
    assert "health: learning afresh for door (asked)" in daemon.log()
    # Forgotten, then learned again from the frames after the request (learn_s later).
    assert subscriber.wait_for(lambda: kept.exists() and kept.stat().st_mtime_ns > before, 30)
    assert daemon.terminate()[0] == 0


def _busy_scene(drift: Drift, start: float, seconds: float, rng: random.Random,
                labels=("person", "car", "bicycle", "empty")) -> list[float]:
    """Objects come and go: each answer held for 2-5 s, drawn from a fixed mix, 10 answers and
    two judged frames a second. Returns the clock times at which `drift` was raised."""
    raised, t, was = [], start, False
    while t < start + seconds:
        label, until = rng.choice(labels), t + rng.uniform(2.0, 5.0)
        while t < until:
            if round(t * 10) % 5 == 0:
                drift.frame(t, _steady())
            drift.answer(t, label, rng.uniform(0.6, 0.95), "primary")
            now, _ = drift.check(t)
            if now and not was:
                raised.append(t)
            was, t = now, t + 0.1
    return raised


@pytest.mark.parametrize("baseline_s, window_s", [(30, 20), (30, 5), (600, 120)])
def test_a_busy_clean_scene_never_drifts_on_chance(baseline_s, window_s):
    """A window holds a few independent events, not as many as answers: chance alone moved the
    label mix 0.5 apart on 20 s windows of such a scene (four alarms in three minutes)."""
    drift = Drift(DriftConfig(baseline_s=baseline_s, window_s=window_s))
    rng = random.Random(7)
    assert _busy_scene(drift, 0.0, baseline_s + 1, rng) == []
    assert drift.baseline is not None and 2.0 < drift.baseline.persist_s < 10.0, drift.baseline
    assert _busy_scene(drift, baseline_s + 1, 3 * 3600, rng) == []


def test_a_scene_that_changes_for_good_still_drifts_on_its_labels():
    drift = Drift(DriftConfig())  # the defaults: 600 s and 120 s
    rng = random.Random(11)
    _busy_scene(drift, 0.0, 700, rng)
    # The same camera now sees trucks and nothing else: a new label, for good.
    raised = _busy_scene(drift, 700, 300, rng, labels=("truck",))
    assert raised and raised[0] - 700 <= drift.cfg.window_s, raised
    assert "label mix" in drift.check(1000.0)[1]
