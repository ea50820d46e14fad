"""Failures that must never pass silently: a worker thread that dies stops the daemon with
exit 1 (so systemd restarts it), a gst: camera that this OpenCV cannot open is refused by
`check` instead of ending at once and exiting 0, and a decoder's read that never returns
does not keep its camera away for good."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from edgeswin import config as config_module
from edgeswin.config import load_config, opencv_has_gstreamer
from edgeswin.errors import ConfigError
from tests.harness import REPO, write_config
from tests.streams import MjpegCamera

ROOT = "edgeswin/testdev"


def test_a_worker_thread_that_dies_stops_the_daemon_with_exit_1(tmp_path, broker, videos):
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "north": {"source": str(videos["north"]), "loop": True, "fps": 5}})
    # A fault no code path expects, injected into the capture thread once it is running.
    script = textwrap.dedent(f"""
        import sys, threading, time
        from edgeswin.config import load_config
        from edgeswin.daemon import Daemon
        from edgeswin.process.notify import setup_logging
        setup_logging("info")
        daemon = Daemon(load_config({str(cfg)!r}))
        def inject():
            while not daemon.cameras or not daemon.cameras[0].stats.classified:
                time.sleep(0.05)
            def fault():
                raise RuntimeError("injected fault")
            daemon.cameras[0].capture._on_frame = fault
        threading.Thread(target=inject, daemon=True).start()
        sys.exit(daemon.run())
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "thread capture-north died: RuntimeError: injected fault" in run.stderr


def test_a_gst_camera_without_gstreamer_in_opencv_is_refused(tmp_path, monkeypatch):
    info = "\n".join(line for line in cv2.getBuildInformation().splitlines()
                     if "GStreamer" not in line) + "\n    GStreamer:                   NO\n"
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: info)  # as pip's wheels report
    config_module.opencv_has_gstreamer.cache_clear()
    try:
        gst = "gst: videotestsrc ! videoconvert ! appsink"
        cfg = write_config(tmp_path / "a", 1883, {"csi": {"fps": 5, "source": gst}})
        with pytest.raises(ConfigError) as exc:
            load_config(cfg)
        (issue,) = exc.value.issues
        assert str(issue).startswith(f"{cfg}/cameras/csi.yaml:2: source: this OpenCV has no "
                                     "GStreamer support")
        assert "apt install python3-opencv" in str(issue)
        cfg = write_config(tmp_path / "b", 1883, {"csi": {"source": gst, "enabled": False},
                                                  "other": {"source": "rtsp://h/x"}})
        assert load_config(cfg)  # a disabled one is no problem
    finally:
        config_module.opencv_has_gstreamer.cache_clear()


@pytest.mark.mqtt
@pytest.mark.skipif(not opencv_has_gstreamer(), reason="this OpenCV has no GStreamer")
def test_a_camera_read_that_never_returns_is_left_behind_and_the_camera_comes_back(
        tmp_path, broker, subscriber, daemon_factory):
    """A camera that keeps its session open and sends nothing more, decoded by a pipeline
    without a timeout: OpenCV's read waits for ever. Each connection gets 25 frames, then
    silence; only a new reader (a new connection) brings the camera back."""
    frames = [cv2.putText(np.full((240, 320, 3), 40 * i, np.uint8), str(i), (100, 150),
                          cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5) for i in range(6)]
    with MjpegCamera(frames, fps=10, frames_per_connection=25) as camera:
        source = (f"gst:souphttpsrc timeout=0 location={camera.url} ! multipartdemux ! jpegdec "
                  f"! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 "
                  f"sync=false")
        cfg = write_config(tmp_path / "cfg", broker.port, {"hung": {
            "source": source, "fps": 5, "stall_s": 2, "read_timeout_s": 1,
            "reconnect": {"initial_s": 0.2, "max_s": 1}}})
        daemon = daemon_factory(cfg)
        availability = f"{ROOT}/hung/availability"
        changes = lambda: [p for p in subscriber.on(availability) if p]  # noqa: E731
        assert subscriber.wait_for(lambda: changes()[-1:] == [b"online"], 30), daemon.log()
        assert subscriber.wait_for(lambda: changes()[-1:] == [b"offline"], 20), daemon.log()
        # stall_s 2 + read_timeout_s 1 + 5 s of grace, then a new connection's frames.
        assert subscriber.wait_for(lambda: changes()[-2:] == [b"offline", b"online"], 30), \
            daemon.log()[-3000:]
        assert camera.connections >= 2
        assert "left it behind" in daemon.log()
        assert daemon.terminate()[0] == 0
