"""A first boot seen from its first second (online, cameras not read yet, the build's progress
to the broker and to systemd), and a stop at any moment of start-up a clean stop: exit 0,
builds cancelled, nothing left running, and the retained messages true afterwards. Each phase
is reached for certain (a log line, or a hook in the engine opener) before the stop is sent."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from edgeswin.config import load_config
from edgeswin.daemon import Daemon
from edgeswin.engine import open_engine
from tests.harness import FAKE_CUDA, FAKE_TRT, PRIMARY, REPO, SMALL, Subscriber, copy_primary, write_config
from tests.systemd_notify import NotifySocket

ROOT = "edgeswin/testdev"


def _wait_log(daemon, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in daemon.log():
        assert daemon.proc.poll() is None, daemon.log()
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)


def _first_boot(tmp_path, broker, videos, daemon_factory, notify, step_s: str):
    """A Jetson's first boot: TensorRT rungs only, no plan yet, under systemd."""
    onnx_path = copy_primary(tmp_path)
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"engines": [{"name": "primary", "model": str(onnx_path),
                                     "backend": "tensorrt", "precision": "fp16"}]})
    env = {"PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}", "FAKE_TRT_BUILD_STEP_S": step_s,
           "NOTIFY_SOCKET": notify.path}
    return cfg, daemon_factory(cfg, env=env)


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.mark.mqtt
def test_a_first_boot_is_seen_from_its_first_second_and_a_stop_says_cancelled(
        tmp_path, broker, videos, daemon_factory, notify):
    # The build takes minutes on a Jetson: meanwhile the device is online, its cameras are
    # not read yet, and the build's step goes out every few seconds, to the broker and to
    # systemd with more start time. `systemctl stop` meanwhile is a clean stop that says so.
    watcher = Subscriber(broker.port, f"{ROOT}/#")
    cfg, daemon = _first_boot(tmp_path, broker, videos, daemon_factory, notify, "2")
    engine = f"{ROOT}/engine"
    try:
        assert watcher.wait_for(lambda: watcher.on(engine), 15), daemon.log()
        assert watcher.on(f"{ROOT}/status")[-1:] == [b"online"]
        assert watcher.on(f"{ROOT}/north/availability") == [b"offline"]
        first = watcher.json_on(engine)[0]
        assert first["rung"] is None and first["name"] is None, first
        assert first["reason"].startswith("waiting for an engine")
        assert first["builds"]["primary"]["state"] == "building"
        # The progress follows: the builder's phases, with the time it has run.
        assert watcher.wait_for(lambda: any(m["builds"]["primary"]["step"].startswith(
            "TensorRT: Building engine (") for m in watcher.json_on(engine)[1:]), 15), \
            daemon.log()
        later = watcher.json_on(engine)[-1]["builds"]["primary"]
        assert later["elapsed_s"] >= 4, later
        extended = notify.with_field("EXTEND_TIMEOUT_USEC")
        assert len(extended) >= 2, notify.messages
        assert int(extended[-1][1]["EXTEND_TIMEOUT_USEC"]) >= 10_000_000
        assert "waiting for an engine" in extended[-1][1]["STATUS"]
        assert "primary TensorRT: Building engine" in extended[-1][1]["STATUS"]
        assert not notify.with_field("READY"), "not ready before an engine serves"
        assert not watcher.on(f"{ROOT}/north/classification")
        code, took = daemon.terminate(timeout=15)
    finally:
        watcher.close()
    log = daemon.log()
    assert code == 0, log
    assert took < 8, f"{took:.1f} s: the build stops at its next step (2 s here)"
    assert "build cancelled" in log and "no engine rung is usable" not in log, log
    assert " ERROR " not in log and "Traceback" not in log, log
    assert not list((cfg / "state" / "engines").glob("*.engine")), "no half-built plan kept"
    late = Subscriber(broker.port, f"{ROOT}/#")  # what a fleet's operator reads afterwards
    try:
        assert late.wait_for(lambda: late.on(engine) and late.on(f"{ROOT}/status"), 5)
        said = late.json_on(engine)[-1]
        assert said["builds"]["primary"]["state"] == "cancelled", said
        assert said["reason"] == "stopped before an engine served" and said["rung"] is None
        assert late.on(f"{ROOT}/status")[-1] == b"offline"
        assert late.on(f"{ROOT}/north/availability")[-1] == b"offline"
    finally:
        late.close()


@pytest.mark.mqtt
def test_a_first_boot_is_ready_once_its_built_engine_serves(tmp_path, broker, videos,
                                                            daemon_factory, notify):
    watcher = Subscriber(broker.port, f"{ROOT}/#")
    try:
        _, daemon = _first_boot(tmp_path, broker, videos, daemon_factory, notify, "0.5")
        north = f"{ROOT}/north/classification"
        assert watcher.wait_for(lambda: watcher.on(north), 60), daemon.log()
        _, ready = notify.wait("READY", "1", timeout=20)
        assert "on primary (rung 0)" in ready["STATUS"], ready
        said = watcher.json_on(f"{ROOT}/engine")
        assert said[0]["rung"] is None and said[-1]["rung"] == 0, said
        assert said[-1]["builds"]["primary"]["state"] == "ready"
        assert watcher.on(f"{ROOT}/north/availability")[-1] == b"online"
        assert watcher.json_on(north)[0]["engine"] == "primary"
        assert daemon.terminate(timeout=15)[0] == 0
    finally:
        watcher.close()


def test_a_stop_while_a_rung_opens_opens_no_more_and_closes_what_it_opened(tmp_path, videos):
    cfg = write_config(tmp_path / "cfg", 1, {"north": {"source": str(videos["north"])}})
    opened, closed = [], []
    daemon: Daemon | None = None

    class Tracked:
        def __init__(self, engine):
            self._engine, self.info, self.backend = engine, engine.info, engine.backend

        def infer(self, x):
            return self._engine.infer(x)

        def close(self):
            closed.append(self.info.name)

    def opener(model, backend, threads, host_code_allowed):
        opened.append(model)
        daemon.request_stop("SIGTERM")  # as a signal arriving while the first rung opens
        return Tracked(open_engine(model, backend, threads))

    daemon = Daemon(load_config(cfg), opener=opener)
    assert daemon.run() == 0
    assert [p.name for p in opened] == [PRIMARY.name], "the second rung is not opened"
    assert closed == ["swin-demo-112"]
    assert not daemon.publisher._sender_thread.is_alive()


@pytest.mark.mqtt
def test_a_stop_while_the_cameras_are_still_opening(tmp_path, broker, daemon_factory):
    # A stream that accepts the connection and never answers: the camera is still opening
    # when the stop comes. Its retained availability must end `offline`, the device's too.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/stream"
    cfg = write_config(tmp_path / "cfg", broker.port, {"gate": {"source": url}},
                       {"engines": [{"name": "small", "model": str(SMALL)}]})
    watcher = Subscriber(broker.port, f"{ROOT}/#")
    try:
        daemon = daemon_factory(cfg)
        _wait_log(daemon, "running 1 camera(s)")
        assert watcher.wait_for(lambda: accepted, 20), "the camera is connecting"
        code, took = daemon.terminate(timeout=15)
        assert code == 0, daemon.log()
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        watcher.close()
        silent.close()
    late = Subscriber(broker.port, f"{ROOT}/#")
    try:
        assert late.wait_for(lambda: late.on(f"{ROOT}/status")
                             and late.on(f"{ROOT}/gate/availability"), 5)
        assert late.on(f"{ROOT}/status")[-1] == b"offline"
        assert late.on(f"{ROOT}/gate/availability")[-1] == b"offline"
    finally:
        late.close()


@pytest.mark.mqtt
def test_a_reload_asked_for_while_starting_does_not_end_the_daemon(tmp_path, broker, videos,
                                                                    daemon_factory):
    # SIGHUP's default action is to terminate: a `systemctl reload` or a fleet's push in the
    # first second of a start must be a reload, not an exit.
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}})
    watcher = Subscriber(broker.port, f"{ROOT}/#")
    try:
        daemon = daemon_factory(cfg)
        for _ in range(20):  # from the first moments of the process until it runs
            time.sleep(0.1)
            daemon.proc.send_signal(signal.SIGHUP)
        assert watcher.wait_for(lambda: watcher.on(f"{ROOT}/north/classification"), 60), \
            daemon.log()
        assert daemon.proc.poll() is None, daemon.log()
        assert daemon.terminate(timeout=15)[0] == 0, daemon.log()
        assert "Traceback" not in daemon.log()
    finally:
        watcher.close()
