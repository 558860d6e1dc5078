"""The gallery: the device's local cache of enrolled people, persisted in SQLite.

Everything is kept in memory for matching and written through to an SQLite file in
WAL mode, one transaction per change, so a power cut leaves either the old or the new
record and never half of one. The file is loaded at start, which is what lets a door
recognise people while the broker is unreachable or after a reboot with no network.

The file also keeps the newest site manifest the device accepted (daemon/protocol/manifest.py),
as opaque JSON: its sequence is what lets a door refuse an older manifest after a restart.
The file is created 0600: it holds biometric data.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import numpy as np

from daemon.protocol.person import PersonRecord
from daemon.state import move_aside, private_file

log = logging.getLogger(__name__)

FILENAME = "gallery.sqlite3"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    person_id  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    model_id   TEXT NOT NULL,
    updated_at REAL NOT NULL,
    count      INTEGER NOT NULL,   -- number of encodings
    dim        INTEGER NOT NULL,   -- embedding size
    encodings  BLOB NOT NULL       -- count x dim little-endian float32, row-major
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifest (
    model_id   TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    body       TEXT NOT NULL       -- daemon.protocol.manifest.Manifest.to_dict() as JSON
);
"""


def replaces(new: PersonRecord, old: PersonRecord) -> bool:
    """Whether ``new`` may replace the stored ``old`` record of the same person.

    Newer versions win. One exception: an enrolled (not revoked) record of one model never
    blocks a record of another model. A device syncs only the records of the model it runs,
    so after a model upgrade the old model's record must give way to the new model's one,
    even when the server made that one earlier. A tombstone is never overridden this way.
    """
    if new.version > old.version:
        return True
    return not old.deleted and not new.deleted and new.model_id != old.model_id


class GalleryError(RuntimeError):
    """The gallery file cannot be opened or written."""


def _row_to_record(row) -> PersonRecord:
    person_id, version, deleted, name, model_id, updated_at, count, dim, blob = row
    encodings = np.frombuffer(blob, dtype="<f4")
    if encodings.size != count * dim:
        raise ValueError(f"{count}x{dim} encodings declared but {encodings.size} values stored")
    return PersonRecord(person_id=person_id, version=int(version), deleted=bool(deleted), name=name,
                        model_id=model_id, updated_at=float(updated_at),
                        encodings=encodings.reshape(count, dim).astype(np.float32))


class Gallery:
    """People known to this device. Not thread-safe: use it from one thread at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.generation = 0  # bumped on every change, so the matcher knows to rebuild
        self._records: dict[str, PersonRecord] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            # A corrupt cache is moved aside, never deleted: starting empty is safe for a
            # door (nobody unlocks) and the broker's retained records refill it.
            log.error("gallery %s is unreadable (%s); moved it to %s and starting empty",
                      self.path, exc, move_aside(self.path))
            self._db = self._connect()
        except OSError as exc:
            raise GalleryError(f"cannot open gallery {self.path}: {exc}") from exc
        self._load()

    @classmethod
    def open(cls, state_dir: str | Path) -> "Gallery":
        return cls(Path(state_dir) / FILENAME)

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: start() and the main loop may be different threads;
        # the gallery is still used by one thread at a time.
        private_file(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)  # explicit BEGIN/COMMIT
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # writes are rare; a revocation must survive a power cut
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.execute("PRAGMA quick_check").fetchone()  # raises DatabaseError on a corrupt file
        return db

    def _load(self) -> None:
        for row in self._db.execute("SELECT person_id, version, deleted, name, model_id, updated_at, "
                                    "count, dim, encodings FROM persons"):
            try:
                record = _row_to_record(row)
            except ValueError as exc:
                log.error("gallery: skipping stored person %r: %s", row[0], exc)
                continue
            self._records[record.person_id] = record
        self.generation += 1
        log.info("gallery %s: %d person(s), %d tombstone(s)", self.path, len(self),
                 sum(r.deleted for r in self._records.values()))

    def apply(self, record: PersonRecord) -> bool:
        """Store a record if it is strictly newer than what we have (see replaces); True if applied."""
        current = self._records.get(record.person_id)
        if current is not None and not replaces(record, current):
            return False
        encodings = np.ascontiguousarray(record.encodings, dtype="<f4")
        count, dim = (encodings.shape if encodings.ndim == 2 else (0, 0))
        try:
            self._db.execute("BEGIN IMMEDIATE")
            # Re-check inside the transaction: another process may share the file.
            stored = self._db.execute("SELECT version, deleted, model_id FROM persons WHERE person_id = ?",
                                      (record.person_id,)).fetchone()
            if stored is not None and not replaces(record, PersonRecord(
                    person_id=record.person_id, version=stored[0], deleted=bool(stored[1]), model_id=stored[2])):
                self._db.execute("ROLLBACK")
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO persons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.person_id, record.version, int(record.deleted), record.name, record.model_id,
                 record.updated_at, count, dim, encodings.tobytes()))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise GalleryError(f"cannot write person {record.person_id!r} to {self.path}: {exc}") from exc
        self._records[record.person_id] = record
        self.generation += 1
        return True

    def load_manifest(self, model_id: str) -> dict | None:
        """The stored manifest of ``model_id`` (Manifest.to_dict()), or None."""
        row = self._db.execute("SELECT body FROM manifest WHERE model_id = ?", (model_id,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except ValueError as exc:
            log.error("gallery: stored manifest of %s is unreadable (%s); waiting for a new one", model_id, exc)
            return None

    def save_manifest(self, model_id: str, seq: int, body: dict) -> bool:
        """Store a manifest if its sequence is higher than the stored one's; True if stored."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            stored = self._db.execute("SELECT seq FROM manifest WHERE model_id = ?", (model_id,)).fetchone()
            if stored is not None and stored[0] >= seq:
                self._db.execute("ROLLBACK")
                return False
            self._db.execute("INSERT OR REPLACE INTO manifest VALUES (?, ?, ?)", (model_id, seq, json.dumps(body)))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise GalleryError(f"cannot write the manifest to {self.path}: {exc}") from exc
        return True

    def get(self, person_id: str) -> PersonRecord | None:
        """The stored record (possibly a tombstone), or None if we never heard of the person."""
        return self._records.get(person_id)

    def people(self) -> list[PersonRecord]:
        """Enrolled (not revoked) people, sorted by id."""
        return sorted((r for r in self._records.values() if not r.deleted), key=lambda r: r.person_id)

    def all_records(self) -> list[PersonRecord]:
        """People and tombstones."""
        return sorted(self._records.values(), key=lambda r: r.person_id)

    def __len__(self) -> int:
        return sum(not r.deleted for r in self._records.values())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
