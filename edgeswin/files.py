"""Reading the small files a user points the daemon at (config, model sidecars, secrets).

Hands on their bytes, or `NotASmallFile` saying why not: a FIFO named like a config file must
not block the start while it waits for a writer, and a huge file must not be read whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotASmallFile(ValueError):
    """Not a regular file, or larger than the limit; the message says which."""


def read_small(path: Path | str, limit: int) -> bytes:
    """The whole file, at most `limit` bytes. OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, and is refused
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotASmallFile("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise NotASmallFile(f"larger than {limit:,} bytes")
    return raw
