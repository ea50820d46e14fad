"""The daemon as a systemd service: sd_notify over a real datagram socket (READY, STATUS,
WATCHDOG, RELOADING, STOPPING), SIGHUP reloads, a hung inference worker, and the unit and
compose files checked by systemd-analyze and docker-compose."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.harness import FAKE_CUDA, FAKE_TRT, REPO, plan, write_config
from tests.streams import free_port
from tests.systemd_notify import NotifySocket

ROOT = "edgeswin/testdev"


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def service_env(notify, watchdog_s=0.4, **extra):
    return {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(int(watchdog_s * 1e6)), **extra}


def camera_file(cfg, name, body):
    (cfg / "cameras" / f"{name}.yaml").write_text(yaml.safe_dump(body))


@pytest.mark.mqtt
def test_ready_watchdog_reload_and_stopping(tmp_path, broker, subscriber, videos, notify,
                                            daemon_factory):
    dead = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "north": {"source": str(videos["north"]), "loop": True, "fps": 5},
        "dead": {"source": dead, "reconnect": {"initial_s": 5, "max_s": 5}}})
    daemon = daemon_factory(cfg, env=service_env(notify))
    north = f"{ROOT}/north/classification"

    t_ready, ready = notify.wait("READY", "1")
    # Ready only after north classified a frame; the dead camera did not hold it back.
    assert subscriber.wait_for(lambda: subscriber.on(north), 3)
    assert "north" in ready["STATUS"] and "dead offline" in ready["STATUS"], ready
    time.sleep(2.0)
    pings = notify.with_field("WATCHDOG", "1", after=t_ready)
    assert len(pings) >= 6, f"{len(pings)} pings in 2 s with a 0.4 s watchdog"  # every ~0.2 s

    # Reload: add a camera; north keeps its seq unbroken.
    camera_file(cfg, "south", {"source": str(videos["south"]), "loop": True, "fps": 5})
    t0 = time.monotonic()
    daemon.proc.send_signal(signal.SIGHUP)
    t_reloading, reloading = notify.wait("RELOADING", "1", after=t0)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    t_ready2, ready2 = notify.wait("READY", "1", after=t_reloading)
    assert "south" in ready2["STATUS"], ready2
    assert subscriber.wait_for(lambda: len(subscriber.on(f"{ROOT}/south/classification")) >= 3,
                               15), daemon.log()

    # An invalid reload changes nothing and says where the mistake is.
    (cfg / "cameras" / "broken.yaml").write_text("source: [unclosed\n")
    before = len(subscriber.on(f"{ROOT}/south/classification"))
    t1 = time.monotonic()
    daemon.proc.send_signal(signal.SIGHUP)
    t_reloading3, _ = notify.wait("RELOADING", "1", after=t1)
    _, ready3 = notify.wait("READY", "1", after=t_reloading3)
    assert ready3["STATUS"].startswith("reload rejected (1 config error(s)"), ready3
    assert subscriber.wait_for(
        lambda: len(subscriber.on(f"{ROOT}/south/classification")) >= before + 3, 10)
    log = daemon.log()
    assert f"reload rejected: {cfg / 'cameras' / 'broken.yaml'}:2:" in log, log

    # Removing a camera takes it offline, then clears what the broker retained of it, and
    # leaves the others running.
    (cfg / "cameras" / "broken.yaml").unlink()
    (cfg / "cameras" / "south.yaml").unlink()
    t2 = time.monotonic()
    daemon.proc.send_signal(signal.SIGHUP)
    notify.wait("READY", "1", after=notify.wait("RELOADING", "1", after=t2)[0])
    assert subscriber.wait_for(
        lambda: subscriber.on(f"{ROOT}/south/availability")[-2:] == [b"offline", b""], 10)
    assert subscriber.wait_for(lambda: subscriber.on(f"{ROOT}/south/state")[-1:] == [b""], 10)
    count = len(subscriber.on(north))
    assert subscriber.wait_for(lambda: len(subscriber.on(north)) >= count + 3, 10)

    t3 = time.monotonic()
    code, _ = daemon.terminate(timeout=10)
    assert code == 0
    _, stopping = notify.wait("STOPPING", "1", after=t3, timeout=2)
    assert stopping["STATUS"].startswith("stopping: SIGTERM")
    seqs = [m["seq"] for m in subscriber.json_on(north)]
    assert seqs == list(range(1, len(seqs) + 1)), "north's seq unbroken across three reloads"


@pytest.mark.mqtt
def test_watchdog_pings_stop_when_the_inference_worker_hangs(tmp_path, broker, videos, notify,
                                                            daemon_factory, trt):
    tensorrt, _ = trt
    engine = plan(tmp_path, tensorrt)
    hang = tmp_path / "gpu-hung"
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"engines": [{"name": "primary", "model": str(engine)}]})
    daemon = daemon_factory(cfg, env=service_env(
        notify, PYTHONPATH=f"{FAKE_TRT}:{FAKE_CUDA}:{REPO}", FAKE_CUDA_HANG_FILE=str(hang)))
    t_ready, _ = notify.wait("READY", "1")
    time.sleep(1.0)
    assert len(notify.with_field("WATCHDOG", "1", after=t_ready)) >= 3
    hang.touch()  # the next stream synchronize never returns, as with a hung GPU
    t_hang = time.monotonic()
    time.sleep(2.5)
    assert daemon.proc.poll() is None, "still running: only the watchdog can notice"
    late = notify.with_field("WATCHDOG", "1", after=t_hang + 0.5)
    assert late == [], f"{len(late)} pings while inference hung"
    hang.unlink()  # the GPU recovers: pings resume
    t_back = time.monotonic()
    notify.wait("WATCHDOG", "1", after=t_back, timeout=5)


@pytest.mark.parametrize("library", [False, True], ids=["plain-datagram", "systemd-python"])
def test_notifier_speaks_the_protocol_to_abstract_sockets(library, monkeypatch):
    from edgeswin.process.notify import Notifier

    if library:
        pytest.importorskip("systemd.daemon")
    name = f"edgeswin-test-{os.getpid()}-{library}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "30000000",
           "WATCHDOG_PID": str(os.getpid())}
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)  # systemd.daemon.notify reads os.environ
    _exchange(Notifier(env, use_library=library), sock)
    sock.close()
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_period is None
    Notifier({}).ready("no socket: nothing sent, no error")


def _exchange(notifier, sock):
    assert notifier.watchdog_period == 15.0
    notifier.ready("ok")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ok"
    notifier.watchdog(100.0)
    notifier.watchdog(110.0)  # within the period: no second ping
    notifier.watchdog(115.0)
    assert sock.recv(4096) == b"WATCHDOG=1" and sock.recv(4096) == b"WATCHDOG=1"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_file_verifies_without_warnings(tmp_path):
    # verify insists that ExecStart's program exists, so point the installed path
    # (/opt/edgeswin/venv/bin/edgeswin) at this checkout's own console script; nothing else changes.
    exe = Path(sys.executable).parent / "edgeswin"
    assert exe.exists(), exe
    text = (REPO / "systemd" / "edgeswin.service").read_text()
    assert text.count("/opt/edgeswin/venv/bin/edgeswin") == 2
    unit = tmp_path / "edgeswin.service"
    unit.write_text(text.replace("/opt/edgeswin/venv/bin/edgeswin", str(exe)))
    run = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", str(unit)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
    for directive in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=on-failure",
                      "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=edgeswin",
                      "ConfigurationDirectory=edgeswin", "LoadCredential=mqtt_password:",
                      "ProtectSystem=strict", "DevicePolicy=closed",
                      "DeviceAllow=char-video4linux rw", "SupplementaryGroups=video",
                      "BindPaths=-/tmp/argus_socket", "PrivateTmp=yes"):
        assert directive in text, directive


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_compose_file_is_valid():
    run = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    config = yaml.safe_load(run.stdout)
    assert {"mosquitto", "edgeswin", "edgeswin-cpu"} <= config["services"].keys()
    jetson = config["services"]["edgeswin"]
    assert jetson["runtime"] == "nvidia"
    # The config and the state are named volumes, filled from the image (owned by its user),
    # never a host directory that may not exist; no device is required for RTSP-only setups.
    mounts = {str(v).split(":")[1] if isinstance(v, str) else v["target"]: v
              for v in jetson["volumes"]}
    for target, volume in (("/etc/edgeswin", "edgeswin-config"),
                           ("/var/lib/edgeswin", "edgeswin-state")):
        spec = mounts[target]
        assert (spec.startswith(volume) if isinstance(spec, str) else spec["source"] == volume)
    assert "devices" not in jetson and "/tmp/argus_socket" not in mounts
    cpu = config["services"]["edgeswin-cpu"]
    assert any(":/opt/edgeswin/build" in str(v) or
               (isinstance(v, dict) and v.get("target") == "/opt/edgeswin/build")
               for v in cpu["volumes"])


def test_the_cpu_image_runs_the_demo_where_its_user_can_write():
    # No container engine runs here: what the image needs is checked from its files. The
    # volume at /opt/edgeswin/build takes the owner of that directory in the image, so the
    # image must make it for its user; the demo's state resolves into it from configs/demo.
    text = (REPO / "docker" / "Dockerfile.cpu").read_text()
    assert "install -d -o edgeswin /opt/edgeswin/build" in text
    assert text.index("install -d -o edgeswin /opt/edgeswin/build") < text.index("USER edgeswin")
    assert re.search(r'^CMD \["demo"\]$', text, re.M)
    for copied in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (REPO / copied).exists(), copied
    state = yaml.safe_load((REPO / "configs" / "demo" / "edgeswin.yaml").read_text())["state_dir"]
    in_image = Path("/opt/edgeswin/configs/demo", state)
    assert os.path.normpath(in_image).startswith("/opt/edgeswin/build/")
    for camera in (REPO / "configs" / "demo" / "cameras").glob("*.yaml"):
        source = yaml.safe_load(camera.read_text())["source"]
        assert os.path.normpath(Path("/opt/edgeswin/configs/demo/cameras", source)).startswith(
            "/opt/edgeswin/build/"), camera


def test_jetson_image_builds_on_an_l4t_release_tag_and_installs_with_install_sh():
    text = (REPO / "docker" / "Dockerfile.jetson").read_text()
    assert re.search(r"^ARG L4T=r36\.\d+\.\d+$", text, re.M)
    assert "FROM nvcr.io/nvidia/l4t-jetpack:${L4T}" in text
    assert "systemd/install.sh --target jetpack6" in text
    assert "USER edgeswin" in text
