"""The enrollment server's own store: everything it ever published, so the broker is a cache.

One SQLite file (``<server.state_dir>/enrollment.sqlite3``, WAL, synchronous=FULL, one
transaction per change, so a crash or power cut leaves the old or the new state, never
half of one). ``facegate enroll / remove / reembed`` write it before they publish, and
``facegate server`` makes the broker hold what it says (daemon/server/service.py).

    published   one row per record or tombstone ever published: person, kind, model,
                version, name, number of encodings, topic, SHA-256 of the signed message,
                the photos' SHA-256 (their files live in --keep-photos), source, time.
                The signed message itself is kept only while it is current: a
                superseded record's encodings, and every record of a revoked person,
                are erased (the row stays, so versions keep going up).
    manifests   the current signed manifest per site and model (daemon/protocol/manifest.py)
    manifest_pages  its pages

What "current" means is the devices' rule: the newest record per topic, unless the
person's newest tombstone is newer; and the newest tombstone per person.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.protocol import topics
from daemon.protocol.manifest import Entry, SignedManifest, build_manifest
from daemon.server.publish import version_now
from daemon.state import private_dir, private_file

log = logging.getLogger(__name__)

FILENAME = "enrollment.sqlite3"
RECORD, TOMBSTONE = "record", "tombstone"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    site         TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('record', 'tombstone')),
    model_id     TEXT NOT NULL,      -- '' for a tombstone (it revokes every model)
    version      INTEGER NOT NULL,
    name         TEXT NOT NULL,
    encodings    INTEGER NOT NULL,
    topic        TEXT NOT NULL,
    sha256       TEXT NOT NULL,      -- of the signed message
    payload      BLOB,               -- the signed message while it is current, else NULL
    photos       TEXT NOT NULL,      -- JSON list of the accepted photos' SHA-256
    source       TEXT NOT NULL,      -- enroll, remove, reembed or import (found on the broker)
    published_at REAL NOT NULL,
    UNIQUE (topic, version)
);
CREATE INDEX IF NOT EXISTS published_person ON published (site, person_id);
CREATE TABLE IF NOT EXISTS manifests (
    site       TEXT NOT NULL,
    model_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    issued_at  REAL NOT NULL,
    expires_at REAL NOT NULL,
    top        BLOB NOT NULL,
    PRIMARY KEY (site, model_id)
);
CREATE TABLE IF NOT EXISTS manifest_pages (
    site     TEXT NOT NULL,
    model_id TEXT NOT NULL,
    page     INTEGER NOT NULL,
    payload  BLOB NOT NULL,
    PRIMARY KEY (site, model_id, page)
);
"""


class StoreError(RuntimeError):
    """The store cannot be opened or written."""


@dataclass(frozen=True)
class Publication:
    """One record or tombstone as published (or about to be)."""

    site: str
    person_id: str
    kind: str                 # RECORD or TOMBSTONE
    model_id: str
    version: int
    topic: str
    payload: bytes
    name: str = ""
    encodings: int = 0
    photos: tuple[str, ...] = ()
    source: str = "enroll"

    @classmethod
    def of(cls, site: str, topic: str, payload: bytes, record, photos: Iterable[str] = (),
           source: str = "enroll") -> "Publication":
        """From a signed message and its parsed PersonRecord (daemon.protocol.records)."""
        return cls(site, record.person_id, TOMBSTONE if record.deleted else RECORD, record.model_id, record.version,
                   topic, payload, record.name, len(record.encodings), tuple(photos), source)


@dataclass(frozen=True)
class Current:
    """A message that the broker should hold retained."""

    person_id: str
    kind: str
    model_id: str
    version: int
    name: str
    encodings: int
    topic: str
    payload: bytes
    published_at: float


class EnrollmentStore:
    """Not thread-safe: one thread at a time (the server's main loop, or a command)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            private_file(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a revocation must survive a power cut
            self._db.execute("PRAGMA busy_timeout=10000")  # `facegate enroll` next to a running server
            self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA quick_check").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the enrollment store {self.path}: {exc} (restore it from a backup, "
                             "see docs/security.md)") from exc

    @classmethod
    def open(cls, state_dir: str | Path) -> "EnrollmentStore":
        """The store in ``state_dir``, created 0700 (refused if others can write to it)."""
        return cls(private_dir(state_dir) / FILENAME)

    def close(self) -> None:
        self._db.close()

    def _write(self, work):
        try:
            self._db.execute("BEGIN IMMEDIATE")
            result = work()
            self._db.execute("COMMIT")
            return result
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot write the enrollment store {self.path}: {exc}") from exc
            raise

    # ---------------------------------------------------------------- records and tombstones
    def add(self, *publications: Publication) -> None:
        """Record publications (one transaction), erasing what they make obsolete."""
        def work():
            for p in publications:
                self._db.execute(
                    "INSERT INTO published (site, person_id, kind, model_id, version, name, encodings, topic, "
                    "sha256, payload, photos, source, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (p.site, p.person_id, p.kind, p.model_id, p.version, p.name, p.encodings, p.topic,
                     hashlib.sha256(p.payload).hexdigest(), p.payload, json.dumps(list(p.photos)), p.source,
                     time.time()))
                # Superseded on its topic, or revoked: the encodings go, the row stays.
                self._db.execute("UPDATE published SET payload = NULL WHERE topic = ? AND version < ?",
                                 (p.topic, p.version))
                if p.kind == TOMBSTONE:
                    self._db.execute("UPDATE published SET payload = NULL WHERE site = ? AND person_id = ? AND "
                                     "kind = 'record' AND version < ?", (p.site, p.person_id, p.version))
        self._write(work)

    def highest_version(self, site: str, person_id: str) -> int:
        """The highest version ever published for the person (any kind, any model)."""
        row = self._db.execute("SELECT MAX(version) FROM published WHERE site = ? AND person_id = ?",
                               (site, person_id)).fetchone()
        return row[0] or 0

    def current(self, site: str, person_id: str | None = None) -> list[Current]:
        """What the broker should hold for the site (or one person), sorted by person, kind, model."""
        rows = self._db.execute(
            "WITH newest AS (SELECT topic, MAX(version) AS v FROM published WHERE site = ?1 GROUP BY topic), "
            "tomb AS (SELECT person_id, MAX(version) AS v FROM published WHERE site = ?1 AND kind = 'tombstone' "
            "GROUP BY person_id) "
            "SELECT p.person_id, p.kind, p.model_id, p.version, p.name, p.encodings, p.topic, p.payload, "
            "p.published_at FROM published p JOIN newest n ON p.topic = n.topic AND p.version = n.v "
            "LEFT JOIN tomb t ON t.person_id = p.person_id "
            "WHERE p.site = ?1 AND (?2 IS NULL OR p.person_id = ?2) "
            "AND (p.kind = 'tombstone' OR t.v IS NULL OR p.version > t.v) "
            "ORDER BY p.person_id, p.kind = 'record', p.model_id", (site, person_id)).fetchall()
        return [Current(*row) for row in rows]

    def topics_of(self, site: str, person_id: str) -> set[str]:
        """Every enroll topic the person ever had (to clear them on removal)."""
        rows = self._db.execute("SELECT DISTINCT topic FROM published WHERE site = ? AND person_id = ? AND "
                                "kind = 'record'", (site, person_id)).fetchall()
        return {r[0] for r in rows}

    def is_revoked(self, site: str, person_id: str) -> bool:
        mine = self.current(site, person_id)
        return bool(mine) and max(mine, key=lambda c: c.version).kind == TOMBSTONE

    def history(self, site: str, person_id: str | None = None) -> list[dict]:
        """Every publication, oldest first (the audit trail; payloads not included)."""
        rows = self._db.execute(
            "SELECT person_id, kind, model_id, version, name, encodings, topic, sha256, payload IS NOT NULL, "
            "photos, source, published_at FROM published WHERE site = ? AND (? IS NULL OR person_id = ?) "
            "ORDER BY id", (site, person_id, person_id)).fetchall()
        keys = ("person_id", "kind", "model_id", "version", "name", "encodings", "topic", "sha256", "current",
                "photos", "source", "published_at")
        return [{**dict(zip(keys, r)), "current": bool(r[8]), "photos": json.loads(r[9])} for r in rows]

    # ---------------------------------------------------------------- manifests
    def models(self, site: str) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT model_id FROM published WHERE site = ? AND kind = 'record' "
                                "UNION SELECT model_id FROM manifests WHERE site = ?", (site, site)).fetchall()
        return sorted(r[0] for r in rows)

    def manifest_entries(self, site: str, model_id: str) -> dict[str, Entry]:
        """Per person, the newest of their current record for ``model_id`` and their tombstone."""
        entries: dict[str, Entry] = {}
        for c in self.current(site):
            if c.kind == TOMBSTONE or c.model_id == model_id:
                if c.person_id not in entries or entries[c.person_id][0] < c.version:
                    entries[c.person_id] = (c.version, c.kind == TOMBSTONE)
        return entries

    def sign_manifests(self, site: str, key: Ed25519PrivateKey, valid_s: float, now: float | None = None,
                       min_seq: int = 0) -> list[SignedManifest]:
        """Sign and store a new manifest for every model of the site (one transaction).
        Sequences only go up: above the stored one, above ``min_seq``, and the time in ms."""
        now = time.time() if now is None else now

        def work():
            signed = []
            for model_id in self.models(site):
                row = self._db.execute("SELECT seq FROM manifests WHERE site = ? AND model_id = ?",
                                       (site, model_id)).fetchone()
                seq = version_now(max(row[0] if row else 0, min_seq), now)
                manifest = build_manifest(site, model_id, self.manifest_entries(site, model_id), seq, now,
                                          valid_s, key)
                self._db.execute("INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?, ?)",
                                 (site, model_id, seq, manifest.issued_at, manifest.expires_at, manifest.top[1]))
                self._db.execute("DELETE FROM manifest_pages WHERE site = ? AND model_id = ?", (site, model_id))
                self._db.executemany("INSERT INTO manifest_pages VALUES (?, ?, ?, ?)",
                                     [(site, model_id, i, payload) for i, (_, payload) in enumerate(manifest.pages)])
                signed.append(manifest)
            return signed
        return self._write(work)

    def manifest_seq(self, site: str, model_id: str) -> int:
        row = self._db.execute("SELECT seq FROM manifests WHERE site = ? AND model_id = ?",
                               (site, model_id)).fetchone()
        return row[0] if row else 0

    def manifest_expiry(self, site: str) -> float | None:
        """When the first of the site's current manifests expires (None: there are none)."""
        return self._db.execute("SELECT MIN(expires_at) FROM manifests WHERE site = ?", (site,)).fetchone()[0]

    # ---------------------------------------------------------------- the broker's expected state
    def retained(self, site: str) -> dict[str, bytes]:
        """topic -> payload of everything the broker should hold retained for the site."""
        return {**{c.topic: c.payload for c in self.current(site)}, **self.manifest_messages(site)}

    def manifest_messages(self, site: str) -> dict[str, bytes]:
        """topic -> payload of the site's current manifests: tops and pages."""
        held = {}
        for model_id, top in self._db.execute("SELECT model_id, top FROM manifests WHERE site = ?", (site,)):
            held[topics.manifest_topic(site, model_id)] = top
        for model_id, page, payload in self._db.execute(
                "SELECT model_id, page, payload FROM manifest_pages WHERE site = ?", (site,)):
            held[topics.manifest_page_topic(site, model_id, page)] = payload
        return held

    def expected(self, site: str, topic: str) -> bytes | None:
        """What the broker should hold on one topic (None: nothing)."""
        where = topics.parse_sync_topic(topic)
        if where is None or where.site != site:
            return None
        if where.kind == topics.MANIFEST and where.page < 0:
            row = self._db.execute("SELECT top FROM manifests WHERE site = ? AND model_id = ?",
                                   (site, where.model_id)).fetchone()
        elif where.kind == topics.MANIFEST:
            row = self._db.execute("SELECT payload FROM manifest_pages WHERE site = ? AND model_id = ? AND page = ?",
                                   (site, where.model_id, where.page)).fetchone()
        else:
            row = next(((c.payload,) for c in self.current(site, where.person_id) if c.topic == topic), None)
        return row[0] if row else None
