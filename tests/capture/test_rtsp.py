"""rtsp:// cameras decoded through GStreamer (decoder: auto) against a real RTSP server
(gst-rtsp-server on loopback, H.264 over RTP): a frame scaled before Python sees it, FFmpeg when
forced, credentials with awkward characters, and a camera that vanishes and comes back. A
decoder that never returns from opening costs one attempt, not the camera or the daemon."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from edgeswin.capture.camera import open_capture
from edgeswin.capture.gst_pipeline import decode_width, flavour, quote, rtsp_pipeline
from edgeswin.capture.stream_open import MAX_STUCK, unreachable
from edgeswin.config import CameraConfig, load_config, opencv_has_gstreamer, parse_source
from edgeswin.demo.assets import read_ground_truth
from edgeswin.errors import ConfigError
from tests.harness import write_config
from tests.rtsp_server import RtspCamera, available, h264_copy
from tests.streams import free_port

ROOT = "edgeswin/testdev"
needs_rtsp = pytest.mark.skipif(available() is not None or not opencv_has_gstreamer()
                                or flavour() is None,
                                reason=f"{available() or 'GStreamer decoding unavailable'}")


@pytest.fixture(scope="module")
def stream_720p(videos, tmp_path_factory) -> Path:
    """The north demo video as a 1280x720 H.264 file, 4 times over (32 s)."""
    return h264_copy(videos["north"], tmp_path_factory.mktemp("rtsp") / "north-720p.mp4",
                     1280, 720, loops=4)


def test_the_pipeline_quotes_what_a_url_or_password_holds():
    pipeline = rtsp_pipeline('rtsp://h/a ! b"d', 640, "software", 5.0, "view er", 'p" ! w\\')
    source = pipeline.split(" ! decodebin ! ")[0]
    assert source.startswith('rtspsrc location="rtsp://h/a ! b\\"d" ')
    assert source.endswith(' user-id="view er" user-pw="p\\" ! w\\\\"')
    assert quote("plain") == '"plain"'
    assert "videoconvertscale ! video/x-raw,format=BGR,width=[1,640]" in pipeline or \
        "videoscale ! video/x-raw,width=[1,640],pixel-aspect-ratio=1/1 ! videoconvert" in pipeline
    jetson = rtsp_pipeline("rtsp://h/x", 960, "jetson", 5.0)
    assert "decodebin ! nvvidconv ! video/x-raw,format=BGRx,width=[1,960]" in jetson


def test_decode_width_covers_regions_and_snapshots():
    assert decode_width(112, 112, [], 640) == 640
    assert decode_width(112, 112, [], 1280) == 1280
    # A region a tenth of the frame wide needs 1120 px of frame for 112 px of crop.
    assert decode_width(112, 112, [[0.0, 0.0, 0.1, 0.5]], 640) == 1120
    assert decode_width(224, 224, [[0.0, 0.0, 0.01, 0.01]], 640) == 7680  # capped at 8K


@needs_rtsp
def test_gstreamer_hands_python_a_scaled_frame_and_ffmpeg_the_full_one(stream_720p, monkeypatch):
    monkeypatch.setenv("CAM_PW", 'p@ss w"ord!')
    with RtspCamera(stream_720p, free_port(), "viewer", 'p@ss w"ord!') as cam:
        source = parse_source(cam.url, Path("."))
        shapes = {}
        for decoder, width in (("auto", 640), ("gstreamer", 960), ("gstreamer", 4000),
                               ("ffmpeg", 640)):
            cfg = CameraConfig(name="c", source=cam.url, decoder=decoder,
                               credentials={"username": "viewer", "password_env": "CAM_PW"})
            cap, how = open_capture(source, cfg, width)
            ok, image = cap.read()
            cap.release()
            assert ok, (decoder, how)
            shapes[(decoder, width)] = (image.shape, how.split()[0])
    # Off a Jetson, auto keeps FFmpeg (software GStreamer costs as much CPU, measured).
    assert shapes == {("auto", 640): ((720, 1280, 3), "FFmpeg"),
                      ("gstreamer", 960): ((540, 960, 3), "GStreamer"),
                      ("gstreamer", 4000): ((720, 1280, 3), "GStreamer"),  # never scaled up
                      ("ffmpeg", 640): ((720, 1280, 3), "FFmpeg")}


def test_decoder_gstreamer_is_for_rtsp_sources_only(tmp_path):
    cfg = write_config(tmp_path / "cfg", 1883, {"cam": {"source": "http://h/video.mjpg",
                                                        "decoder": "gstreamer"}})
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = "\n".join(str(i) for i in err.value.issues)
    assert "cam.yaml" in text and "decoder: gstreamer is for rtsp:// sources" in text


@pytest.mark.mqtt
@needs_rtsp
def test_a_gstreamer_camera_classifies_and_comes_back_after_the_server_dies(
        tmp_path, broker, subscriber, videos, stream_720p, daemon_factory):
    port = free_port()
    server = RtspCamera(stream_720p, port).start()
    try:
        cfg = write_config(tmp_path / "cfg", broker.port, {
            "gate": {"source": f"rtsp://127.0.0.1:{port}/cam", "fps": 5, "read_timeout_s": 2,
                     "decoder": "gstreamer",
                     "reconnect": {"initial_s": 0.2, "max_s": 1}}})
        daemon = daemon_factory(cfg)
        topic = f"{ROOT}/gate/classification"
        assert subscriber.wait_for(lambda: len(subscriber.on(topic)) >= 8, 40), daemon.log()
        server.kill()  # the camera vanishes
        assert subscriber.wait_for(
            lambda: subscriber.on(f"{ROOT}/gate/availability")[-1] == b"offline", 20), \
            daemon.log()
        before = len(subscriber.on(topic))
        time.sleep(1)
        server = RtspCamera(stream_720p, port).start()  # and comes back
        assert subscriber.wait_for(lambda: len(subscriber.on(topic)) >= before + 8, 40), \
            daemon.log()
        assert subscriber.on(f"{ROOT}/gate/availability")[-1] == b"online"
        code, _ = daemon.terminate(timeout=10)
        assert code == 0
    finally:
        server.kill()
    log = daemon.log()
    assert "camera gate: decoding with GStreamer (software decode, scaled to at most 640 px " \
           "wide)" in log
    msgs = subscriber.json_on(topic)
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
    # The frame index restarts with each connection; the labels are judged on the first one,
    # where it matches the file's frames. Scaled frames classify as well as full ones.
    truth = read_ground_truth(videos["north"])
    first = []
    for m in msgs:
        if first and m["frame_index"] < first[-1]["frame_index"]:
            break
        first.append(m)
    scored = [m for m in first if all(t == truth[m["frame_index"] % len(truth)]
                                      for t in truth[max(0, m["frame_index"] % len(truth) - 3):
                                                     m["frame_index"] % len(truth) + 4])]
    assert scored
    agree = sum(m["label"] == truth[m["frame_index"] % len(truth)] for m in scored) / len(scored)
    assert agree >= 0.9, f"{agree:.0%} on {len(scored)} frames"


def test_an_unreachable_rtsp_camera_is_named_before_any_decoder_starts():
    dead = free_port()
    why = unreachable(f"rtsp://viewer:secret@127.0.0.1:{dead}/cam", 2.0)
    assert why is not None and f"127.0.0.1:{dead} takes no connection" in why
    assert "secret" not in why
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert unreachable(f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam", 2.0) is None
    assert unreachable("http://127.0.0.1:1/mjpeg", 2.0) is None  # FFmpeg times out itself


@pytest.mark.skipif(not opencv_has_gstreamer(), reason="this OpenCV has no GStreamer")
def test_a_decoder_that_never_returns_from_opening_is_left_behind(
        tmp_path, broker, subscriber, videos, daemon_factory):
    # A TCP server that accepts and never sends: GStreamer waits for a first buffer without
    # limit, so OpenCV's open never returns; the same wait that a failing rtspsrc can cause.
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "silent": {"source": f"gst:tcpclientsrc host=127.0.0.1 port={port} ! jpegdec ! "
                             "videoconvert ! appsink", "open_timeout_s": 0.5,
                   "reconnect": {"initial_s": 0.2, "max_s": 0.5}},
        "north": {"source": str(videos["north"]), "loop": True, "fps": 5}})
    daemon = daemon_factory(cfg)
    try:
        assert subscriber.wait_for(
            lambda: "no new one starts until one does" in daemon.log(), 60), daemon.log()
        log = daemon.log()
        assert log.count("did not return from opening") == MAX_STUCK
        assert len(held) == MAX_STUCK, "no open starts while the stuck ones hold"
        availability = subscriber.on(f"{ROOT}/silent/availability")
        assert availability and availability[-1] == b"offline"
        before = len(subscriber.on(f"{ROOT}/north/classification"))
        assert subscriber.wait_for(
            lambda: len(subscriber.on(f"{ROOT}/north/classification")) >= before + 5, 20), \
            "the other camera goes on"
        server.close()  # the stuck opens fail now, and new ones are refused at once
        for conn in held:
            conn.close()
        assert subscriber.wait_for(
            lambda: daemon.log().count("an abandoned open returned after") == MAX_STUCK, 30), \
            daemon.log()
        assert subscriber.wait_for(lambda: "camera silent: cannot open" in daemon.log(), 30), \
            daemon.log()
        code, _ = daemon.terminate(timeout=10)
        assert code == 0
    finally:
        server.close()
        for conn in held:
            conn.close()
