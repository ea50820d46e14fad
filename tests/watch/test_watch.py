"""`edgeswin watch` against real daemons through a real broker: all well (exit 0), a covered
camera, a camera whose stream never answers, a daemon that hangs (SIGSTOP: still connected,
no stats) and one that is gone (its last will) each named, with exit 1."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from edgeswin.demo import fixed_camera
from tests.harness import REPO, free_port, write_config

pytestmark = pytest.mark.mqtt


def watch(port: int, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeswin", "watch", "--port", str(port),
                           *extra], capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_a_healthy_device_is_all_well_and_the_live_view_redraws(tmp_path, broker, subscriber,
                                                                videos, daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "lobby": {"source": str(videos["north"]), "fps": 5, "loop": True}})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: subscriber.on("edgeswin/testdev/canary"), 60), \
        daemon.log()
    done = watch(broker.port, "--once", "--timeout", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("edgeswin/testdev  online  rung 0 primary  canary ok  stats "), first
    assert "cameras 1/1 online" in first and "1 device(s): all well" in done.stdout
    live = subprocess.Popen([sys.executable, "-m", "edgeswin", "watch", "--port",
                             str(broker.port), "--every", "0.5"], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    time.sleep(4)
    live.send_signal(signal.SIGINT)
    out = live.communicate(timeout=10)[0]
    assert live.returncode == 0 and out.count("1 device(s)") >= 3, out
    assert daemon.terminate()[0] == 0


def test_problems_are_named_and_exit_1(tmp_path, broker, subscriber, daemon_factory):
    covered = fixed_camera.make(tmp_path / "door.mp4", 20, 10, {"covered": (0.0, 20.0)})
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "door": {"source": str(covered), "fps": 5, "loop": True},
        "gate": {"source": f"rtsp://127.0.0.1:{free_port()}/none", "fps": 5}},
        {"health": {"covered_after_s": 1}})
    daemon = daemon_factory(cfg)
    root = "edgeswin/testdev"

    def seen() -> bool:
        health = subscriber.json_on(f"{root}/door/health")
        return bool(health and health[-1]["problems"]) and \
            subscriber.on(f"{root}/gate/availability")[-1:] == [b"offline"]

    assert subscriber.wait_for(seen, 60), daemon.log()
    done = watch(broker.port, "--once", "--timeout", "20")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "  ! camera gate offline" in done.stdout
    assert "  ! camera door: covered since " in done.stdout
    assert "1 device(s): 1 with problems" in done.stdout

    daemon.proc.send_signal(signal.SIGSTOP)  # hung: connected, retained "online", no stats
    try:
        hung = watch(broker.port, "--once", "--timeout", "4")
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert hung.returncode == 1 and "  ! no stats received" in hung.stdout, hung.stdout
    assert hung.stdout.startswith(f"{root}  online"), hung.stdout

    daemon.proc.kill()  # gone: the broker sends its last will
    daemon.proc.wait(10)
    assert subscriber.wait_for(lambda: subscriber.on(f"{root}/status")[-1:] == [b"offline"], 20)
    gone = watch(broker.port, "--once", "--timeout", "3")
    assert gone.returncode == 1 and gone.stdout.startswith(f"{root}  OFFLINE"), gone.stdout
    assert "  ! offline (its last will, or a clean stop)" in gone.stdout
    # Another root: nothing there is an error too, said so.
    none = watch(broker.port, "--once", "--timeout", "2", "--root", "elsewhere/+")
    assert none.returncode == 1 and "no device under elsewhere/+" in none.stdout


def test_a_bad_root_or_an_absent_broker_is_one_clear_line(tmp_path):
    bad = watch(free_port(), "--once", "--root", "edgeswin/#")
    assert bad.returncode == 1 and "--root 'edgeswin/#'" in bad.stderr, bad.stderr
    port = free_port()
    absent = watch(port, "--once")
    assert absent.returncode == 1
    assert f"cannot reach the broker at 127.0.0.1:{port}" in absent.stderr, absent.stderr
    assert "Traceback" not in absent.stderr


def test_the_board_keeps_what_it_is_sent_bounded():
    """Anything that may publish under the root can make up devices, cameras and payloads:
    the board keeps at most so many of each, whatever arrives."""
    from edgeswin.watch import board as b

    board = b.Board("edgeswin/+")
    for i in range(b.MAX_DEVICES + 50):
        board.take(f"edgeswin/dev{i}/status", b"online", 0.0)
    assert len(board.seen) == b.MAX_DEVICES and len(board.fleet.devices) == b.MAX_DEVICES
    for i in range(b.MAX_UNITS + 50):
        board.take(f"edgeswin/dev0/cam{i}/state", b'{"label": "x", "score": 1}', 0.0)
        board.take(f"edgeswin/dev0/cam{i}/snapshot", b"\xff\xd8" + b"0" * 10, 0.0)
    assert len(board.seen["edgeswin/dev0"].states) == b.MAX_UNITS
    assert len(board.seen["edgeswin/dev0"].pictures) == b.MAX_UNITS
    board.take("edgeswin/dev0/cam0/snapshot", b"<svg onload=alert(1)>", 0.0)  # not a JPEG
    assert board.picture("edgeswin/dev0", "cam0").startswith(b"\xff\xd8")
    for _ in range(b.POINTS + 10):
        board.take("edgeswin/dev0/stats", b'{"rung": 0, "cameras": {}}', 0.0)
    assert len(board.seen["edgeswin/dev0"].points) == b.POINTS
    board.take("edgeswin/dev0/stats", b"{" + b" " * (b.MAX_JSON + 1) + b"}", 0.0)
    assert board.snapshot(0.0, 90.0)["devices"]  # still answers
