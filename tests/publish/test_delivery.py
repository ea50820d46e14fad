"""Nothing lost: the durable outbox and the persistent session against real faults — a broker
restarted mid-stream, the daemon SIGKILLed while the broker is down, a full outbox, a state dir
that cannot be written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from datetime import datetime

import pytest

from edgeswin.publish.outbox import SETTLE_ROWS, SETTLE_S, Outbox
from tests.harness import Broker, Subscriber, write_config

pytestmark = pytest.mark.mqtt
ROOT = "edgeswin/testdev"


def first_seen(messages: list[dict]) -> tuple[list[int], int]:
    """seqs in order of first arrival, and how many arrivals were duplicates (QoS 1)."""
    seen, order = set(), []
    for m in messages:
        if m["seq"] not in seen:
            seen.add(m["seq"])
            order.append(m["seq"])
    return order, len(messages) - len(order)


@pytest.fixture
def persistent(tmp_path):
    broker = Broker(tmp_path, persistent=True)
    broker.start()
    sub = Subscriber(broker.port, client_id="persistent-subscriber")
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    yield broker, sub
    sub.close()
    broker.stop()


def test_broker_restart_mid_stream_loses_no_message(tmp_path, persistent, videos,
                                                    daemon_factory):
    broker, sub = persistent
    cameras = {name: {"source": str(path), "loop": True, "fps": 5}
               for name, path in videos.items()}
    cfg = write_config(tmp_path / "cfg", broker.port, cameras,
                       {"mqtt": {"host": "127.0.0.1", "port": broker.port, "qos": 1,
                                 "keepalive_s": 5}})
    daemon = daemon_factory(cfg)
    topics = {name: f"{ROOT}/{name}/classification" for name in cameras}
    assert sub.wait_for(lambda: all(len(sub.on(t)) >= 10 for t in topics.values()), 30), \
        daemon.log()
    broker.stop(graceful=True)
    time.sleep(12)  # the daemon goes on classifying into its outbox
    broker.start()
    before = {name: len(sub.on(t)) for name, t in topics.items()}
    assert sub.wait_for(lambda: all(len(sub.on(t)) >= before[n] + 60
                                    for n, t in topics.items()), 40), daemon.log()
    assert daemon.terminate(timeout=10)[0] == 0
    time.sleep(0.5)
    for name, topic in topics.items():
        order, duplicates = first_seen(sub.json_on(topic))
        assert order == list(range(1, len(order) + 1)), f"{name}: every seq, in order"
        assert len(order) >= 10 + 48, f"{name}: {len(order)} (12 s of outage at 5/s included)"
        print(f"{name}: {len(order)} messages, {duplicates} duplicate(s)")
    assert "lost the MQTT broker" in daemon.log()


def test_outbox_is_replayed_after_sigkill_while_the_broker_is_down(tmp_path, persistent,
                                                                   videos, daemon_factory):
    broker, sub = persistent
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"mqtt": {"host": "127.0.0.1", "port": broker.port, "qos": 1,
                                 "keepalive_s": 5}})
    topic = f"{ROOT}/north/classification"
    daemon = daemon_factory(cfg)
    assert sub.wait_for(lambda: len(sub.on(topic)) >= 5, 30), daemon.log()
    broker.stop(graceful=True)
    last_delivered = max(m["seq"] for m in sub.json_on(topic))
    time.sleep(4)
    daemon.proc.send_signal(signal.SIGKILL)  # no chance to flush anything
    daemon.proc.wait(5)
    killed_at = time.time()
    db = sqlite3.connect(tmp_path / "cfg" / "state" / "outbox.sqlite3")
    stored = [json.loads(p) for (p,) in db.execute(
        "SELECT payload FROM outbox WHERE topic = ? ORDER BY id", (topic,))]
    db.close()
    assert stored and stored[-1]["seq"] > last_delivered + 10, "the outage went to disk"

    broker.start()
    again = daemon_factory(cfg)
    assert again.proc.poll() is None
    assert sub.wait_for(lambda: any(m["seq"] == stored[-1]["seq"] and
                                    m["frame_ts"] == stored[-1]["frame_ts"]
                                    for m in sub.json_on(topic)), 30), again.log()
    assert "left from before; sending them first" in again.log()
    # The restarted daemon numbers from 1 again; its first message comes >1 s after the kill.
    first_run = [m for m in sub.json_on(topic)
                 if datetime.fromisoformat(m["ts"]).timestamp() < killed_at + 0.5]
    order, _ = first_seen(first_run)
    assert order == list(range(1, stored[-1]["seq"] + 1)), "the first run arrived whole"
    assert again.terminate(timeout=10)[0] == 0


def test_a_full_outbox_drops_the_oldest_and_counts_them(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=16 * 4096)
    ids = [box.add("t", json.dumps({"seq": i, "pad": "x" * 500}).encode(), 1, False)
           for i in range(1, 501)]
    assert all(ids) and box.degraded is None
    assert box.dropped > 0 and box.depth() + box.dropped == 500
    seqs = [json.loads(r.payload)["seq"] for r in box.rows(limit=1000)]
    assert seqs == list(range(500 - len(seqs) + 1, 501)), "the newest kept, in order"
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite3", max_bytes=16 * 4096)
    assert reopened.depth() == len(seqs), "it survives a restart"


def test_acknowledged_rows_leave_the_count_at_once_and_the_file_together(tmp_path):
    """Acks cost one delete for many: gone at once from what the outbox hands on, in the
    file until enough wait or the oldest waited `SETTLE_S`; a crash before that sends them
    again at the next start (a QoS 1 duplicate, never a loss); a clean close leaves none."""
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_bytes=16_000_000)
    ids = [box.add("t", str(i).encode(), 1, False) for i in range(10)]

    def in_file() -> int:  # what a start after a crash would find
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    box.remove(*ids[:4])
    assert box.depth() == 6 and [r.id for r in box.rows()] == ids[4:]
    assert box.stored(set(ids)) == set(ids[4:])
    assert in_file() == 10 and box.settling
    box.settle()
    assert in_file() == 10, "not due yet: one delete for many acks"
    time.sleep(SETTLE_S + 0.05)
    box.settle()
    assert in_file() == 6 and not box.settling
    more = [box.add("t", b"m", 1, False) for _ in range(SETTLE_ROWS)]
    box.remove(*more)
    assert in_file() == 6, "this many due at once"
    box.remove(ids[4])
    assert box.depth() == 5 and in_file() == 6
    box.close()
    assert in_file() == 5, "a clean close deletes what was acknowledged"
    assert [r.id for r in Outbox(path, max_bytes=16_000_000).rows()] == ids[5:]


def test_a_full_outbox_makes_room_from_acknowledged_rows_before_dropping_unsent_ones(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=16 * 4096)
    first = [box.add("t", b"x" * 500, 1, False) for _ in range(40)]
    box.remove(*first)  # acknowledged, still in the file (not due yet)
    assert box.settling
    added = [box.add("t", json.dumps({"seq": i, "pad": "x" * 500}).encode(), 1, False)
             for i in range(1, 501)]
    assert all(added) and box.degraded is None and box.dropped > 0
    assert box.depth() + box.dropped == 500, "only unsent messages are counted as dropped"
    assert not box.settling
    box.close()


def test_an_unwritable_state_dir_degrades_the_outbox_not_the_daemon(tmp_path, broker,
                                                                    subscriber, videos,
                                                                    daemon_factory):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir should be")
    cfg = write_config(tmp_path / "cfg", broker.port,
                       {"north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
                       {"state_dir": str(blocker / "state")})
    daemon = daemon_factory(cfg)
    assert subscriber.wait_for(lambda: len(subscriber.on(f"{ROOT}/north/classification")) >= 5
                               and subscriber.on(f"{ROOT}/stats"), 30), daemon.log()
    outbox = subscriber.json_on(f"{ROOT}/stats")[-1]["outbox"]
    assert outbox["state"] == "degraded" and "cannot open" in outbox["why"]
    assert "outbox degraded" in daemon.log()
    assert daemon.terminate(timeout=10)[0] == 0


def _threads_and_fds(pid: int) -> tuple[int, int]:
    status = open(f"/proc/{pid}/status").read()
    threads = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("Threads:")))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def test_a_hundred_reconnects_leave_no_thread_or_fd_behind(tmp_path, broker, subscriber,
                                                           daemon_factory):
    import numpy as np

    from tests.streams import MjpegCamera

    frames = [np.full((240, 320, 3), v, np.uint8) for v in (40, 120, 200)]
    # Each connection serves 4 frames and closes: the daemon reads, fails, reconnects.
    with MjpegCamera(frames, fps=60, frames_per_connection=4, stall=False) as cam:
        cfg = write_config(tmp_path / "cfg", broker.port, {"ip": {
            "source": cam.url, "fps": 0, "reconnect": {"initial_s": 0.02, "max_s": 0.1},
            "open_timeout_s": 2, "read_timeout_s": 2}})
        daemon = daemon_factory(cfg)
        pid = daemon.proc.pid
        assert subscriber.wait_for(lambda: cam.connections >= 10, 60), daemon.log()
        time.sleep(0.3)
        warm = _threads_and_fds(pid)
        assert subscriber.wait_for(lambda: cam.connections >= 110, 120), cam.connections
        time.sleep(0.3)
        after = _threads_and_fds(pid)
        assert after[0] <= warm[0] + 1, f"threads {warm[0]} -> {after[0]}"
        assert after[1] <= warm[1] + 2, f"fds {warm[1]} -> {after[1]}"
        avail = subscriber.on(f"{ROOT}/ip/availability")
        assert avail.count(b"offline") >= 50 and avail.count(b"online") >= 50
        assert daemon.terminate(timeout=10)[0] == 0
