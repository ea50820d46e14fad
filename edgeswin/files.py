"""Reading the small files a user points the daemon at (config, model sidecars, secrets), and
writing the daemon's own files whole or not at all.

`read_small` hands on their bytes, or `NotASmallFile` saying why not: a FIFO named like a
config file must not block the start while it waits for a writer, and a huge file must not be
read whole. `write_whole` leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
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


def write_whole(path: Path, data: bytes) -> None:
    """Write next to the target, flush to disk and rename over it: a crash or a full disk
    never leaves half a file. OSError when it cannot; the temporary file is gone then."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the folder itself is what failed
            pass
        raise


def sha256(path: Path) -> str:
    """The file's SHA-256 in hex, read a megabyte at a time (models are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
