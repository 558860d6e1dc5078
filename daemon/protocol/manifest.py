"""The signed site manifest: the one version of each person that a device may apply.

A signed record stays validly signed forever, so a signature alone cannot tell a door
whether a record is still *current*. A door that keeps its gallery refuses old versions,
but one with no history (new, gallery moved aside after corruption, re-keyed) would take
a replayed record of someone since revoked or re-enrolled. In the spirit of TUF's
snapshot and timestamp roles, the enrollment server therefore publishes, per site and
model, retained and signed with the enrollment key:

    facegate/<site>/manifest/<model_id>        the top: sequence, issue time, expiry, page hashes
    facegate/<site>/manifest/<model_id>/<n>    page n: {"enrolled": {person: version}, "revoked": {person: version}}

A device applies a record only if the newest valid manifest it holds lists exactly that
version (a tombstone: "revoked" at that version). It never takes a manifest with a lower
sequence than the one it stored, nor an expired one (daemon/door/admission.py).

Pages keep every message small however many people a site has (figures in
docs/security.md): a person's page is fixed by a hash of their id, so one enrollment
changes one page, and the signed top binds every page by its SHA-256. The same state
always gives the same page bytes, so unchanged pages need not be published again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.protocol import topics
from daemon.protocol.person import PersonRecord, valid_person_id
from daemon.protocol.records import (BAD_FIELD, BAD_TOPIC, MAX_VERSION, TOO_LARGE, WRONG_SITE, RecordError,
                                     field_error, int_field, timestamp_field, decode_object)
from daemon.protocol.signing import SignatureError, Trust, sign_payload
from daemon.protocol.wire import compact_json, iso_utc

SCHEMA = 1
PAGE_TARGET = 1000                # entries per page the builder aims for ...
PAGE_MAX = 2000                   # ... and never exceeds
# The longest entry is a 64-character id and a 19-digit version: "<id>":<version>, = 87 bytes.
MAX_PAGE_BYTES = 64 + PAGE_MAX * 87
MAX_TOP_BYTES = 1024 + topics.MAX_PAGES * 67
TOP_KEYS = {"schema", "site", "model_id", "seq", "issued_at", "expires_at", "enrolled", "revoked", "pages"}
PAGE_KEYS = {"enrolled", "revoked"}
_SHA256 = re.compile(r"[0-9a-f]{64}")

# Reason codes (health: manifest.rejected), besides those of records and signatures.
OLD_SEQUENCE = "old_sequence"      # lower sequence than the manifest the device holds
EXPIRED = "expired"                # past its expiry (or this device's clock is ahead)
CONFLICT = "conflicting_sequence"  # same sequence as the held manifest, different content

Entry = tuple[int, bool]           # (version, deleted)


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


# ---------------------------------------------------------------- what devices hold

@dataclass(frozen=True)
class ManifestTop:
    """A verified top message; its pages may not have arrived yet."""

    site: str
    model_id: str
    seq: int
    issued_at: float
    expires_at: float
    pages: tuple[str, ...]   # SHA-256 (hex) of each page's exact bytes
    enrolled: int
    revoked: int
    digest: str              # SHA-256 of the signed top itself


@dataclass(frozen=True, eq=False)
class Manifest:
    """A complete manifest: the top and the entries of all its pages."""

    model_id: str
    seq: int
    issued_at: float
    expires_at: float
    digest: str
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def lists(self, record: PersonRecord) -> bool:
        """Whether the manifest names exactly this version (and kind) of the person."""
        return self.entries.get(record.person_id) == (record.version, record.deleted)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def revocations(self) -> Iterator[PersonRecord]:
        """The tombstones it lists: a revocation takes effect without the tombstone message."""
        for person_id, (version, deleted) in self.entries.items():
            if deleted:
                yield PersonRecord.tombstone(person_id, version)

    def to_dict(self) -> dict:
        """For the device's gallery file (daemon/gallery/store.py), which stores it as JSON."""
        return {"model_id": self.model_id, "seq": self.seq, "issued_at": self.issued_at,
                "expires_at": self.expires_at, "digest": self.digest,
                "enrolled": {p: v for p, (v, d) in self.entries.items() if not d},
                "revoked": {p: v for p, (v, d) in self.entries.items() if d}}

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        entries = {p: (int(v), False) for p, v in data["enrolled"].items()}
        entries.update({p: (int(v), True) for p, v in data["revoked"].items()})
        return cls(str(data["model_id"]), int(data["seq"]), float(data["issued_at"]), float(data["expires_at"]),
                   str(data["digest"]), entries)


def _where(topic: str, site: str, model_id: str, top: bool) -> topics.SyncTopic:
    where = topics.parse_sync_topic(topic)
    if where is None or where.kind != topics.MANIFEST or (where.page < 0) != top:
        raise RecordError(BAD_TOPIC, f"not a manifest {'top' if top else 'page'} topic: {topic[:200]!r}")
    if where.site != site:
        raise RecordError(WRONG_SITE, f"manifest for site {where.site!r}, this device is in {site!r}")
    if where.model_id != model_id:
        raise RecordError(BAD_TOPIC, f"manifest for model {where.model_id!r}, this device runs {model_id!r}")
    return where


def parse_top(topic: str, payload: bytes, site: str, model_id: str, *, trust: Trust) -> ManifestTop:
    """Verify a top message (signature first, then the exact JSON shape); RecordError otherwise.
    Sequence and expiry are the caller's to judge: they depend on what the device holds."""
    _where(topic, site, model_id, top=True)
    if len(payload) > MAX_TOP_BYTES:
        raise RecordError(TOO_LARGE, f"{topic}: {len(payload)} bytes is over the {MAX_TOP_BYTES} byte limit")
    try:
        body = decode_object(topic, trust.body_of(topic, payload))
    except SignatureError as exc:
        raise RecordError(exc.reason, f"{topic}: {exc}") from None
    try:
        return _top(body, site, model_id, digest(payload))
    except RecordError as exc:
        raise RecordError(exc.reason, f"{topic}: {exc}") from None


def _top(body: dict, site: str, model_id: str, sha: str) -> ManifestTop:
    if set(body) != TOP_KEYS:
        odd = sorted(set(body) ^ TOP_KEYS)
        raise field_error(f"manifest fields differ from the schema: {', '.join(repr(k[:40]) for k in odd[:5])}")
    int_field(body, "schema", SCHEMA, SCHEMA)
    if body["site"] != site or body["model_id"] != model_id:
        raise field_error("site or model_id does not match the topic")
    issued, expires = timestamp_field(body["issued_at"], "issued_at"), timestamp_field(body["expires_at"], "expires_at")
    if expires <= issued:
        raise field_error("expires_at must be after issued_at")
    pages = body["pages"]
    if (not isinstance(pages, list) or not 1 <= len(pages) <= topics.MAX_PAGES
            or not all(isinstance(p, str) and _SHA256.fullmatch(p) for p in pages)):
        raise field_error(f"pages must be a list of 1 to {topics.MAX_PAGES} SHA-256 hex digests")
    return ManifestTop(site, model_id, int_field(body, "seq", 1, MAX_VERSION), issued, expires, tuple(pages),
                       int_field(body, "enrolled", 0, topics.MAX_PAGES * PAGE_MAX),
                       int_field(body, "revoked", 0, topics.MAX_PAGES * PAGE_MAX), sha)


def parse_page(topic: str, payload: bytes, site: str, model_id: str) -> tuple[str, dict[str, Entry]]:
    """(SHA-256, entries) of a page. Pages are not signed: a page counts only if a
    verified top lists its hash, so this only keeps malformed input out of memory."""
    _where(topic, site, model_id, top=False)
    if len(payload) > MAX_PAGE_BYTES:
        raise RecordError(TOO_LARGE, f"{topic}: {len(payload)} bytes is over the {MAX_PAGE_BYTES} byte limit")
    body = decode_object(topic, payload)
    if set(body) != PAGE_KEYS:
        raise RecordError(BAD_FIELD, f"{topic}: a page holds exactly 'enrolled' and 'revoked'")
    entries: dict[str, Entry] = {}
    for key, deleted in (("enrolled", False), ("revoked", True)):
        listed = body[key]
        if not isinstance(listed, dict) or len(listed) > PAGE_MAX:
            raise RecordError(BAD_FIELD, f"{topic}: {key} must map at most {PAGE_MAX} person ids to versions")
        for person_id, version in listed.items():
            if not valid_person_id(person_id) or type(version) is not int or not 1 <= version <= MAX_VERSION:
                raise RecordError(BAD_FIELD, f"{topic}: bad entry in {key}: {str(person_id)[:70]!r}")
            if person_id in entries:
                raise RecordError(BAD_FIELD, f"{topic}: {person_id!r} is both enrolled and revoked")
            entries[person_id] = (version, deleted)
    return digest(payload), entries


def assemble(top: ManifestTop, pages: Mapping[str, dict[str, Entry]]) -> Manifest | None:
    """The complete manifest once every listed page is in ``pages`` (hash -> entries);
    None while one is missing; RecordError if the pages contradict the top."""
    if any(sha not in pages for sha in top.pages):
        return None
    entries: dict[str, Entry] = {}
    for sha in dict.fromkeys(top.pages):  # two empty pages have the same hash
        for person_id, entry in pages[sha].items():
            if person_id in entries:
                raise RecordError(BAD_FIELD, f"manifest seq {top.seq}: {person_id!r} is on two pages")
            entries[person_id] = entry
    revoked = sum(d for _, d in entries.values())
    if (len(entries) - revoked, revoked) != (top.enrolled, top.revoked):
        raise RecordError(BAD_FIELD, f"manifest seq {top.seq}: its pages hold {len(entries) - revoked} enrolled "
                                     f"and {revoked} revoked, the top says {top.enrolled} and {top.revoked}")
    return Manifest(top.model_id, top.seq, top.issued_at, top.expires_at, top.digest, entries)


# ---------------------------------------------------------------- what the server publishes

@dataclass(frozen=True)
class SignedManifest:
    seq: int
    issued_at: float
    expires_at: float
    top: tuple[str, bytes]
    pages: tuple[tuple[str, bytes], ...]

    def messages(self) -> list[tuple[str, bytes]]:
        """Pages first: a device that gets the top has (or is about to get) every page."""
        return [*self.pages, self.top]


def page_of(person_id: str, n_pages: int) -> int:
    return int.from_bytes(hashlib.sha256(person_id.encode()).digest()[:4], "big") % n_pages


def encode_page(entries: Mapping[str, Entry]) -> bytes:
    """Canonical bytes (sorted, compact): the same entries always hash the same."""
    body = {"enrolled": {p: v for p, (v, d) in entries.items() if not d},
            "revoked": {p: v for p, (v, d) in entries.items() if d}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def paginate(entries: Mapping[str, Entry]) -> list[bytes]:
    """The page payloads: a power-of-two number of hash buckets, doubled until none holds
    more than PAGE_MAX entries."""
    n = 1
    while n < topics.MAX_PAGES and len(entries) > n * PAGE_TARGET:
        n *= 2
    while True:
        buckets: list[dict[str, Entry]] = [{} for _ in range(n)]
        for person_id, entry in entries.items():
            buckets[page_of(person_id, n)][person_id] = entry
        if max(len(b) for b in buckets) <= PAGE_MAX:
            return [encode_page(b) for b in buckets]
        if n >= topics.MAX_PAGES:
            raise ValueError(f"{len(entries)} people and tombstones do not fit in {topics.MAX_PAGES} pages")
        n *= 2


def build_manifest(site: str, model_id: str, entries: Mapping[str, Entry], seq: int, issued_at: float,
                   valid_s: float, key: Ed25519PrivateKey | None) -> SignedManifest:
    """Sign the manifest of ``entries`` (person -> (version, deleted)) for one model."""
    pages = paginate(entries)
    revoked = sum(d for _, d in entries.values())
    expires_at = issued_at + valid_s
    body = {"schema": SCHEMA, "site": site, "model_id": model_id, "seq": int(seq),
            "issued_at": iso_utc(issued_at), "expires_at": iso_utc(expires_at),
            "enrolled": len(entries) - revoked, "revoked": revoked, "pages": [digest(p) for p in pages]}
    topic = topics.manifest_topic(site, model_id)
    payload = compact_json(body)
    signed = sign_payload(key, topic, payload) if key is not None else payload
    return SignedManifest(seq, issued_at, expires_at, (topic, signed),
                          tuple((topics.manifest_page_topic(site, model_id, i), p) for i, p in enumerate(pages)))
