"""systemd's end of $NOTIFY_SOCKET, for tests of what the daemon tells the service manager."""

from __future__ import annotations

import socket
import threading
import time


class NotifySocket:
    """What systemd's end of $NOTIFY_SOCKET receives: (monotonic time, {field: value})."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def with_field(self, key, value=None, after=0.0):
        return [(t, f) for t, f in list(self.messages)
                if key in f and (value is None or f[key] == value) and t >= after]

    def wait(self, key, value=None, after=0.0, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.with_field(key, value, after)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value} after {after} in {self.messages[-5:]}")

    def close(self):
        self._stop = True
        self.sock.close()
