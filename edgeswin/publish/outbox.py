"""A durable outbox for QoS >= 1 messages: SQLite in the state dir.

Every QoS >= 1 message is written here before it goes to the MQTT client and deleted when the
broker acknowledges it, so a broker outage, a daemon crash or a power cut loses nothing that
was stored: the next start replays what is left, in order, before anything new. Hands on rows
(`Row`) in insertion order.

An acknowledged row (`remove`) is gone at once from what this hands on (`rows`, `stored`,
`depth`), and deleted from the file together with others (`settle`): once `SETTLE_ROWS` wait
or the oldest has waited `SETTLE_S`. A delete is a transaction of its own, so a busy daemon
pays one for many acks; a crash in between leaves those rows to be sent once more at the next
start, which QoS 1 allows.

The size bound covers everything on disk: the database (SQLite's own `max_page_count`), its
write-ahead log (checkpointed and truncated at a fixed size) and its shared-memory index. An
insert that finds the file full (our bound, or a really full disk: both are SQLITE_FULL) drops
the oldest rows, counts them, and retries. If the database cannot be written at all (read-only
or missing state dir, a disk with no room and nothing left to drop), the outbox turns
*degraded*: the daemon keeps classifying and publishing from memory, the stats say so, rows
already stored stay for a later start, and the next successful write turns it back to ok.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PAGE_SIZE = 4096
SHM_BYTES = 32 * 1024  # the WAL index (-shm) SQLite keeps beside the database
REOPEN_S = 10.0  # a database that could not be opened is tried again this often
SETTLE_ROWS = 100  # acknowledged rows deleted together once this many wait
SETTLE_S = 0.5  # or once the oldest of them has waited this long


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    def __init__(self, path: Path, max_bytes: int):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.dropped = 0
        self.degraded: str | None = None  # why, when the outbox cannot be written
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._retry_open_at = 0.0
        self._quiet_until = 0.0
        self._acked: set[int] = set()  # acknowledged, still in the file until `settle`
        self._acked_since = 0.0
        self._open()

    def _open(self) -> None:
        """Open (or create) the database inside the byte budget: the write-ahead log is
        checkpointed every `wal_pages` and truncated back to that size, and the database gets
        what is left after the log (twice over, for the transaction that crosses the mark) and
        SQLite's shared-memory index."""
        # A short log: 256 KiB at most, so a budget or a disk of one MiB still has room.
        wal_pages = max(16, min(64, self.max_bytes // PAGE_SIZE // 16))
        db_pages = max((self.max_bytes - 2 * wal_pages * PAGE_SIZE - SHM_BYTES) // PAGE_SIZE, 16)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")  # appends are cheap, readers never block
            db.execute("PRAGMA synchronous=NORMAL")  # survives a crash; a power cut may lose
            # the last transactions, never corrupt the file
            db.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
            db.execute(f"PRAGMA journal_size_limit={wal_pages * PAGE_SIZE}")
            db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                       " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,"
                       " retain INTEGER NOT NULL)")
            db.execute(f"PRAGMA max_page_count={db_pages}")
            self._db = db
        except (OSError, sqlite3.Error) as exc:
            self._degrade(f"cannot open {self.path}: {exc}")
            self._retry_open_at = time.monotonic() + REOPEN_S

    def _degrade(self, why: str) -> None:
        if self.degraded is None:
            log.error("outbox degraded (%s): publishing from memory only; nothing already "
                      "stored is lost", why)
        self.degraded = why

    def _recovered(self) -> None:
        if self.degraded is not None:
            log.warning("outbox recovered: storing messages again (was: %s)", self.degraded)
            self.degraded = None

    def add(self, topic: str, payload: bytes, qos: int, retain: bool) -> int | None:
        """Store a message; its row id, or None when degraded. Every call tries again, so
        the outbox recovers by itself once the disk has room or the directory is writable."""
        if self._db is None:
            if time.monotonic() < self._retry_open_at:
                return None
            self._open()
            if self._db is None:
                return None
        with self._lock:
            for _ in range(64):
                try:
                    cur = self._db.execute("INSERT INTO outbox (topic, payload, qos, retain) "
                                           "VALUES (?, ?, ?, ?)", (topic, payload, qos, retain))
                    self._recovered()
                    return cur.lastrowid
                except sqlite3.OperationalError as exc:
                    if "full" not in str(exc) or not self._drop_oldest(64):
                        self._degrade(str(exc))
                        return None
                except sqlite3.Error as exc:
                    self._degrade(str(exc))
                    return None
            self._degrade("full: cannot make room")
            return None

    def footprint(self) -> int:
        """Bytes on disk: the database, its write-ahead log and its shared-memory index."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.stat(f"{self.path}{suffix}").st_size
            except OSError:
                pass
        return total

    def _drop_oldest(self, n: int) -> bool:
        self._delete_acked()  # room that needs no message dropped
        try:
            cur = self._db.execute("DELETE FROM outbox WHERE id IN "
                                   "(SELECT id FROM outbox ORDER BY id LIMIT ?)", (n,))
        except sqlite3.Error:
            return False
        if cur.rowcount:
            # Acknowledged rows the delete above could not take may have gone with the oldest:
            # delivered, not dropped.
            low = self._db.execute("SELECT MIN(id) FROM outbox").fetchone()[0]
            kept = {i for i in self._acked if low is not None and i >= low}
            self.dropped += cur.rowcount - (len(self._acked) - len(kept))
            self._acked = kept
            now = time.monotonic()
            if now >= self._quiet_until:  # a long outage drops all the time: a line a minute
                log.warning("outbox full: dropping the oldest messages (%d so far)",
                            self.dropped)
                self._quiet_until = now + 60
        return cur.rowcount > 0

    def remove(self, *row_ids: int) -> None:
        """These rows are acknowledged (or can never be sent): gone from `rows`, `stored` and
        `depth` now, deleted from the file at the next `settle` that finds it due (this one,
        or a later one)."""
        if self._db is None:
            return
        if row_ids:
            with self._lock:
                if not self._acked:
                    self._acked_since = time.monotonic()
                self._acked.update(row_ids)
        self.settle()

    @property
    def settling(self) -> bool:
        """Acknowledged rows wait to be deleted (call `settle` now and then)."""
        return bool(self._acked)

    def settle(self, now: bool = False) -> None:
        """Delete the acknowledged rows once enough wait or the oldest waited long enough
        (or `now`)."""
        if not self._acked or self._db is None:
            return
        with self._lock:
            if now or len(self._acked) >= SETTLE_ROWS \
                    or time.monotonic() - self._acked_since >= SETTLE_S:
                self._delete_acked()

    def _delete_acked(self) -> None:
        """With the lock held: the acknowledged rows out of the file, 500 per statement."""
        ids = sorted(self._acked)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            try:
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(part))})",
                                 part)
            except sqlite3.Error as exc:  # they stay and are tried again at the next settle
                self._degrade(str(exc))
                return
            self._acked.difference_update(part)

    def rows(self, after: int = 0, limit: int = 500) -> list[Row]:
        if self._db is None:
            return []
        with self._lock:
            cur = self._db.execute("SELECT id, topic, payload, qos, retain FROM outbox WHERE "
                                   "id > ? ORDER BY id LIMIT ?", (after, limit + len(self._acked)))
            return [Row(i, t, bytes(p), q, bool(r)) for i, t, p, q, r in cur.fetchall()
                    if i not in self._acked][:limit]

    def stored(self, row_ids: set[int]) -> set[int]:
        """Which of these rows are still on disk (not acknowledged, not dropped)."""
        if self._db is None or not row_ids:
            return set()
        marks = ",".join("?" * len(row_ids))
        with self._lock:
            try:
                cur = self._db.execute(f"SELECT id FROM outbox WHERE id IN ({marks})",
                                       tuple(row_ids))
            except sqlite3.Error:
                return set()
            return {i for (i,) in cur.fetchall()} - self._acked

    def depth(self) -> int:
        if self._db is None:
            return 0
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - len(self._acked)

    def state(self) -> dict:
        return {"state": "degraded" if self.degraded else "ok", "why": self.degraded,
                "depth": self.depth(), "dropped": self.dropped, "path": str(self.path),
                "bytes": self.footprint()}

    def close(self) -> None:
        self.settle(now=True)
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None
