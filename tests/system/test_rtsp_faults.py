"""Real camera faults over RTSP: the gst-rtsp-server camera (tests/rtsp_server.py) serving real
footage (tests/footage.py), a relay between it and the daemon (tests/relay.py) that stalls the
link or drops and delays packets, and the daemon's own GStreamer decoder. Each test prints
its time to detection (-s) and asserts it within a bound a user would accept."""

from __future__ import annotations

import json
import time

import pytest

from tests.footage import clip, encode, frames_of, tampered
from tests.harness import TIME_SCALE, write_config
from tests.relay import Relay
from tests.rtsp_server import RtspCamera, available
from tests.streams import free_port

pytestmark = [pytest.mark.mqtt,
              pytest.mark.skipif(available() is not None, reason=str(available()))]
ROOT = "edgeswin/testdev"
FPS = 10


@pytest.fixture(scope="module")
def carphone_60s(tmp_path_factory):
    """A fixed in-car camera, real footage, 60 s at 10 fps in H.264 (CRF 23)."""
    frames = frames_of(clip("carphone_pristine"), (352, 288))
    return encode(tampered(frames, FPS, 60, {}), FPS, tmp_path_factory.mktemp("rtsp") /
                  "carphone.mp4", "h264-crf23")


def _camera(tmp_path, broker, url: str, **extra):
    return write_config(tmp_path / "cfg", broker.port, {"gate": {
        "source": url, "fps": 5, "decoder": "gstreamer", "read_timeout_s": 2,
        "reconnect": {"initial_s": 0.2, "max_s": 1}, **extra}})


def _health(subscriber) -> list[tuple[float, dict]]:
    return [(at, json.loads(p)) for (t, p, _), at in zip(subscriber.messages,
                                                         subscriber.arrivals)
            if t == f"{ROOT}/gate/health" and p]


@pytest.mark.parametrize("encoder", ["h264-crf23", "h264-crf18"])
def test_a_picture_that_freezes_while_the_encoder_keeps_sending_is_frozen(
        tmp_path, broker, subscriber, daemon_factory, encoder):
    """The sensor hangs at 10 s; the encoder goes on sending that picture for 30 s, key
    frames included (every 3 s at CRF 23, every 1.5 s at CRF 18)."""
    frames = frames_of(clip("bikes"))
    video = encode(tampered(frames, FPS, 40, {"frozen": (10.0, 40.0)}), FPS,
                   tmp_path / "frozen.mp4", encoder)
    port = free_port()
    with RtspCamera(video, port):
        daemon = daemon_factory(_camera(tmp_path, broker, f"rtsp://127.0.0.1:{port}/cam"))
        assert subscriber.wait_for(lambda: any(
            "frozen" in [p["kind"] for p in h["problems"]] for _, h in _health(subscriber)),
            60), daemon.log()[-3000:]
    raised = next(h for _, h in _health(subscriber)
                  if "frozen" in [p["kind"] for p in h["problems"]])
    video_s = raised["frame_index"] / FPS  # the stream's frames since it was opened
    print(f"{encoder}: frozen raised at {video_s:.1f} s of the stream (froze at 10 s, "
          f"frozen_after_s 5)")
    assert 10 + 5 <= video_s <= 10 + 5 + 4, raised
    assert not [h for _, h in _health(subscriber) if {"covered", "blurred"} &
                {p["kind"] for p in h["problems"]}]


def test_a_camera_that_keeps_the_session_but_stops_sending_goes_offline_and_back(
        tmp_path, broker, subscriber, daemon_factory, carphone_60s):
    port = free_port()
    with RtspCamera(carphone_60s, port):
        relay = Relay(port)
        cfg = _camera(tmp_path, broker, f"rtsp://127.0.0.1:{relay.port}/cam", stall_s=3)
        daemon = daemon_factory(cfg)
        availability = f"{ROOT}/gate/availability"
        topic = f"{ROOT}/gate/classification"
        assert subscriber.wait_for(lambda: len(subscriber.on(topic)) >= 5, 40), daemon.log()
        relay.set("stall")
        stalled = time.monotonic()
        assert subscriber.wait_for(lambda: subscriber.on(availability)[-1:] == [b"offline"],
                                   20), daemon.log()[-3000:]
        offline_s = subscriber.arrivals[-1] - stalled
        offline_at = time.monotonic()
        time.sleep(3)
        relay.set("pass")
        resumed = time.monotonic()
        assert subscriber.wait_for(lambda: subscriber.on(availability)[-1:] == [b"online"],
                                   30), daemon.log()[-3000:]
        online_s = time.monotonic() - resumed
        print(f"stall: offline {offline_s:.1f} s after the camera stopped sending "
              f"(stall_s 3), online {online_s:.1f} s after it sent again")
        assert offline_s <= 3 + 5 * TIME_SCALE and offline_at > stalled
        assert online_s <= 10 * TIME_SCALE
        assert daemon.terminate()[0] == 0
        relay.close()
    assert "stall" in daemon.log() or "no frame" in daemon.log()


@pytest.mark.parametrize("drop, jitter_s", [(0.01, 0.05), (0.03, 0.1)])
def test_packet_loss_and_jitter_raise_no_false_health_problem(
        tmp_path, broker, subscriber, daemon_factory, carphone_60s, drop, jitter_s):
    port = free_port()
    with RtspCamera(carphone_60s, port):
        relay = Relay(port, seed=int(drop * 1000))
        relay.set("lossy", drop=drop, jitter_s=jitter_s)
        cfg = _camera(tmp_path, broker, f"rtsp://127.0.0.1:{relay.port}/cam")
        daemon = daemon_factory(cfg)
        topic = f"{ROOT}/gate/classification"
        # Until the file ends (60 s), judged all the way.
        assert subscriber.wait_for(
            lambda: subscriber.on(f"{ROOT}/gate/availability")[-1:] == [b"offline"] and
            len(subscriber.on(topic)) > 50, 90), daemon.log()[-3000:]
        stats = subscriber.json_on(f"{ROOT}/stats")
        reconnects = max((s["cameras"]["gate"]["reconnects"] for s in stats), default=0)
        problems = [h for _, h in _health(subscriber) if h["problems"]]
        print(f"loss {drop:.0%}, jitter up to {jitter_s * 1000:.0f} ms: "
              f"{relay.dropped} of {relay.dropped + relay.forwarded} packets dropped, "
              f"{len(subscriber.on(topic))} classifications, {reconnects} reconnects, "
              f"health problems: {problems}")
        assert relay.dropped > 0
        assert problems == [], problems
        relay.close()


def test_a_camera_that_restarts_is_back_online(tmp_path, broker, subscriber, daemon_factory,
                                               carphone_60s):
    port = free_port()
    camera = RtspCamera(carphone_60s, port).start()
    try:
        daemon = daemon_factory(_camera(tmp_path, broker, f"rtsp://127.0.0.1:{port}/cam"))
        availability = f"{ROOT}/gate/availability"
        assert subscriber.wait_for(lambda: subscriber.on(availability)[-1:] == [b"online"], 40)
        camera.kill()
        killed = time.monotonic()
        assert subscriber.wait_for(lambda: subscriber.on(availability)[-1:] == [b"offline"], 20)
        offline_s = time.monotonic() - killed
        camera = RtspCamera(carphone_60s, port).start()
        restarted = time.monotonic()
        assert subscriber.wait_for(lambda: subscriber.on(availability)[-1:] == [b"online"], 30), \
            daemon.log()[-3000:]
        online_s = time.monotonic() - restarted
        print(f"restart: offline {offline_s:.1f} s after the camera died, online "
              f"{online_s:.1f} s after it was back")
        assert online_s <= 10 * TIME_SCALE
        assert daemon.terminate()[0] == 0
    finally:
        camera.kill()

