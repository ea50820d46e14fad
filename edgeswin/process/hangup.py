"""SIGHUP before the daemon listens for it.

A reload asked for while a start is under way (`systemctl reload`, a fleet's push, a script
that changed a camera file) must not end the process: SIGHUP's default action is to terminate,
and a start imports, reads the config and checks the models for a second or more before the
daemon's own handler is in place. `hold()`, called first thing by the CLI, notes such a
SIGHUP instead; the daemon asks `asked()` once it listens and reloads then.
"""

from __future__ import annotations

import signal
import threading

_asked = threading.Event()


def hold() -> None:
    """Note SIGHUPs from now on (main thread only: elsewhere signals cannot be handled)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda *_: _asked.set())


def asked() -> bool:
    """Whether a SIGHUP came while held (each one is reported once)."""
    was = _asked.is_set()
    _asked.clear()
    return was
