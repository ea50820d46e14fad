"""Camera health: a fixed camera's video with a covered, a frozen, a blurred and a turned
interval (edgeswin/demo/fixed_camera.py) goes through the real daemon, a real broker and the
demo model; each problem is raised with the right kind within its hold time plus a few seconds of
video, and cleared after; a clean video of the same camera raises nothing."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from edgeswin.config import HealthConfig
from edgeswin.demo import fixed_camera
from edgeswin.demo.assets import VideoSpec, make_video
from tests.footage import EVENTS, FPS, SECONDS, check_events, judged_video
from tests.harness import REPO, Subscriber, write_config


@pytest.fixture(scope="module")
def tampered(tmp_path_factory) -> Path:
    return fixed_camera.make(tmp_path_factory.mktemp("health") / "tampered.mp4", SECONDS, FPS,
                             EVENTS)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return fixed_camera.make(tmp_path_factory.mktemp("health") / "clean.mp4", 120.0, FPS,
                             seed=9)


def test_each_problem_is_raised_after_its_hold_time_and_cleared_after(tampered):
    cfg = HealthConfig()
    check_events(judged_video(tampered, cfg), cfg)


def test_a_clean_fixed_camera_raises_nothing(clean):
    assert judged_video(clean, HealthConfig()) == []


def test_a_view_that_changes_as_a_whole_is_never_called_blurred_or_moved(tmp_path):
    """The demo's cameras cut between rendered scenes every few seconds: there is no view of
    their own to lose (the lobby camera's 21st second is a soft scene that read as blurred)."""
    video = tmp_path / "lobby.mp4"
    make_video(video, VideoSpec(seconds=30, seed=11))
    changes = judged_video(video, HealthConfig())
    assert not [c for c in changes if {"blurred", "moved"} & set(c[1])], changes


@pytest.mark.mqtt
def test_the_daemon_publishes_each_change_on_the_retained_health_topic(
        tmp_path, broker, subscriber, tampered, daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "door": {"source": str(tampered), "fps": 0, "realtime": False}},
        {"health": {"covered_after_s": 2}})  # a device setting, seen in the timing below
    (cfg / "cameras" / "quiet.yaml").write_text(json.dumps(
        {"source": str(tampered), "fps": 0, "realtime": False, "health": {"enabled": False}}))
    daemon = daemon_factory(cfg)
    topic = "edgeswin/testdev/door/health"
    assert daemon.proc.wait(180) == 0, daemon.log()
    messages = subscriber.json_on(topic)
    assert messages and messages[0]["ok"] and messages[0]["problems"] == [], messages[:2]
    changes = [(m["frame_index"] / FPS, tuple(p["kind"] for p in m["problems"]))
               for m in messages[1:]]
    check_events(changes, HealthConfig(covered_after_s=2))
    schema = json.loads((REPO / "edgeswin" / "schemas" /
                         "health.schema.json").read_text())
    for m in messages:
        jsonschema.validate(m, schema)
        assert m["camera"] == "door" and m["ok"] == (not m["problems"])
        for p in m["problems"]:
            assert p["since"].endswith("+00:00") and p["detail"]
    assert not subscriber.on("edgeswin/testdev/quiet/health"), "health off for that camera"
    late = Subscriber(broker.port, topic)  # retained: the last word stays
    assert late.wait_for(lambda: late.on(topic), 10)
    assert json.loads(late.on(topic)[-1]) == messages[-1]
    late.close()
