"""A stop at any moment of start-up is a clean stop: exit 0, builds cancelled, nothing left
running, and the retained messages true afterwards. Each phase is reached for certain (a log
line, or a hook in the engine opener) before the stop is sent."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from edgeswin.config import load_config
from edgeswin.daemon import Daemon
from edgeswin.engine import open_engine

from .conftest import FAKE_CUDA, FAKE_TRT, PRIMARY, REPO, SMALL, Subscriber, write_config
from .test_build import copy_primary

ROOT = "edgeswin/testdev"


def _wait_log(daemon, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in daemon.log():
        assert daemon.proc.poll() is None, daemon.log()
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)


@pytest.mark.mqtt
def test_a_stop_while_the_first_build_runs_with_nothing_to_serve_yet(tmp_path, broker, videos,
                                                                      daemon_factory):
    # A Jetson's first boot: TensorRT rungs only, no plan yet. `systemctl stop` meanwhile
    # must not mark the unit failed nor leave the build running.
    onnx_path = copy_primary(tmp_path)
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True}},
                       {"engines": [{"name": "primary", "model": str(onnx_path),
                                     "backend": "tensorrt", "precision": "fp16"}]})
    env = {"PYTHONPATH": f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}", "FAKE_TRT_BUILD_STEP_S": "2"}
    daemon = daemon_factory(cfg, env=env)
    _wait_log(daemon, "TensorRT: Building engine (0/")
    code, took = daemon.terminate(timeout=15)
    log = daemon.log()
    assert code == 0, log
    assert took < 8, f"{took:.1f} s: the build stops at its next step (2 s here)"
    assert "build cancelled" in log and "no engine rung is usable" not in log, log
    assert " ERROR " not in log and "Traceback" not in log, log
    assert not list((cfg / "state" / "engines").glob("*.engine")), "no half-built plan kept"


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
