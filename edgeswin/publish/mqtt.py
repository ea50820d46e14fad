"""Stage 5: MQTT: the daemon's client (and `listen`, the watcher's, imports paho too).

Hands `Message`s to the broker. The last will marks `<root>/status` offline; after every
(re)connect the client publishes `online` and re-sends the retained state it holds (camera
availability, labels, engine), so a restarted broker without persistence is brought up to
date; a retained message still in the outbox goes out with the backlog instead, in order.
Connection trouble is logged once per outage, not once per retry, with a diagnosis
(`connection`) where one can be made.

QoS >= 1 messages go through the durable `Outbox` when there is one: stored first, handed to
paho at once while connected and caught up, kept on disk while the broker is away, and sent in
order (left-overs of a previous run first) by the sender thread after each connect; a row is
deleted when the broker acknowledges it (the sender applies acks, so an ack that beats the
sender's note of its row still finds it). Acks wait for the sender's next message, or at most
`ACK_DELAY_S`: a busy daemon's sender wakes once per message, not twice (and the outbox deletes
acknowledged rows together: `Outbox.settle`).
The session is persistent (clean_session false, a stable client id), so the broker holds QoS 1
traffic for this client too.

The daemon also follows a few topics (`follow`: a fleet's desired state), subscribed again on
every connect; their messages are handed to the follower on paho's thread.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from ..config import DeviceConfig, MqttConfig
from ..topics import at
from .connection import plain_diagnosis, read_password, tls_context, tls_diagnosis
from .message import Message
from .outbox import Outbox
from .packet_limit import PacketSizeGuard, packet_bytes

log = logging.getLogger(__name__)


_PUMP = object()  # a queue item that only asks the sender to hand stored rows on
_ACKS = object()  # a queue item that wakes the sender for an ack it waits on (after a connect)

ACK_DELAY_S = 0.05  # the longest an ack waits for the sender while nothing else wakes it


class Publisher:
    """A paho client with a last will, background reconnect and retained-state replay.

    One sender thread stores and hands every message to paho, in order. A single hand-off
    point is what keeps a row from being handed twice: stored rows left from an outage and
    new ones never race between two threads."""

    def __init__(self, cfg: MqttConfig, root: str, client_id: str, outbox: Outbox | None = None):
        self.cfg = cfg
        self.root = root
        self.client_id = client_id
        self.status_topic = at(root, "status")
        self.outbox = outbox
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   clean_session=False)
        self._client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        if cfg.username:
            self._client.username_pw_set(cfg.username, read_password(cfg))
        if cfg.tls:
            self._client.tls_set_context(tls_context(cfg))
        self._draw_reconnect_delays()
        # Bounded: while the broker is away QoS>0 messages wait in memory, never without limit.
        self._client.max_queued_messages_set(10_000)
        # No in-flight window: with one, paho holds QoS 1 messages past it in its own queue,
        # and a new publish goes out at once whenever an ack frees a slot, ahead of them.
        self._client.max_inflight_messages_set(0)
        self._client.on_connect = self._on_connect
        self._followed: dict[str, Callable[[str, bytes], None]] = {}
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._retained: dict[str, Message] = {}
        # topic -> outbox row of its latest retained message (while stored, it is sent in its
        # turn with the backlog, never replayed ahead of it)
        self._retained_row: dict[str, int] = {}
        # paho mid -> (outbox row, packet bytes), until the broker acks it (the sender's)
        self._rows: dict[int, tuple[int, int]] = {}
        self._handed = 0  # highest outbox row handed to paho (paho resends unacked ones)
        self._backlog = True  # stored rows may wait beyond _handed (left-overs, an outage)
        # After a reconnect paho sends again what the broker never acknowledged, but only once
        # the connect callback has returned: until the first ack on the new connection (which
        # comes after that), nothing newer is handed, or it would overtake them.
        self._connections = 0  # connects so far (paho's thread writes it)
        self._resending = False
        self._held: collections.deque[Message] = collections.deque()  # unstored, while resending
        # (mid, connection) acknowledged by the broker: paho's thread appends, the sender applies
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._sender_thread = threading.Thread(target=self._sender, name="mqtt-sender",
                                               daemon=True)
        self._lock = threading.Lock()
        self._outage_logged = False
        self._drops: list[float] = []  # monotonic times of recent failed disconnects
        self.connected = threading.Event()
        self._sizes = PacketSizeGuard()
        self._told_too_big: set[str] = set()
        self.sent = 0
        self.dropped = 0

    @classmethod
    def for_device(cls, dev: DeviceConfig) -> Publisher:
        """The device's client: its id, and its outbox in the state dir when one is kept."""
        outbox = Outbox(Path(dev.state_dir) / "outbox.sqlite3",
                        int(dev.mqtt.outbox_max_mb * 1e6)) if dev.mqtt.outbox_max_mb else None
        return cls(dev.mqtt, dev.topic_root, dev.mqtt.client_id or f"edgeswin-{dev.device_id}",
                   outbox)

    def _draw_reconnect_delays(self) -> None:
        """paho waits 1 s after a failure, doubling up to the cap. Each daemon draws its own
        first wait and cap once (paho restarts its doubling whenever they are set), so the
        devices of a fleet do not reconnect in step after a broker restart."""
        top = self.cfg.reconnect_max_s
        self._client.reconnect_delay_set(min_delay=random.uniform(0.5, 1.0),
                                         max_delay=random.uniform(max(top / 2, 1.0), top))

    # --- paho callbacks (run in paho's network thread) ------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            with self._lock:
                self._sizes.connect_failed()
            hint = ""
            if "authori" in str(reason_code).lower() or "password" in str(reason_code).lower():
                hint = (" (check mqtt.username and the password: mqtt.password_file, "
                        "mqtt.password_env or the mqtt_password credential)")
            if "identifier" in str(reason_code).lower():
                hint = f" (the broker does not accept client id {self.client_id!r}: mqtt.client_id)"
            self._log_outage(f"broker refused the connection: {reason_code}{hint}")
            return
        log.info("connected to MQTT broker %s:%d", self.cfg.host, self.cfg.port)
        self._connections += 1
        for topic in list(self._followed):
            client.subscribe(topic, qos=1)
        with self._lock:
            why = self._sizes.connected()
            # `online` below is acknowledged on this connection in any case
            self._resending = True
        if why:
            log.warning("mqtt: %s", why)
        self._outage_logged = False
        self.connected.set()
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        with self._lock:
            retained = list(self._retained.values())
            rows = dict(self._retained_row)
            acked = {self._rows[mid][0] for mid, _ in list(self._acks) if mid in self._rows}
        # A message still in the outbox goes out with the backlog, in order: replayed here it
        # would reach the broker ahead of older stored rows of its topic (a stale camera
        # config after a clear). Replayed: those acknowledged before (also those whose ack
        # the sender has yet to apply), or dropped unsent.
        waiting = self.outbox.stored(set(rows.values()) - acked) \
            if self.outbox and rows else set()
        for msg in retained:
            if rows.get(msg.topic) not in waiting and self._fits(msg.topic, msg.payload):
                client.publish(msg.topic, msg.payload, msg.qos, msg.retain)
        self._backlog = True  # whatever waited on disk goes out now, in order
        self._queue.put(_PUMP)

    def _on_message(self, client, userdata, message) -> None:
        handler = self._followed.get(message.topic)
        if handler is not None:
            handler(message.topic, bytes(message.payload))

    def follow(self, topic: str, handler: Callable[[str, bytes], None]) -> None:
        """Hand every message on `topic` (retained ones too) to `handler`, from the next
        connect on (call before `start`)."""
        self._followed[topic] = handler

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # The sender notes a row's mid when paho's publish returns, and the broker's ack can
        # be handled here before that: applied here, it would find no row and leave it on
        # disk, to be sent again at the next start. The sender applies acks in its turn,
        # woken for them only while a reconnect's resend waits on one.
        self._acks.append((mid, self._connections))
        if self._resending:
            self._queue.put(_ACKS)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self._backlog = True  # from now on new rows wait in the outbox
        if not reason_code.is_failure:
            return
        if (not was_connected and not self.cfg.tls and not self._outage_logged
                and (why := plain_diagnosis(self.cfg))):
            self._log_outage(f"cannot connect to the MQTT broker at {self.cfg.host}:"
                             f"{self.cfg.port}: {why}")
            return
        now = time.monotonic()
        suspect = False
        if was_connected:
            with self._lock:
                suspect = self._sizes.dropped(now)  # judged at the next connect
        self._drops = [t for t in self._drops if now - t < 60] + [now]
        if was_connected and not suspect and len(self._drops) >= 3:
            # Mosquitto drops the older of two sessions with one client id, and each daemon
            # reconnects and takes it back: a loop that says only "Unspecified error".
            log.warning("the broker dropped this connection %d times in a minute right after "
                        "it was up (%s): another client is probably using client id %r; give "
                        "each daemon its own device_id or mqtt.client_id", len(self._drops),
                        reason_code, self.client_id)
            self._drops.clear()
            return
        self._log_outage(f"lost the MQTT broker ({reason_code}); reconnecting in the background")

    def _on_connect_fail(self, client, userdata) -> None:
        with self._lock:
            self._sizes.connect_failed()  # the broker was away: no message is to blame
        if self._outage_logged:
            return
        why = tls_diagnosis(self.cfg) if self.cfg.tls else None
        self._log_outage(f"cannot connect to the MQTT broker at {self.cfg.host}:{self.cfg.port}"
                         f"{': ' + why if why else ''}; running on and retrying in the background")

    def _log_outage(self, text: str) -> None:
        if not self._outage_logged:
            log.warning("%s", text)
            self._outage_logged = True

    # --- the pipeline's side -----------------------------------------------------------
    def start(self) -> None:
        if self.outbox is not None:
            left = self.outbox.depth()
            if left:
                log.info("outbox: %d message(s) left from before; sending them first", left)
        self._sender_thread.start()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self._client.loop_start()

    def publish(self, msg: Message) -> None:
        """Queue a message: the sender thread stores and sends it, in this order, so the
        inference loop never waits on the disk or the socket."""
        self._queue.put(msg)

    @property
    def alive(self) -> bool:
        return self._sender_thread.is_alive()

    @property
    def _pump_due(self) -> bool:
        return self._backlog and self.connected.is_set() and self.outbox is not None \
            and not self._resending

    def _sender(self) -> None:
        while True:
            pumping = self._pump_due
            try:
                # With a backlog to send, look at the queue without waiting; else sleep on it
                # (waking now and then: paho's own queue may have had no room), not longer
                # than ACK_DELAY_S while acks wait or are awaited.
                awaited = self._acks or (self.outbox is not None and self.outbox.settling) \
                    or (self._rows and self.connected.is_set())
                item = self._queue.get(timeout=0.0 if pumping else ACK_DELAY_S if awaited else 1.0)
            except queue.Empty:
                item = _PUMP
            if item is None:
                self._apply_acks(resend=False)
                return
            try:
                if item is not _PUMP and item is not _ACKS:
                    self._send(item)
                self._apply_acks(resend=True)
                if self._pump_due:
                    self._pump()
            except Exception:  # never lose the sender: the next message must still go out
                self.dropped += 1
                log.exception("mqtt: could not send %s; carrying on",
                              getattr(item, "topic", "stored messages"))

    def _resent(self) -> None:
        """The first ack on this connection: paho has sent again what was in flight, so what
        waited behind it may go now, in order."""
        self._resending = False
        while self._held:
            self._publish_now(self._held.popleft())

    def _pump(self, limit: int = 200) -> None:
        """Hand up to `limit` stored rows after the last handed one; clear the backlog once
        none is left."""
        rows = self.outbox.rows(after=self._handed, limit=limit)
        for row in rows:
            if not self.connected.is_set():
                return
            if not self._hand(row.id, row.topic, row.payload, row.qos, row.retain):
                time.sleep(0.05)  # paho's queue is full: let the socket catch up
                return
        if not rows:
            self._backlog = False

    def _fits(self, topic: str, payload: bytes) -> bool:
        """Note the message's size, or say once per topic that the broker would not take it."""
        size = packet_bytes(topic, payload)
        with self._lock:  # the sender and paho's thread (retained replay) both send
            if self._sizes.allows(size):
                self._sizes.sent(topic, size, time.monotonic())
                return True
        if topic not in self._told_too_big:
            self._told_too_big.add(topic)
            log.error("mqtt: not sending %s (%d bytes): the broker's limit is below %d bytes",
                      topic, size, self._sizes.limit)
        return False

    def _apply_acks(self, resend: bool) -> None:
        """Every ack so far: its rows off the outbox in one go (and what is due deleted);
        the first ack on this connection lets what waited behind the resend go (`resend`)."""
        rows, this_connection = [], False
        with self._lock:
            while self._acks:
                mid, connection = self._acks.popleft()
                row, size = self._rows.pop(mid, (None, 0))
                self._sizes.took(size)  # acknowledged: the broker takes messages this large
                if row is not None:
                    rows.append(row)
                this_connection |= connection == self._connections
        if self.outbox is not None:
            self.outbox.remove(*rows)
        if resend and this_connection and self._resending:
            self._resent()

    def _discard(self, row: int) -> None:
        """A stored row that can never be sent: off the disk, counted, and passed over."""
        self.outbox.remove(row)
        self.dropped += 1
        self._handed = max(self._handed, row)

    def _hand(self, row: int, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Give a stored row to paho; False when paho's queue has no room for it now."""
        if not self._fits(topic, payload):  # it would only close the connection again
            self._discard(row)
            return True
        try:
            info = self._client.publish(topic, payload, qos, retain)
        except ValueError as exc:  # paho refuses it (a wildcard, a size): it never will take it
            log.error("mqtt: dropping the message to %r: %s", topic, exc)
            self._discard(row)
            return True
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return False
        with self._lock:
            self._rows[info.mid] = (row, packet_bytes(topic, payload))
        self._handed = max(self._handed, row)
        self.sent += 1
        return True

    def _send(self, msg: Message) -> None:
        row = None
        if msg.qos and self.outbox is not None:
            row = self.outbox.add(msg.topic, msg.payload, msg.qos, msg.retain)
        if msg.retain:
            with self._lock:  # one step, so a connect in between sees the message and its row
                self._retained[msg.topic] = msg
                if row is None:
                    self._retained_row.pop(msg.topic, None)
                else:
                    self._retained_row[msg.topic] = row
        if row is not None:
            if (not self._backlog and not self._resending and self.connected.is_set()
                    and self._hand(row, msg.topic, msg.payload, msg.qos, msg.retain)):
                return
            self._backlog = True  # stored: handed in its turn
            return
        if self._resending:
            self._held.append(msg)
            return
        self._publish_now(msg)

    def _publish_now(self, msg: Message) -> None:
        """An unstored message straight to paho (which queues QoS > 0 while disconnected)."""
        if not self._fits(msg.topic, msg.payload):
            self.dropped += 1
            return
        info = self._client.publish(msg.topic, msg.payload, msg.qos, msg.retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and msg.qos):
            self.sent += 1  # QoS>0 without a connection is queued by paho and sent on reconnect
        else:
            self.dropped += 1

    def stop(self, final: list[Message], timeout: float = 2.0) -> None:
        """Publish the final retained messages and `offline`, then disconnect cleanly. What the
        broker has not acknowledged by then stays in the outbox for the next start."""
        for msg in final:
            self.publish(msg)
        deadline = time.monotonic() + timeout
        if self.outbox is not None:
            # Let the sender hand what is stored while the broker is there to take it.
            while (self._sender_thread.is_alive() and self.connected.is_set()
                   and time.monotonic() < deadline
                   and (not self._queue.empty() or self._backlog or self._unacked())):
                time.sleep(0.02)
        self._queue.put(None)  # the sender stops after everything queued before it
        if self._sender_thread.is_alive():
            self._sender_thread.join(max(deadline - time.monotonic(), 0.2))
        if self.connected.is_set():
            info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        if not self._sender_thread.is_alive():  # acks that came after the sender stopped
            self._apply_acks(resend=False)
        if self.outbox is not None:
            self.outbox.close()

    def _unacked(self) -> bool:
        with self._lock:
            return bool(self._rows)
