"""The outbox on a small and on a full disk (a real 1 MiB tmpfs, real SQLite): it stays inside
its byte budget, log and index included, never degrades while messages flow and are acked,
and turns back to ok by itself once the disk has room again."""

from __future__ import annotations

import subprocess

import pytest

from edgeswin.publish.outbox import Outbox


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "state"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_1_mib_disk_holds_an_outbox_that_keeps_sending(small_disk):
    box = Outbox(small_disk / "outbox.sqlite3", 64_000_000)  # the default bound, on 1 MiB
    payload = b"x" * 400
    for _ in range(3000):  # while connected: stored, then acked and deleted
        row = box.add("edgeswin/d/cam/classification", payload, 1, False)
        assert row is not None, box.degraded
        box.remove(row)
    assert box.degraded is None and box.footprint() < 1024 * 1024
    box.close()


def test_the_whole_footprint_stays_inside_outbox_max_mb(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite3", 1_000_000)
    for _ in range(6000):  # a long outage: nothing acked
        box.add("edgeswin/d/cam/classification", b"y" * 500, 1, False)
    assert box.dropped > 0 and box.degraded is None
    print(f"footprint {box.footprint()} bytes, depth {box.depth()}, dropped {box.dropped}")
    assert box.footprint() <= 1_000_000
    box.close()


def test_a_full_disk_degrades_the_outbox_then_it_recovers(small_disk):
    box = Outbox(small_disk / "outbox.sqlite3", 64_000_000)
    assert box.add("t", b"first", 1, False) is not None
    filler = small_disk / "filler"
    with filler.open("wb") as f:  # another program fills the disk
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    rows = [box.add("t", b"z" * 2000, 1, False) for _ in range(400)]
    assert box.degraded is not None and None in rows, "the disk really was full"
    assert box.state()["state"] == "degraded"
    filler.unlink()
    assert box.add("t", b"after", 1, False) is not None
    assert box.state()["state"] == "ok" and box.degraded is None
    assert [r.payload for r in box.rows()][0] == b"first", "nothing stored was lost"
    box.close()


def test_an_outbox_that_could_not_open_opens_later(tmp_path, monkeypatch):
    import edgeswin.publish.outbox as outbox_module
    state = tmp_path / "state"
    state.write_text("a file where the state directory should be")
    box = Outbox(state / "outbox.sqlite3", 1_000_000)
    assert box.degraded and box.add("t", b"1", 1, False) is None
    state.unlink()  # the operator fixes it; the daemon is not restarted
    monkeypatch.setattr(outbox_module, "REOPEN_S", 0.0)
    box._retry_open_at = 0.0
    assert box.add("t", b"2", 1, False) is not None and box.degraded is None
    box.close()
