"""Which enrollment records a device may apply: the device side of daemon/protocol/manifest.py.

Records, manifest tops and pages arrive in any order (retained messages after a
reconnect, live updates, replays). A record waits here until the newest valid manifest
lists exactly its version; then it is handed to the gallery. A record whose person the
manifest lists at a higher version is a replay of a superseded or revoked record: it is
dropped and counted. Without any manifest (a door with no history) nothing is applied.

A manifest is taken only if it is newer (higher sequence) than the one held and not
expired; a top waits for its pages, which are matched by hash. Pure bookkeeping, one
thread: the service feeds it from the link and persists what it adopts.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict

from daemon.protocol import topics
from daemon.protocol.manifest import CONFLICT, EXPIRED, OLD_SEQUENCE, Entry, Manifest, ManifestTop, assemble
from daemon.protocol.person import PersonRecord
from daemon.protocol.records import RecordError
from daemon.protocol.wire import iso_utc

log = logging.getLogger(__name__)

MAX_WAITING = 10_000          # records waiting for a manifest (signed ones only reach this far)
MAX_CACHED_PAGES = 2 * topics.MAX_PAGES

NONE, WAITING, FRESH, EXPIRED_STATE = "none", "waiting_for_pages", "fresh", "expired"


class Admission:
    def __init__(self, model_id: str, stored: Manifest | None = None, wall=time.time):
        self.model_id = model_id
        self.manifest = stored                  # the newest complete, valid manifest
        self.generation = 0                     # bumped when the manifest changes
        self.rejected: Counter[str] = Counter() # manifest tops refused here (sequence, expiry, pages)
        self.superseded = 0                     # replayed or superseded records (not tombstones) dropped
        self.evicted = 0                        # waiting records dropped because too many waited
        self._wall = wall
        self._pending: ManifestTop | None = None
        self._pages: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._waiting: OrderedDict[tuple[str, int, bool], PersonRecord] = OrderedDict()
        self._ready: list[PersonRecord] = []
        self._adopted: Manifest | None = None

    # ---- input
    def offer_top(self, top: ManifestTop) -> None:
        held = self.manifest
        if held is not None and top.seq == held.seq and top.digest == held.digest:
            return  # the same manifest again (retained, after a reconnect)
        if held is not None and top.seq <= held.seq:
            reason = OLD_SEQUENCE if top.seq < held.seq else CONFLICT
            self._refuse(reason, f"manifest seq {top.seq}: this device holds seq {held.seq}")
            return
        if top.expires_at <= self._wall():
            self._refuse(EXPIRED, f"manifest seq {top.seq} expired at {iso_utc(top.expires_at)} "
                                  f"(or this device's clock is wrong: it reads {iso_utc(self._wall())})")
            return
        if self._pending is None or top.seq > self._pending.seq:
            self._pending = top
        self._try_pending()

    def offer_page(self, sha: str, entries: dict[str, Entry]) -> None:
        self._pages[sha] = entries
        self._pages.move_to_end(sha)
        while len(self._pages) > MAX_CACHED_PAGES:
            self._pages.popitem(last=False)
        self._try_pending()

    def offer_record(self, record: PersonRecord) -> None:
        key = (record.person_id, record.version, record.deleted)
        self._waiting.pop(key, None)
        self._waiting[key] = record
        if self.manifest is not None:
            self._sort(key)
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popitem(last=False)
            self.evicted += 1

    # ---- output (main thread)
    def take_ready(self) -> list[PersonRecord]:
        """Records the manifest lists exactly, in arrival order: apply them."""
        ready, self._ready = self._ready, []
        return ready

    def take_adopted(self) -> Manifest | None:
        """The manifest adopted since the last call (to persist), if any."""
        adopted, self._adopted = self._adopted, None
        return adopted

    def admits(self, record: PersonRecord) -> bool:
        """May this stored record be matched? Only the exact version the manifest lists."""
        return self.manifest is not None and self.manifest.lists(record)

    def state(self) -> str:
        if self.manifest is None:
            return WAITING if self._pending is not None else NONE
        return EXPIRED_STATE if self.manifest.expired(self._wall()) else FRESH

    def health(self) -> dict:
        m = self.manifest
        return {"state": self.state(), "seq": m.seq if m else None,
                "issued_at": iso_utc(m.issued_at) if m else None, "expires_at": iso_utc(m.expires_at) if m else None,
                "waiting_for_pages": (sum(p not in self._pages for p in self._pending.pages)
                                      if self._pending else 0)}

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    # ---- internals
    def _refuse(self, reason: str, message: str) -> None:
        self.rejected[reason] += 1
        log.warning("refused manifest: %s", message)

    def _try_pending(self) -> None:
        top = self._pending
        if top is None:
            return
        try:
            manifest = assemble(top, self._pages)
        except RecordError as exc:
            self._pending = None
            self._refuse(exc.reason, str(exc))
            return
        if manifest is None:
            return
        self._pending = None
        if manifest.expired(self._wall()):  # its pages came too late
            self._refuse(EXPIRED, f"manifest seq {top.seq} expired before all its pages arrived")
            return
        self.manifest, self._adopted = manifest, manifest
        self.generation += 1
        log.info("manifest seq %d for model %s: %d entries, expires %s", manifest.seq, manifest.model_id,
                 len(manifest.entries), iso_utc(manifest.expires_at))
        for key in list(self._waiting):
            self._sort(key)

    def _sort(self, key: tuple[str, int, bool]) -> None:
        """Move a waiting record on if the held manifest decides it."""
        record = self._waiting[key]
        entry = self.manifest.entries.get(record.person_id)
        if entry == (record.version, record.deleted):
            self._ready.append(self._waiting.pop(key))
        elif entry is not None and entry[0] >= record.version:
            del self._waiting[key]
            if record.deleted:  # an old tombstone of someone enrolled again since: normal, and harmless
                log.debug("ignored %r: manifest seq %d lists v%d", record, self.manifest.seq, entry[0])
                return
            self.superseded += 1
            log.warning("refused %r: manifest seq %d lists %s v%d (a replayed or superseded record)", record,
                        self.manifest.seq, "a tombstone" if entry[1] else "a record", entry[0])
        # otherwise newer than the manifest: it waits for the next one
