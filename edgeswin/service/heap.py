"""The C heap of a long-running video daemon: blocks of a megabyte and more (decoder frame
pools, frames) mapped on their own and unmapped when freed, and every arena trimmed once a
retired camera's thread has ended (glibc's `mallopt` and `malloc_trim`; nothing elsewhere).

Why: a camera's decoder and frames are large (a 4K stream's are hundreds of MB) and come from
the heap arena of its own capture thread. glibc raises its mmap threshold as large blocks are
freed, after which they are carved from arenas that keep what a finished thread freed, so a
4K camera removed by reload gave little back and each re-add grew the process (+20 % over
eight add/remove cycles; flat with this: benchmarks/results/reload-rss-cpu.json). A fixed
threshold costs page faults on each new large block, which is why each capture decodes into
its own frames again (`camera._unused`) instead of a new one per frame. `MALLOC_MMAP_THRESHOLD_`
in the environment is the operator's choice and is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 1 << 20  # bytes: a 640x360 BGR frame is 0.7 MB, a 720p one 2.8 MB
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)

_libc = None


def _glibc():
    """glibc, or None on another C library (musl has neither call)."""
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else False
        except OSError:
            _libc = False
    return _libc or None


def map_large_blocks() -> bool:
    """From now on, blocks of MMAP_THRESHOLD bytes and more are mapped on their own and go back
    to the system when freed. False where unsupported or set from the environment."""
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim() -> bool:
    """Return the free memory of every heap arena to the system; False where unsupported."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return bool(libc.malloc_trim(0))
