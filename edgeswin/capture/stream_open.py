"""Opening a network camera without trusting the decoder to come back (stage 1, used by
`camera`).

OpenCV 4.6's GStreamer backend waits without limit for a pipeline to start, and an rtspsrc
that fails at the wrong moment of that start (on a refused connection, say) leaves it waiting
for ever: here 3 of 426 opens of a closed port never returned. So:
- `unreachable()` asks an rtsp(s):// camera's host and port for a TCP connection first, within
  the open timeout: a camera that is down costs no decoder at all, and the log says why;
- `Opener` runs an open on a helper thread and stops waiting after a deadline. The abandoned
  attempt releases its capture if it ever returns. At most `MAX_STUCK` abandoned attempts
  stay per camera; beyond that none starts until one returns, so a decoder that never comes
  back cannot pile up threads.

Hands `camera` the opened capture, None for an attempt it gave up on, or `Unreachable`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import EdgeswinError

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
MAX_STUCK = 3
GRACE_S = 5.0  # past the open timeout: rtspsrc's own timeouts come first when they work


class Unreachable(EdgeswinError):
    """The camera's host does not take a TCP connection (the text says why)."""


def unreachable(url: str, timeout_s: float) -> str | None:
    """Why an rtsp(s):// camera's host:port takes no connection now, or None (also for other
    schemes: their backends time out on their own)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None  # the backend reports a malformed port in its own words
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:  # refused, no route, timed out, no such host
        return f"{parts.hostname}:{port} takes no connection ({exc.strerror or exc})"


@dataclass(eq=False)
class _Attempt:
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple | None = None
    error: Exception | None = None
    abandoned: bool = False


class Opener:
    """One camera's opens, each on its own helper thread with a deadline."""

    def __init__(self, camera: str):
        self.camera = camera
        self._lock = threading.Lock()
        self._stuck: set[_Attempt] = set()

    @property
    def stuck(self) -> int:
        """Abandoned attempts that have not returned yet."""
        with self._lock:
            return len(self._stuck)

    def open(self, open_fn: Callable[[], tuple], timeout_s: float,
             stop: threading.Event) -> tuple | None:
        """What `open_fn()` returns (a capture first), or None when it has not returned within
        `timeout_s` or `stop` was set; raises what it raised."""
        attempt = _Attempt(time.monotonic())
        threading.Thread(target=self._run, args=(attempt, open_fn), daemon=True,
                         name=f"open-{self.camera}").start()
        deadline = attempt.started + timeout_s
        while not attempt.done.wait(min(0.2, max(deadline - time.monotonic(), 0.0))):
            if stop.is_set() or time.monotonic() >= deadline:
                with self._lock:
                    if not attempt.done.is_set():
                        attempt.abandoned = True
                        self._stuck.add(attempt)
                        return None
        if attempt.error is not None:
            raise attempt.error
        return attempt.result

    def _run(self, attempt: _Attempt, open_fn: Callable[[], tuple]) -> None:
        result, error = None, None
        try:
            result = open_fn()
        except Exception as exc:  # handed to the waiting capture thread
            error = exc
        with self._lock:
            if not attempt.abandoned:
                attempt.result, attempt.error = result, error
                attempt.done.set()
                return
            self._stuck.discard(attempt)
        if result is not None:
            result[0].release()
        log.info("camera %s: an abandoned open returned after %.0f s; released it", self.camera,
                 time.monotonic() - attempt.started)
