"""A private Mosquitto on a free loopback port: what `edgeswin bench` starts when it is given
no broker, and the one the tests and benchmarks start (`tests/harness.Broker`). It can be
killed, or stopped as `systemctl restart mosquitto` stops it, and started again on the same
port; with `persistent`, sessions and queued QoS 1 messages survive that."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def wait_port(port: int, timeout_s: float = 5.0) -> None:
    """Until something on 127.0.0.1 takes connections on `port`; RuntimeError after the time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s:g} s")


class PrivateBroker:
    def __init__(self, workdir: Path | None = None, persistent: bool = False,
                 binary: str = "mosquitto"):
        if shutil.which(binary) is None:
            raise RuntimeError(f"no broker given and no {binary} binary to start one")
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp())
        self.conf = self.workdir / "mosquitto.conf"
        persistence = (f"persistence true\npersistence_location {self.workdir}/\n"
                       "autosave_interval 1\n" if persistent else "persistence false\n")
        # As root, mosquitto drops to user "mosquitto", who cannot write a private temporary
        # folder: its persistence would fail without a word and sessions would not survive.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"{user}listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             f"{persistence}max_queued_messages 100000\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 5.0) -> PrivateBroker:
        """Start it (again) and wait until it takes connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, timeout_s)
        return self

    def stop(self, graceful: bool = False) -> None:
        """Kill it, or with `graceful` stop it as systemd does (it saves its persistence)."""
        if self.proc and self.proc.poll() is None:
            if graceful:
                self.proc.terminate()
            else:
                self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        self.stop(graceful=True)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
