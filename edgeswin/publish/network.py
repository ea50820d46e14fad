"""paho's network side, driven from the MQTT sender's own thread instead of a thread of paho's.

With paho's thread, each message costs two more wake-ups: the sender's `publish` wakes paho's
thread through its socketpair to write the packet, and the broker's ack wakes it again to read
it. Driven from the sender, a `publish` writes to the socket at once (paho does so when no thread
of its own runs), and what the broker sent is read on the sender's next turn, the acks of many
messages together.

Hands the sender `step`: connect when due, read what arrived, write what waits and keep the
connection alive (paho's keepalive), all without waiting. Connecting is the one thing that can
wait (a host that drops packets holds a TCP connect, a TLS handshake takes round trips): each
attempt runs on a short-lived thread, and while it runs (`busy`) the sender stores messages but
never calls paho. paho's callbacks (connect, messages, acks, disconnect) run in `step`, on the
sender's thread. Attempts after a failure or a lost connection wait as paho's own loop waits:
a first wait, doubling up to a cap, from the start again after a connect. Each daemon draws its
own first wait (0.5-1 s) and cap (half to all of `reconnect_max_s`) once, so the devices of a
fleet do not reconnect in step after a broker restart.
"""

from __future__ import annotations

import logging
import random
import select
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Network:
    def __init__(self, client, reconnect_max_s: float, on_connect_fail: Callable[[], None],
                 wake: Callable[[], None]):
        self.client = client
        self._min = random.uniform(0.5, 1.0)
        self._max = random.uniform(max(reconnect_max_s / 2, 1.0), reconnect_max_s)
        self._delay: float | None = None  # the last wait between attempts; None after a connect
        self._next = float("inf")  # no attempt before `start`
        self._on_connect_fail, self._wake = on_connect_fail, wake
        self._connecting: threading.Thread | None = None
        self._had_socket = False
        self._answered = False  # the broker answered this connection's CONNECT

    def start(self, host: str, port: int, keepalive: int) -> None:
        self.client.connect_async(host, port, keepalive)
        self._next = 0.0

    @property
    def busy(self) -> bool:
        """A connect attempt runs: paho belongs to it until it ends."""
        return self._connecting is not None and self._connecting.is_alive()

    @property
    def pressing(self) -> bool:
        """The socket could not take everything, or a connect awaits the broker's answer: the
        sender should look again soon."""
        return not self.busy and self.client.socket() is not None and (
            self.client.want_write() or not self._answered)

    def connected(self) -> None:
        """The broker took the connection: the next outage waits the first wait again."""
        self._delay, self._answered = None, True

    def step(self) -> None:
        """Connect when due; else read, write and keep alive without waiting."""
        if self.busy:
            return
        self._connecting = None
        sock = self.client.socket()
        if sock is None:
            if self._had_socket:  # lost since the last turn: wait before the next attempt
                self._had_socket = False
                self._schedule()
            if time.monotonic() >= self._next:
                self._answered = False
                self._connecting = threading.Thread(target=self._connect, name="mqtt-connect",
                                                    daemon=True)
                self._connecting.start()
            return
        self._had_socket = True
        pending = sock.pending() if hasattr(sock, "pending") else 0  # TLS: bytes already read
        try:
            readable = select.select([sock], [], [], 0)[0]
        except (OSError, ValueError):  # closed under us: the read says so
            readable = [sock]
        if readable or pending:
            self.client.loop_read()
        if self.client.socket() is not None and self.client.want_write():
            self.client.loop_write()  # what a callback queued; a full socket keeps the rest
        if self.client.socket() is not None:
            self.client.loop_misc()  # keepalive: a ping when due, a dead link closed

    def close(self, timeout: float) -> None:
        """Let a connect attempt in progress end (it holds paho), up to `timeout`."""
        self._next = float("inf")
        if self._connecting is not None:
            self._connecting.join(timeout)

    def _schedule(self) -> None:
        self._delay = self._min if self._delay is None else min(self._delay * 2, self._max)
        self._next = time.monotonic() + self._delay

    def _connect(self) -> None:  # the mqtt-connect thread
        try:
            self.client.reconnect()
        except Exception as exc:  # OSError, TLS, a name that does not resolve: tried again later
            log.debug("mqtt: connect attempt failed: %s", exc)
            self._schedule()
            try:
                self._on_connect_fail()
            except Exception:
                log.exception("mqtt: connect-failure handling failed")
        finally:
            self._wake()  # the sender reads the broker's answer, or notes the failure
