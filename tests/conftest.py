"""The fixtures: a private Mosquitto per test, an independent subscriber, generated videos, the
daemon as a real subprocess, the TensorRT double, a real browser. What they are built from is
in harness.py, which tests and benchmarks import."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeswin.demo.assets import VideoSpec, make_video

from .harness import (
    CHROMEDRIVER,
    CHROMIUM,
    TRT_VERSIONS,
    Broker,
    DaemonProcess,
    Subscriber,
    forget_double,
    import_double,
)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker):
    sub = Subscriber(broker.port)
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    yield sub
    sub.close()


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Two small demo videos with ground truth (640x360, 15 fps)."""
    out = tmp_path_factory.mktemp("videos")
    paths = {}
    for name, seed in (("north", 101), ("south", 202)):
        path = out / f"{name}.mp4"
        make_video(path, VideoSpec(seconds=8, fps=15, width=640, height=360, seed=seed))
        paths[name] = path
    return paths


@pytest.fixture
def daemon_factory():
    started: list[DaemonProcess] = []

    def start(config_dir: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        d = DaemonProcess(config_dir, env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


@pytest.fixture
def trt(monkeypatch):
    """Import the double (TensorRT 10.3) as `tensorrt` / `pycuda.driver`; yield both."""
    yield import_double(monkeypatch, "10.3.0")
    forget_double()


@pytest.fixture(params=TRT_VERSIONS, ids=[f"trt{v}" for v in TRT_VERSIONS])
def trt_each(request, monkeypatch):
    """The double as each TensorRT release in turn: what a release lacks raises AttributeError."""
    yield import_double(monkeypatch, request.param)
    forget_double()


@pytest.fixture
def browser():
    if not (CHROMEDRIVER and CHROMIUM):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test "
                    "installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
