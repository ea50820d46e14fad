"""What tests and benchmarks share, importable from one place: a private Mosquitto
(`Broker`), an independent subscriber, config directories (`write_config`), the daemon as a
real subprocess, the TensorRT double's import, `edgeswin review` and its page's token, the
paths of the bundled models, a TensorRT double's plan of the primary model, a GET and its
Prometheus samples, and `TIME_SCALE` for deadlines. The fixtures built on them are in
conftest.py."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from edgeswin.tools.broker import PrivateBroker, wait_port  # noqa: F401 (shared from here)

from .streams import free_port  # noqa: F401 (shared from here)

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
PRIMARY = MODELS / "swin-demo-112.onnx"
SMALL = MODELS / "swin-demo-64.onnx"
FAKE_TRT = REPO / "tests" / "fakes" / "trt"  # the TensorRT test double
FAKE_CUDA = REPO / "tests" / "fakes" / "cuda"  # the pycuda test double


class Broker(PrivateBroker):
    """A private mosquitto for a test (the test is skipped where none is installed)."""

    def __init__(self, workdir: Path, persistent: bool = False):
        if not shutil.which("mosquitto"):
            pytest.skip("mosquitto binary not installed")
        super().__init__(workdir, persistent)


# Deadlines for events are stretched by this factor (EDGESWIN_TEST_TIME_SCALE overrides):
# the suite must pass on a machine 3x slower than the one a deadline was chosen on.
TIME_SCALE = float(os.environ.get("EDGESWIN_TEST_TIME_SCALE", "3"))

_ids = itertools.count(1)  # one client id each: a shared one makes the broker drop the other


class Subscriber:
    """An independent MQTT client that records everything under a topic filter."""

    def __init__(self, port: int, topic: str = "edgeswin/#", client_id: str | None = None):
        """client_id given: a persistent session (clean_session false) the broker keeps."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each message, in step
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{port}-{next(_ids)}",
                                  clean_session=client_id is None)
        self.client.reconnect_delay_set(0.2, 1)  # back quickly after a broker restart
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self.arrivals.append(time.monotonic())

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.on(topic)]

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        """Poll until predicate() holds. The timeout is how long a fast machine needs, scaled
        by TIME_SCALE: it returns as soon as the predicate holds, so a generous deadline costs
        a passing test nothing and keeps a slow or one-core machine from failing it."""
        deadline = time.monotonic() + timeout * TIME_SCALE
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(directory: Path, port: int, cameras: dict[str, dict],
                 device: dict | None = None) -> Path:
    """A config directory for the daemon: edgeswin.yaml + cameras/<name>.yaml."""
    (directory / "cameras").mkdir(parents=True, exist_ok=True)
    dev = {"device_id": "testdev", "mqtt": {"host": "127.0.0.1", "port": port, "qos": 1},
           "engines": [{"name": "primary", "model": str(PRIMARY)},
                       {"name": "small", "model": str(SMALL)}],
           "state_dir": str(directory / "state"), "stats_interval_s": 2}
    dev.update(device or {})
    (directory / "edgeswin.yaml").write_text(yaml.safe_dump(dev))
    for name, cam in cameras.items():
        (directory / "cameras" / f"{name}.yaml").write_text(yaml.safe_dump(cam))
    return directory


class DaemonProcess:
    """`python -m edgeswin run -c DIR` as a child process, with its log kept."""

    def __init__(self, config_dir: Path, env: dict[str, str] | None = None):
        self.log_path = config_dir / "daemon.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeswin", "run", "-c",
                                      str(config_dir)], stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **(env or {})})

    def log(self) -> str:
        return self.log_path.read_text()

    def terminate(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; return (exit code, seconds it took)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# The TensorRT releases the double can be (tests/fakes/trt/tensorrt/api_surface.json).
TRT_VERSIONS = ("8.6.1", "10.3.0", "10.16.0", "11.0.0", "11.1.0")


def import_double(monkeypatch, version: str):
    for name in ("tensorrt", "pycuda", "pycuda.driver"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setenv("EDGESWIN_FAKE_TRT_VERSION", version)
    # Not monkeypatch.syspath_prepend: it restores all of sys.path afterwards, and so takes
    # back what a library added meanwhile (onnxruntime.transformers appends its own folder).
    sys.path[:0] = [str(FAKE_TRT), str(FAKE_CUDA)]
    import pycuda.driver as cuda
    import tensorrt

    tensorrt.faults.clear()
    return tensorrt, cuda


def forget_double() -> None:
    for path in (str(FAKE_TRT), str(FAKE_CUDA)):
        if path in sys.path:
            sys.path.remove(path)


# edgeswin review, and a real browser to drive it
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium")


def start_review(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "edgeswin", "review", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("open "):
            return proc, line.split()[1]
    raise AssertionError(f"review did not start (exit {proc.wait()})")


def form_token(page: str) -> str:
    """The per-run form token a review page carries, as its script sends it."""
    return page.split('name="csrf" content="')[1].split('"')[0]


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, out
    return out


def plan(tmp_path, trt_mod, *, input_dtype="FLOAT", output_dtype="FLOAT", meta=None, io=None,
         name="primary.engine", **kw):
    """A plan of the primary demo model plus its sidecar; returns the plan path."""
    path = tmp_path / name
    io = io or [{"name": "input", "mode": "input", "shape": [1, 3, 112, 112],
                 "dtype": input_dtype},
                {"name": "logits", "mode": "output", "shape": [1, 6], "dtype": output_dtype}]
    trt_mod.build_plan(PRIMARY, path, io, **kw)
    sidecar = json.loads(PRIMARY.with_suffix(".json").read_text())
    sidecar["input"]["dtype"] = {"FLOAT": "float32", "HALF": "float16"}[input_dtype]
    sidecar["precision"] = "fp16"
    sidecar.update(meta or {})
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def copy_primary(tmp_path):
    """The primary demo model and its sidecar copied into `tmp_path`; the copy's path."""
    dst = tmp_path / PRIMARY.name
    shutil.copy(PRIMARY, dst)
    shutil.copy(PRIMARY.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def get(url: str) -> tuple[int, str]:
    """(HTTP status, body) of a GET, an error status included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple, float]:
    """A Prometheus exposition as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
