"""Learns a broker's packet size limit from how it behaves (MQTT 3.1.1 has no way to ask).

A broker with `max_packet_size` below a message simply closes the connection when that message
arrives; the client only hears "Unspecified error", reconnects, and the next such message (a
large stats message every interval, or a stored one replayed after each reconnect) closes it
again. This guard watches which messages were the largest in flight when a working connection
dropped and the broker took the client back at once (a broker that was really down fails the
next attempt and acquits the message). Twice after messages of the same size or larger, well
above any the broker took, and it names the message and its size and from then on refuses
messages that large, so the connection stays up for the rest.
Pure bookkeeping with the caller's clock, so it is tested without a broker."""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 1.0  # a message this recent when the broker hangs up is a suspect
MARGIN = 1.25  # ... if it is this much larger than any the broker took: ordinary messages
# differ by a few bytes, and must never be mistaken for too large
HEADER_BYTES = 7  # fixed header, topic length and packet id of a PUBLISH, at most


@dataclass
class _Sent:
    t: float
    topic: str
    size: int


def packet_bytes(topic: str, payload: bytes) -> int:
    return len(topic.encode()) + len(payload) + HEADER_BYTES


class PacketSizeGuard:
    def __init__(self) -> None:
        self.largest_ok = 0  # the largest message that went through with the link staying up
        self.limit: int | None = None  # refuse messages of this many bytes or more
        self._recent: list[_Sent] = []  # larger than largest_ok, not yet judged
        self._strike: _Sent | None = None  # the suspect of the last unexplained drop
        self._pending: _Sent | None = None  # the suspect of a drop, until the next connect

    def allows(self, size: int) -> bool:
        return self.limit is None or size < self.limit

    def took(self, size: int) -> None:
        """The broker acknowledged a message of this size."""
        self.largest_ok = max(self.largest_ok, size)

    def sent(self, topic: str, size: int, now: float) -> None:
        self._judge(now)
        if size > self.largest_ok:
            self._recent.append(_Sent(now, topic, size))

    def _judge(self, now: float) -> None:
        """Messages older than the window went through: the broker took them."""
        keep = []
        for s in self._recent:
            if now - s.t > WINDOW_S:
                self.largest_ok = max(self.largest_ok, s.size)
                if self._strike is not None and s.size >= self._strike.size:
                    self._strike = None  # that size went through after all: a coincidence
            else:
                keep.append(s)
        self._recent = keep

    def dropped(self, now: float) -> bool:
        """A working connection was closed by the broker: note the suspect and say whether
        there is one. It is judged at the next connect: a broker that was really down (the
        next attempt fails) acquits it."""
        suspects = [s for s in self._recent if now - s.t <= WINDOW_S
                    and self.largest_ok and s.size >= self.largest_ok * MARGIN]
        self._recent = []
        self._pending = max(suspects, key=lambda s: s.size) if suspects else None
        return self._pending is not None

    def connect_failed(self) -> None:
        self._pending = None

    def connected(self) -> str | None:
        """The broker took us back at once: what to tell the user about the suspect."""
        biggest, self._pending = self._pending, None
        if biggest is None:
            return None
        if self._strike is None:
            self._strike = biggest
            return (f"the broker closed the connection right after {biggest.topic} "
                    f"({biggest.size} bytes), larger than any message it took so far "
                    f"({self.largest_ok} bytes), and took the client back at once: if this "
                    "repeats, its max_packet_size is smaller than that")
        size = min(biggest.size, self._strike.size)
        self.limit = size if self.limit is None else min(self.limit, size)
        self._strike = None
        return (f"the broker closed the connection again right after a message of {size} "
                f"bytes or more ({biggest.topic}): it does not take messages that large (its "
                f"max_packet_size). Messages of {self.limit} bytes or more are now dropped "
                f"and counted; raise max_packet_size on the broker to send them")
