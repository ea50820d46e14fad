"""The C heap of a long-running video daemon: at most two heap arenas, blocks of a megabyte and
more (decoder frame pools, frames) mapped on their own and unmapped when freed, and every arena
trimmed once a retired camera's thread has ended (glibc's `mallopt` and `malloc_trim`; nothing
elsewhere).

Why: glibc gives each new thread a heap arena of its own, up to eight per core (128 on a
16-core host), and an arena keeps what its threads freed. Every camera added by reload brings
a capture thread and FFmpeg's decoder threads (one per core for a 4K stream), so each re-add
filled fresh arenas until all existed: on a 16-core host twenty add/remove cycles of a 4K
camera grew the process by 37-49 % before it levelled off; with two arenas it stayed within
1 % (benchmarks/results/reload-rss-gpu-h200.json). Large blocks go the same way unless mapped
on their own: glibc raises its mmap threshold as large blocks are freed, after which they are
carved from the arenas. A fixed threshold costs page faults on each new large block, which is
why each capture decodes into its own frames again (`camera._unused`) instead of a new one per
frame. Fixing the mmap threshold also stops glibc from raising its trim threshold (128 KB), so
the few hundred kilobytes a frame's preprocessing takes and frees (a 448x448 intermediate) were
handed back and faulted in again on every frame (a thread decoding and preparing a 640x360
video here: 0.58-0.77 ms p50 per frame against 0.44-0.50 ms without; tests/process/test_heap.py counts
the page faults). The trim threshold is set to twice the mmap threshold, as glibc itself does
when it moves them; `trim()` still gives everything back when a camera retires.
`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` in the environment
are the operator's choice and are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MMAP_THRESHOLD = 1 << 20  # bytes: a 640x360 BGR frame is 0.7 MB, a 720p one 2.8 MB
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # free bytes at an arena's top kept for the next frame
ARENAS = 2  # the loop and the capture threads take turns at the GIL: more arenas buy no speed
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

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
        if _libc:
            _libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return _libc or None


def _set(param: int, value: int, env: str) -> bool:
    libc = _glibc()
    if libc is None or env in os.environ:
        return False
    return bool(libc.mallopt(param, value))


def tune() -> dict[str, bool]:
    """Before the threads start: at most ARENAS heap arenas, blocks of MMAP_THRESHOLD bytes
    and more mapped on their own (back to the system when freed), and up to TRIM_THRESHOLD
    free bytes kept at an arena's top. Says which took effect: none on another C library, nor
    one set from the environment."""
    return {"arenas": _set(_M_ARENA_MAX, ARENAS, "MALLOC_ARENA_MAX"),
            "mmap_threshold": _set(_M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            "trim_threshold": _set(_M_TRIM_THRESHOLD, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_")}


def trim() -> bool:
    """Return the free memory of every heap arena to the system; False where unsupported."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


def arenas() -> int | None:
    """How many heap arenas the process has (glibc's `malloc_info`), or None where unknown."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_info"):
        return None
    libc.open_memstream.restype = ctypes.c_void_p
    libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not stream:
        return None
    try:
        libc.malloc_info(0, stream)
    finally:
        libc.fclose(stream)
    text = ctypes.string_at(buf, size.value).decode()
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(ctypes.cast(buf, ctypes.c_void_p))
    return text.count("<heap nr=")
