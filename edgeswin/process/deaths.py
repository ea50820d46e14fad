"""A worker thread that ends on an exception: said at CRITICAL with its traceback, and the
daemon stopped with a failure, so that the service manager restarts it instead of it running
on, deaf or blind. Hands on the failure in words (None for a thread that merely exited)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("edgeswin.daemon")


def thread_died(args: threading.ExceptHookArgs, stop: Callable[[str], None]) -> str | None:
    if issubclass(args.exc_type, SystemExit):
        return None
    name = args.thread.name if args.thread else "a thread"
    log.critical("thread %s died: %s: %s; stopping (exit 1) so the service restarts",
                 name, args.exc_type.__name__, args.exc_value,
                 exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
    failure = f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}"
    stop(failure)
    return failure
