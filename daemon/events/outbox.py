"""Events not yet acknowledged by the broker, persisted so a restart does not lose them.

An event is written here before it is published and deleted when the broker's PUBACK
arrives; whatever is left at start is published again. Delivery is therefore
at-least-once: a crash between PUBACK and the delete repeats an event, which consumers
recognise by its event_id.

An event the broker refuses (its ACL) is moved to the ``refused`` table: kept for
inspection, counted, never sent again. An event past its maximum age is deleted unsent
(daemon/events/mqtt.py counts it). The file is created 0600.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from daemon.state import move_aside, private_file

log = logging.getLogger(__name__)

FILENAME = "outbox.sqlite3"
MAX_EVENTS = 10_000  # a door offline for weeks should not fill the disk


class Outbox:
    def __init__(self, path: str | Path, max_events: int = MAX_EVENTS):
        self.path = Path(path)
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            log.error("event outbox %s is unreadable (%s); moved it to %s and starting a new one",
                      self.path, exc, move_aside(self.path))
            self._db = self._connect()

    @classmethod
    def open(cls, state_dir: str | Path) -> "Outbox":
        return cls(Path(state_dir) / FILENAME)

    def _connect(self) -> sqlite3.Connection:
        private_file(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)  # one thread at a time
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "event_id TEXT UNIQUE NOT NULL, payload BLOB NOT NULL, created REAL NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS refused (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "event_id TEXT UNIQUE NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL)")
        return db

    def add(self, event_id: str, payload: bytes) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT OR IGNORE INTO outbox (event_id, payload, created) VALUES (?, ?, ?)",
                             (event_id, payload, time.time()))
            excess = len(self) - self.max_events
            if excess > 0:
                log.warning("event outbox full: dropping the %d oldest undelivered event(s)", excess)
                self._db.execute("DELETE FROM outbox WHERE seq IN "
                                 "(SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def remove(self, event_id: str) -> None:
        self._db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))

    def get(self, event_id: str) -> bytes | None:
        row = self._db.execute("SELECT payload FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def refuse(self, event_id: str, reason: str) -> None:
        """Move an event the broker refused to the ``refused`` table (the newest MAX_EVENTS are kept)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT OR IGNORE INTO refused (event_id, payload, reason, at) SELECT event_id, payload, "
                             "?, ? FROM outbox WHERE event_id = ?", (reason, time.time(), event_id))
            self._db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
            self._db.execute("DELETE FROM refused WHERE seq <= (SELECT MAX(seq) FROM refused) - ?", (self.max_events,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def refused(self) -> list[tuple[str, bytes, str]]:
        """(event_id, payload, reason) of the events the broker refused, oldest first."""
        return self._db.execute("SELECT event_id, payload, reason FROM refused ORDER BY seq").fetchall()

    def pending(self) -> list[tuple[str, bytes]]:
        """(event_id, payload) of every undelivered event, oldest first."""
        return self._db.execute("SELECT event_id, payload FROM outbox ORDER BY seq").fetchall()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        self._db.close()
