"""Camera credentials: kept out of the YAML (a file, a variable or a systemd credential), put
into the URL only at open time, and masked in everything the daemon says."""

from __future__ import annotations

import numpy as np
import pytest

from edgeswin.config import load_config
from edgeswin.config.credentials import redact, with_credentials
from edgeswin.errors import ConfigError
from tests.harness import write_config
from tests.streams import MjpegCamera, free_port

PASSWORD = "s3cr@t:pa/ss"  # the characters a URL has to escape


@pytest.mark.parametrize("text,masked", [
    ("rtsp://admin:hunter2@10.0.0.7:554/Streaming/101", "rtsp://***@10.0.0.7:554/Streaming/101"),
    ("stream:rtsps://viewer@cam/x", "stream:rtsps://***@cam/x"),
    ("http://cam/cgi-bin/mjpg?user=admin&password=hunter2&channel=1",
     "http://cam/cgi-bin/mjpg?user=admin&password=***&channel=1"),
    ("gst: rtspsrc location=rtsp://u:hunter2@h/s user-id=u user-pw=hunter2 ! appsink",
     "gst: rtspsrc location=rtsp://***@h/s user-id=u user-pw=*** ! appsink"),
    ("http://cam/snap?token=abc.def", "http://cam/snap?token=***"),
    ("/data/clips/monkey=1.mp4", "/data/clips/monkey=1.mp4"),
])
def test_redact_masks_user_info_and_secret_parameters(text, masked):
    assert redact(text) == masked


def test_with_credentials_escapes_what_a_url_cannot_hold():
    url = with_credentials("rtsp://cam:554/s?x=1", "op@site", PASSWORD)
    assert url == "rtsp://op%40site:s3cr%40t%3Apa%2Fss@cam:554/s?x=1"


def test_credentials_are_checked_with_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("X", "pw")
    cfg = write_config(tmp_path / "a", 1883, {"cam": {
        "source": "rtsp://u:p@cam/s", "credentials": {"username": "u", "password_env": "X"}}})
    with pytest.raises(ConfigError, match=r"cam.yaml:\d+: .*already holds a user"):
        load_config(cfg)
    cfg = write_config(tmp_path / "b", 1883, {"cam": {
        "source": "rtsp://cam/s", "credentials": {"username": "u", "password_file": "nope",
                                                  "password_env": "X"}}})
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    text = str(exc.value)
    assert "credentials.password_file: file does not exist" in text
    # run reads the variable at the camera's open: check reads it too, and says so at its key
    monkeypatch.delenv("X")
    cfg = write_config(tmp_path / "c", 1883, {"cam": {
        "source": "rtsp://cam/s", "credentials": {"username": "u", "password_env": "X"}}})
    with pytest.raises(ConfigError, match=r"cam.yaml:\d+: credentials.password_env: variable X "
                                          r"is not set"):
        load_config(cfg)


def test_a_camera_password_from_a_file_opens_the_stream_and_is_never_said(
        tmp_path, broker, subscriber, daemon_factory):
    frames = [np.full((240, 320, 3), v, np.uint8) for v in (40, 200)]
    (tmp_path / "camera-password").write_text(PASSWORD + "\n")
    dead = free_port()
    with MjpegCamera(frames, fps=20, stall=False, basic_auth=("viewer", PASSWORD)) as cam:
        cfg = write_config(tmp_path / "cfg", broker.port, {
            "door": {"source": cam.url, "fps": 5, "credentials": {
                "username": "viewer", "password_file": str(tmp_path / "camera-password")}},
            # a password in the URL itself (discouraged, but it must not leak either)
            "yard": {"source": f"rtsp://admin:{PASSWORD.replace('@', '%40').replace('/', '%2F')}"
                               f"@127.0.0.1:{dead}/s", "open_timeout_s": 1}},
            {"metrics": {"enabled": True, "port": free_port()}})
        daemon = daemon_factory(cfg)
        assert subscriber.wait_for(
            lambda: len(subscriber.on("edgeswin/testdev/door/classification")) >= 3, 30), \
            daemon.log()
        assert subscriber.wait_for(lambda: "yard: cannot open" in daemon.log(), 20)
        assert subscriber.wait_for(lambda: subscriber.on("edgeswin/testdev/stats"), 10)
        assert daemon.terminate(timeout=10)[0] == 0
    assert cam.connections >= 1
    said = daemon.log() + "".join(p.decode(errors="replace") for _, p, _ in subscriber.messages)
    for secret in ("s3cr", "pa/ss", "pa%2Fss"):
        assert secret not in said, secret
    assert "rtsp://***@127.0.0.1" in daemon.log()


def test_log_lines_and_tracebacks_are_masked(capsys):
    import logging

    from edgeswin.process.notify import setup_logging
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("info")  # what the daemon installs
    try:
        log = logging.getLogger("edgeswin.test")
        log.warning("opening %s", "rtsp://admin:hunter2@cam/s")
        try:
            raise RuntimeError("cannot open http://cam/x?password=hunter2")
        except RuntimeError:
            log.exception("failed")
    finally:
        root.handlers[:], root.level = handlers, level
    err = capsys.readouterr().err
    assert "hunter2" not in err and "rtsp://***@cam/s" in err and "password=***" in err
