"""The daemon's C heap: at most two arenas however many threads its cameras bring, so that a
camera removed by reload leaves no arena of its own behind (the growth that reload_rss.py
measured on a 16-core host), and the operator's own MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.harness import REPO

# Eight threads alive at once, each allocating: glibc gives each a heap arena of its own
# unless the limit holds.
THREADS = """
import sys, threading
from edgeswin.process import heap
tuned = heap.tune() if sys.argv[1] == "tune" else None
gate = threading.Barrier(8)
def work():
    held = [bytearray(20_000) for _ in range(50)]
    gate.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(tuned, heap.arenas())
"""


def arenas(mode: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    run = subprocess.run([sys.executable, "-c", THREADS, mode], capture_output=True, text=True,
                         cwd=REPO, env={**clean, **(env or {})}, timeout=60)
    assert run.returncode == 0, run.stderr
    tuned, count = run.stdout.rsplit(" ", 1)
    return tuned, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_eight_live_threads_share_two_heap_arenas():
    _, untuned = arenas("plain")
    tuned, count = arenas("tune")
    assert untuned > 2  # glibc's own default: one arena per thread here
    assert count <= 2 and "'arenas': True" in tuned


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_the_operators_malloc_arena_max_is_left_alone():
    tuned, count = arenas("tune", {"MALLOC_ARENA_MAX": "4"})
    assert "'arenas': False" in tuned
    assert 2 < count <= 4


# What a frame's preprocessing does: a few hundred kilobytes taken, written and freed, on a
# thread of its own, frame after frame. Minor page faults count the memory faulted in anew.
REFAULTS = """
import resource, sys, threading
from edgeswin.process import heap
if sys.argv[1] == "tune":
    heap.tune()
elif sys.argv[1] == "threshold only":  # the mmap threshold fixed, the trim threshold not
    heap._set(heap._M_MMAP_THRESHOLD, heap.MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_")
def work():
    for _ in range(20):
        block = bytearray(600_000)
        del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        block = bytearray(600_000)  # zero-filled: every page written
        del block
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
"""


def refaults(mode: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    run = subprocess.run([sys.executable, "-c", REFAULTS, mode], capture_output=True, text=True,
                         cwd=REPO, env=clean, timeout=60)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_a_block_taken_and_freed_every_frame_is_not_faulted_in_again_each_time():
    pages = 600_000 // 4096
    assert refaults("threshold only") > 50 * pages  # the trap: trimmed and faulted each time
    assert refaults("tune") < 5 * pages  # kept at the arena's top for the next frame
