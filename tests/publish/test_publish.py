"""The MQTT sender against a real broker: a message paho refuses never stops the ones after it,
nothing is delivered twice while connected, a dropped broker is back within the reconnect cap,
and a second client with the same id is named as the cause of the disconnects."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from edgeswin.config import MqttConfig
from edgeswin.publish.message import Message
from edgeswin.publish.mqtt import Publisher
from edgeswin.publish.outbox import Outbox
from tests.harness import REPO, Subscriber, write_config

pytestmark = pytest.mark.mqtt


def publisher(broker, tmp_path, outbox: bool = True, **mqtt) -> Publisher:
    cfg = MqttConfig(host="127.0.0.1", port=broker.port, **mqtt)
    box = Outbox(tmp_path / "outbox.sqlite3", 16_000_000) if outbox else None
    return Publisher(cfg, "t", f"pub-{broker.port}", box)


@pytest.mark.parametrize("outbox", [True, False], ids=["outbox", "memory"])
def test_a_message_paho_refuses_does_not_stop_the_sender(tmp_path, broker, subscriber, outbox):
    sub = Subscriber(broker.port, "t/#")
    pub = publisher(broker, tmp_path, outbox)
    pub.start()
    assert sub.wait_for(pub.connected.is_set, 5)
    pub.publish(Message("t/cam/+/classification", b"bad", 1))  # a wildcard: ValueError in paho
    pub.publish(Message("t/cam/classification", b"good", 1))
    assert sub.wait_for(lambda: sub.on("t/cam/classification") == [b"good"], 5)
    assert pub.alive and pub.dropped == 1
    if outbox:
        assert sub.wait_for(lambda: pub.outbox.depth() == 0, 5), "the bad row is not kept"
    pub.stop([])
    sub.close()


def test_a_stored_row_paho_refuses_is_dropped_and_the_rest_delivered(tmp_path, broker):
    box = Outbox(tmp_path / "outbox.sqlite3", 16_000_000)  # left by an earlier run
    box.add("t/a", b"1", 1, False)
    box.add("t/#/bad", b"2", 1, False)
    box.add("t/a", b"3", 1, False)
    box.close()
    sub = Subscriber(broker.port, "t/#")
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    pub = publisher(broker, tmp_path)
    pub.start()
    assert sub.wait_for(lambda: sub.on("t/a") == [b"1", b"3"], 5), sub.on("t/a")
    # the acks are applied within the sender's next turn (ACK_DELAY_S)
    assert sub.wait_for(lambda: pub.outbox.depth() == 0, 5), pub.outbox.depth()
    assert pub.alive and pub.dropped == 1
    pub.stop([])
    sub.close()


def test_no_message_is_delivered_twice_while_connected(tmp_path, broker):
    """Faster than paho's 10,000-message queue drains: stored rows and new ones take turns,
    which is where a row used to be handed twice."""
    sub = Subscriber(broker.port, "t/#")
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    pub = publisher(broker, tmp_path)
    pub.start()
    assert sub.wait_for(pub.connected.is_set, 5)
    n = 30_000

    def produce(cam: int) -> None:
        for i in range(n // 3):
            pub.publish(Message(f"t/c{cam}", str(i).encode(), 1))
    threads = [threading.Thread(target=produce, args=(c,)) for c in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sub.wait_for(lambda: len(sub.messages) >= n, 60), len(sub.messages)
    time.sleep(0.5)
    counts = collections.Counter((t, p) for t, p, _ in sub.messages)
    assert [k for k, c in counts.items() if c > 1] == []
    for cam in range(3):
        assert [int(p) for p in sub.on(f"t/c{cam}")] == list(range(n // 3)), "in order"
    pub.stop([])
    sub.close()


def test_back_within_the_reconnect_cap_after_a_broker_outage(tmp_path, broker, videos,
                                                             daemon_factory):
    cfg = write_config(tmp_path / "cfg", broker.port, {
        "north": {"source": str(videos["north"]), "loop": True, "fps": 5}},
        {"mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 3}})
    daemon = daemon_factory(cfg)
    sub = Subscriber(broker.port)
    assert sub.wait_for(lambda: sub.on("edgeswin/testdev/status") == [b"online"], 30), daemon.log()
    sub.close()
    broker.stop()
    time.sleep(12)  # paho's old doubling wait would be at 8 s here, then 16 s
    broker.start()
    restarted = time.monotonic()
    sub = Subscriber(broker.port)  # a retained "online" only comes from a reconnected daemon
    assert sub.wait_for(lambda: b"online" in sub.on("edgeswin/testdev/status"), 30), daemon.log()
    took = time.monotonic() - restarted
    print(f"back {took:.2f} s after the broker")
    assert took < 3 + 2, f"back {took:.1f} s after the broker"
    assert daemon.terminate(timeout=10)[0] == 0
    sub.close()


def test_two_clients_with_one_id_are_named_as_the_cause(tmp_path, broker):
    pub = publisher(broker, tmp_path, outbox=False, reconnect_max_s=1)
    pub.start()
    assert Subscriber(broker.port).wait_for(pub.connected.is_set, 5)
    script = textwrap.dedent(f"""
        import time, paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub-{broker.port}",
                        clean_session=False)
        c.reconnect_delay_set(1, 1)
        c.connect("127.0.0.1", {broker.port})
        c.loop_start()
        time.sleep(20)
    """)
    twin = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        import logging
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())
        logging.getLogger("edgeswin.publish.mqtt").addHandler(handler)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("client id" in r for r in records):
            time.sleep(0.2)
        assert any(f"another client is probably using client id 'pub-{broker.port}'" in r
                   for r in records), records
    finally:
        twin.kill()
        twin.wait()
        pub.stop([])


def test_the_packet_size_guard_needs_two_drops_after_the_same_large_message():
    from edgeswin.publish.packet_limit import PacketSizeGuard
    guard = PacketSizeGuard()
    guard.sent("t/state", 200, 0.0)
    guard.sent("t/stats", 5000, 10.0)  # went through: the link stayed up past the window
    guard.sent("t/stats", 9000, 20.0)
    guard.dropped(20.5)
    assert guard.connected().startswith("the broker closed the connection right after "
                                        "t/stats (9000 bytes), larger than any message it "
                                        "took so far (5000 bytes)")
    assert guard.limit is None  # one drop may be a broker restart
    guard.sent("t/state", 200, 30.0)
    guard.dropped(30.1)
    assert guard.connected() is None, "no large message in flight: not the size"
    guard.sent("t/stats", 9100, 40.0)
    guard.dropped(40.2)
    assert "max_packet_size" in guard.connected()
    assert guard.limit == 9000 and not guard.allows(9000) and guard.allows(8999)


def test_the_packet_size_guard_acquits_restarts_and_ordinary_sizes():
    from edgeswin.publish.packet_limit import PacketSizeGuard
    restarts = PacketSizeGuard()
    for t in (0.0, 10.0, 20.0):
        restarts.sent("t/stats", 5000, t)
    for t in (30.0, 60.0, 90.0):  # a big message just before each of three real outages
        restarts.sent("t/stats", 9000, t)
        restarts.dropped(t + 0.1)
        restarts.connect_failed()  # the broker was away: the next attempt failed
        assert restarts.connected() is None
    assert restarts.limit is None
    ordinary = PacketSizeGuard()  # classifications: a few bytes apart, never "too large"
    ordinary.sent("t/c", 500, 0.0)
    for t in (10.0, 20.0, 30.0):
        ordinary.sent("t/c", 510, t)
        ordinary.dropped(t + 0.1)
        assert ordinary.connected() is None
    assert ordinary.limit is None
    coincidence = PacketSizeGuard()  # forgotten once a message of that size goes through
    coincidence.sent("t/x", 10, 0.0)
    coincidence.sent("t/stats", 9000, 10.0)
    coincidence.dropped(10.5)
    assert coincidence.connected()
    coincidence.sent("t/stats", 9000, 20.0)
    coincidence.sent("t/x", 10, 30.0)
    coincidence.sent("t/stats", 9500, 40.0)
    coincidence.dropped(40.5)
    coincidence.connected()
    assert coincidence.limit is None


def test_a_live_subscriber_gets_the_outage_backlog_in_order(tmp_path, broker):
    pub = publisher(broker, tmp_path)
    pub.start()
    assert Subscriber(broker.port).wait_for(pub.connected.is_set, 5)
    for i in range(20):
        pub.publish(Message("t/seq", str(i).encode(), 1))
    time.sleep(0.5)
    broker.stop()
    for i in range(20, 120):  # stored while the broker is away
        pub.publish(Message("t/seq", str(i).encode(), 1))
        time.sleep(0.01)
    broker.start()
    sub = Subscriber(broker.port, "t/#")  # before the publisher is back (it waits >= 1 s)
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    for i in range(120, 160):
        pub.publish(Message("t/seq", str(i).encode(), 1))
        time.sleep(0.02)
    assert sub.wait_for(lambda: b"159" in sub.on("t/seq"), 20), sub.on("t/seq")[-5:]
    got = [int(p) for p in sub.on("t/seq")]
    assert got == sorted(got) and got[-1] == 159 and set(range(20, 160)) <= set(got)
    pub.stop([])
    sub.close()


def test_an_ack_handled_before_publish_returns_still_clears_the_row(tmp_path, broker):
    """paho's network thread can take the broker's ack before the sender has noted which
    outbox row the message was: that row must still leave the disk, or the next start sends
    it again."""
    sub = Subscriber(broker.port, "t/#")
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    pub = publisher(broker, tmp_path)
    handed = pub._client.publish

    def ack_first(*args, **kwargs):  # the sender stalls until the ack has been handled
        info = handed(*args, **kwargs)
        if threading.current_thread().name == "mqtt-sender" and info.rc == 0:
            info.wait_for_publish(5)
        return info
    pub._client.publish = ack_first
    pub.start()
    assert sub.wait_for(pub.connected.is_set, 5)
    for i in range(20):
        pub.publish(Message("t/seq", str(i).encode(), 1))
    assert sub.wait_for(lambda: len(sub.on("t/seq")) == 20, 10), sub.on("t/seq")
    assert sub.wait_for(lambda: pub.outbox.depth() == 0, 5), pub.outbox.depth()
    pub.stop([])
    again = publisher(broker, tmp_path)  # the next start: nothing left to send twice
    assert again.outbox.depth() == 0
    again.start()
    assert sub.wait_for(again.connected.is_set, 5)
    time.sleep(0.5)
    assert [int(p) for p in sub.on("t/seq")] == list(range(20))
    again.stop([])
    sub.close()


def test_a_reconnect_sends_a_stored_retained_message_in_its_turn_not_ahead(tmp_path, broker):
    """A config cleared while the broker was away: a live subscriber gets the stored config
    and then the clear, in order; the clear is not replayed ahead of the config it removes.
    What was acknowledged before is still replayed to a broker that lost it."""
    pub = publisher(broker, tmp_path)
    pub.start()
    watch = Subscriber(broker.port)
    assert watch.wait_for(pub.connected.is_set, 5)
    pub.publish(Message("t/kept", b"k", 1, retain=True))
    assert watch.wait_for(lambda: pub.outbox.depth() == 0, 5)
    watch.close()
    broker.stop()  # no persistence: the broker forgets t/kept
    assert watch.wait_for(lambda: not pub.connected.is_set(), 5)
    pub.publish(Message("t/config", b"A", 1, retain=True))
    pub.publish(Message("t/config", b"", 1, retain=True))
    time.sleep(0.3)
    broker.start()
    sub = Subscriber(broker.port, "t/#")  # before the publisher is back (it waits >= 0.5 s)
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    assert sub.wait_for(lambda: pub.connected.is_set() and pub.outbox.depth() == 0, 20)
    assert sub.wait_for(lambda: len(sub.on("t/config")) >= 2 and sub.on("t/kept"), 5)
    time.sleep(0.5)
    assert sub.on("t/config") == [b"A", b""]
    assert sub.on("t/kept") == [b"k"]
    pub.stop([])
    sub.close()


def test_a_message_over_the_brokers_packet_limit_is_named_and_no_reconnect_loop(tmp_path):
    import logging

    from tests.harness import Broker
    broker = Broker(tmp_path)
    broker.conf.write_text(broker.conf.read_text() + "max_packet_size 4000\n")
    broker.start()
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("edgeswin.publish.mqtt").addHandler(handler)
    sub = Subscriber(broker.port, "t/#")
    pub = publisher(broker, tmp_path, reconnect_max_s=1)
    connects = []
    inner = pub._on_connect
    pub._client.on_connect = lambda *a: (connects.append(time.monotonic()), inner(*a))
    pub.start()
    try:
        assert sub.wait_for(pub.connected.is_set, 5)
        stop = time.monotonic() + 20
        i = 0
        while time.monotonic() < stop and not any("max_packet_size)" in r for r in records):
            pub.publish(Message("t/small", str(i).encode(), 1))
            if i % 10 == 0:  # a large stats message now and then, as the daemon sends
                pub.publish(Message("t/stats", b"s" * 6000))
            i += 1
            time.sleep(0.05)
        assert any("it does not take messages that large (its max_packet_size)" in r
                   for r in records), records
        assert sub.wait_for(pub.connected.is_set, 10)  # back after the drop that taught it
        settled = len(connects)
        for j in range(60):  # 3 s more of the same traffic: the connection now stays up
            pub.publish(Message("t/small", f"after-{j}".encode(), 1))
            if j % 10 == 0:
                pub.publish(Message("t/stats", b"s" * 6000))
            time.sleep(0.05)
        assert sub.wait_for(lambda: b"after-59" in sub.on("t/small"), 10)
        assert len(connects) == settled, "no reconnect loop once the limit is known"
        assert any("not sending t/stats (6014 bytes)" in r for r in records), records
        assert not any("another client" in r for r in records), "not a client-id clash"
    finally:
        logging.getLogger("edgeswin.publish.mqtt").removeHandler(handler)
        pub.stop([])
        sub.close()
        broker.stop()


def test_messages_in_flight_at_a_broker_crash_go_out_again_before_newer_ones(tmp_path, broker):
    """A broker that hangs and dies holds messages it never acknowledged; paho sends them
    again after the reconnect. Stored newer ones must follow them, not overtake them while
    the connection's first moments run (widened here: the connect callback lingers)."""
    import os
    import signal

    pub = publisher(broker, tmp_path)
    first_connect = pub._client.on_connect

    def lingering(*args, **kwargs):
        first_connect(*args, **kwargs)
        time.sleep(0.5)  # paho resends its unacknowledged messages only after this returns
    pub._client.on_connect = lingering
    pub.start()
    early = Subscriber(broker.port, "t/#")
    assert early.wait_for(pub.connected.is_set, 5)
    for i in range(10):
        pub.publish(Message("t/seq", str(i).encode(), 1))
    assert early.wait_for(lambda: len(early.on("t/seq")) == 10 and not pub._rows, 5)
    early.close()
    os.kill(broker.proc.pid, signal.SIGSTOP)  # a hung broker: sent, never acknowledged
    for i in range(10, 30):
        pub.publish(Message("t/seq", str(i).encode(), 1))
    time.sleep(0.5)
    assert pub._rows, "handed to paho, unacknowledged"
    os.kill(broker.proc.pid, signal.SIGKILL)
    broker.proc.wait()
    deadline = time.monotonic() + 5
    while pub.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(30, 60):  # stored while it is away
        pub.publish(Message("t/seq", str(i).encode(), 1))
    broker.start()
    sub = Subscriber(broker.port, "t/#")  # before the publisher is back (it waits >= 0.5 s)
    assert sub.wait_for(lambda: sub.client.is_connected(), 5)
    assert sub.wait_for(lambda: b"59" in sub.on("t/seq"), 20), sub.on("t/seq")
    time.sleep(0.3)
    got = list(dict.fromkeys(int(p) for p in sub.on("t/seq")))
    assert got == list(range(10, 60)), got
    pub.stop([])
    sub.close()
