"""Talking to the service manager: sd_notify messages and journal logging.

Hands on a `Notifier` the pipeline calls at its milestones (ready, status, watchdog, reloading,
stopping). Under systemd (`$NOTIFY_SOCKET` set) it uses systemd-python's `systemd.daemon.notify`
when installed, else the plain datagram protocol (one AF_UNIX datagram per message; a leading
`@` means the abstract namespace). Outside systemd every call is a no-op. The watchdog period is
half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

from ..config.credentials import redact

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None, use_library: bool = True):
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_period = int(usec) / 2e6 if usec.isdigit() and mine else None
        self._sock: socket.socket | None = None
        self._send = self._send_datagram
        if self.socket_path and use_library:
            try:
                from systemd import daemon  # systemd-python
                self._send = lambda text: daemon.notify(text)
            except ImportError:
                pass
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def notify(self, *fields: str) -> None:
        if not self.enabled:
            return
        try:
            self._send("\n".join(fields))
        except OSError as exc:  # the manager went away: nothing to tell, nothing to stop for
            log.debug("sd_notify failed: %s", exc)

    def _send_datagram(self, text: str) -> None:
        path = self.socket_path
        address = "\0" + path[1:] if path.startswith("@") else path
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.sendto(text.encode(), address)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def extend(self, seconds: float, status: str) -> None:
        """Still starting: systemd waits `seconds` more before its start timeout (a first
        boot's TensorRT build outlasts any fixed TimeoutStartSec=). Ignored once READY."""
        self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}", f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC is required by Type=notify-reload (systemd >= 253), ignored before.
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                    "STATUS=reloading configuration")

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self, now: float) -> None:
        """Ping if half the watchdog interval has passed. Called from the inference loop only,
        so a hung worker stops the pings and systemd restarts the service."""
        if self.watchdog_period is not None and now - self._last_ping >= self.watchdog_period:
            self._last_ping = now
            self.notify("WATCHDOG=1")


def _redact_record(record: logging.LogRecord) -> bool:
    """Every log line passes here: a URL with a password, from any module or library that
    logs through `logging`, is masked before it is written."""
    message = record.getMessage()
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:  # a traceback quotes exception messages too
        record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
    return True


_TRACEBACKS = logging.Formatter()


def setup_logging(level: str) -> None:
    """Journal with structured fields (CAMERA=, ENGINE= from `extra`) when stderr is the journal
    and systemd-python is installed; plain stderr lines otherwise."""
    handler: logging.Handler | None = None
    if _stderr_is_journal():
        try:
            from systemd.journal import JournalHandler
            handler = JournalHandler(SYSLOG_IDENTIFIER="edgeswin")
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(levelname)s %(name)s: %(message)s" if _stderr_is_journal() else \
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # journald adds its own time
        handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_redact_record)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def _stderr_is_journal() -> bool:
    """$JOURNAL_STREAM is "device:inode" of the journal stream systemd connected us to."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"
