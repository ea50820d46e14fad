"""The running daemon's local control socket, `<state_dir>/control.sock` (mode 0600): one JSON
request a connection, one JSON answer. `edgeswin rollback` and `edgeswin relearn` speak
through it (`ask`), so a rollback goes through the daemon (between two frames) rather than
around it by editing files.

Hands the loop `Request`s (`pending()`); the loop answers each with `reply()`. Only the
socket's owner (the service user) and root can connect.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import load_config
from ..errors import ConfigError, EdgeswinError

log = logging.getLogger(__name__)

MAX_REQUEST = 4096
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with its NUL


def state_dir_of(config_dir: Path) -> str:
    """The state dir of a config directory; from edgeswin.yaml alone when a camera file is
    broken, since a rollback is what one reaches for when an update went wrong."""
    try:
        return load_config(config_dir).device.state_dir
    except ConfigError:
        try:
            raw = yaml.safe_load((config_dir / "edgeswin.yaml").read_text())
        except (OSError, yaml.YAMLError):
            raw = None
        state_dir = raw.get("state_dir", "/var/lib/edgeswin") if isinstance(raw, dict) else None
        if not isinstance(state_dir, str):
            raise
        log.warning("%s has config errors (see `edgeswin check`); asking the daemon whose "
                    "state_dir is %s", config_dir, state_dir)
        return state_dir


def socket_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / "control.sock"


@dataclass
class Request:
    command: str
    args: dict
    _answer: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=1))

    def reply(self, ok: bool, message: str) -> None:
        try:
            self._answer.put_nowait({"ok": ok, "message": message})
        except queue.Full:  # answered already
            pass


class ControlSocket:
    def __init__(self, state_dir: Path | str, answer_timeout_s: float = 600.0):
        self.path = socket_path(state_dir)
        self._requests: queue.Queue[Request] = queue.Queue()
        self._timeout = answer_timeout_s
        self._sock: socket.socket | None = None

    def start(self) -> None:
        """Listen; a path too long or a folder not writable is said once and the daemon runs
        without the socket (it serves frames either way)."""
        if len(os.fsencode(self.path)) > SUN_PATH_MAX:
            log.warning("control socket path %s is longer than %d bytes: `edgeswin rollback` "
                        "is unavailable; use a shorter state_dir", self.path, SUN_PATH_MAX)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)  # left by a daemon that was killed
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old)
            sock.listen(4)
        except OSError as exc:
            log.warning("cannot open the control socket %s: %s: `edgeswin rollback` is "
                        "unavailable", self.path, exc)
            return
        self._sock = sock
        threading.Thread(target=self._serve, name="control", daemon=True).start()

    def pending(self) -> list[Request]:
        out = []
        while True:
            try:
                out.append(self._requests.get_nowait())
            except queue.Empty:
                return out

    def _serve(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(conn,), name="control-client",
                             daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5.0)
                raw = b""
                while b"\n" not in raw and len(raw) <= MAX_REQUEST:
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    raw += chunk
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict) or not isinstance(data.get("command"), str):
                    raise ValueError("expected {\"command\": ...}")
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                self._send(conn, {"ok": False, "message": f"bad request: {exc}"})
                return
            request = Request(data["command"], data)
            self._requests.put(request)
            try:
                answer = request._answer.get(timeout=self._timeout)
            except queue.Empty:
                answer = {"ok": False, "message": "the daemon did not answer in time"}
            self._send(conn, answer)

    @staticmethod
    def _send(conn: socket.socket, answer: dict) -> None:
        try:
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass  # the client went away

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            self.path.unlink(missing_ok=True)
        for request in self.pending():
            request.reply(False, "the daemon is stopping")


def ask(state_dir: Path | str, request: dict, timeout_s: float = 600.0) -> dict:
    """Send one request to the running daemon; its answer. EdgeswinError when none runs."""
    path = socket_path(state_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise EdgeswinError(f"no running daemon answers on {path} (is the service running "
                            "with this config's state_dir?)") from None
    except PermissionError:
        sock.close()
        raise EdgeswinError(f"{path}: permission denied: run as the service's user or "
                            "root") from None
    except OSError as exc:
        sock.close()
        raise EdgeswinError(f"cannot reach the daemon on {path}: {exc}") from None
    with sock:
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            raw = b""
            while not raw.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                raw += chunk
            return json.loads(raw.decode("utf-8"))
        except TimeoutError:
            raise EdgeswinError(f"the daemon did not answer within {timeout_s:g} s") from None
        except (OSError, ValueError) as exc:
            raise EdgeswinError(f"no answer from the daemon on {path}: {exc}") from None
