"""The enrollment server's operations: enroll, remove, list, reembed.

Each takes its collaborators explicitly (the broker client or an output path, the
signing key, the encoder and detector), so the command line (daemon/cli.py) only parses
arguments and prints, and tests can run every step against a real broker.

Versions are the current time in milliseconds, and always above every version the
broker holds for that person (read just before publishing): a record always supersedes
the previous one, even if the server's clock went backwards.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.enroll.archive import PhotoArchive
from daemon.enroll.client import EnrollmentClient
from daemon.enroll.gate import PhotoGate
from daemon.enroll.photos import PhotoResult, examine_photos
from daemon.gallery.record import MAX_ENCODINGS, MAX_NAME_CHARS, valid_person_id
from daemon.sync import publish, signing, topics
from daemon.sync.records import RecordError, parse_enrollment
from daemon.sync.signing import Trust

log = logging.getLogger(__name__)


class EnrollError(ValueError):
    """An enrollment that cannot go ahead; the message says why and what to do."""


@dataclass
class Target:
    """Where records go: a broker (``client``) or, for a dry run, files (``out``)."""

    site: str
    key: Ed25519PrivateKey | None
    client: EnrollmentClient | None = None
    out: Path | None = None

    def __post_init__(self):
        if not topics.valid_name(self.site):
            raise EnrollError(f"invalid site {self.site!r} (letters, digits, '_', '.', '-'; at most 64)")
        if self.client is not None and self.key is None:
            raise EnrollError("no signing key: pass --signing-key or set enrollment.signing_key "
                              "(create one with `facegate keygen --out DIR`); devices refuse unsigned records")

    @property
    def trust(self) -> Trust:
        return Trust.of(self.key.public_key()) if self.key else Trust(allow_unsigned=True)


# ---------------------------------------------------------------- what the broker holds

@dataclass(frozen=True)
class HeldRecord:
    """One retained enroll or revoke message, as `facegate list` shows it."""

    topic: str
    person_id: str
    kind: str                 # "record", "tombstone" or "invalid"
    signature: str            # "valid", "unsigned", "unknown_key", "bad_signature", "not checked" or "-"
    model_id: str = ""
    name: str = ""
    version: int = 0
    encodings: int = 0
    updated_at: float = 0.0
    error: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("person_id", "kind", "name", "version", "model_id", "encodings",
                                              "signature", "updated_at", "topic", "error")}


def inspect_message(topic: str, payload: bytes, site: str, trust: Trust) -> HeldRecord | None:
    """Describe one retained message; None for a cleared (empty) one."""
    where = topics.parse_sync_topic(topic)
    person_id = where.person_id if where else topic.rsplit("/", 1)[-1]
    if not payload:
        return None
    signature = "valid"
    if not trust.keys:  # nothing to check against: say whether it is signed at all
        signature = "not checked" if signing.split_signature(payload) else signing.UNSIGNED
        trust = Trust(allow_unsigned=True)
    try:
        record = parse_enrollment(topic, payload, site, None, trust=trust)
    except RecordError as exc:
        if exc.reason not in (signing.UNSIGNED, signing.UNKNOWN_KEY, signing.BAD_SIGNATURE):
            return HeldRecord(topic, person_id, "invalid", "-", error=str(exc))
        signature = exc.reason
        try:  # show it anyway, marked: the admin needs to see what devices are refusing
            record = parse_enrollment(topic, payload, site, None, trust=Trust(allow_unsigned=True))
        except RecordError as inner:
            return HeldRecord(topic, person_id, "invalid", signature, error=str(inner))
    return HeldRecord(topic, record.person_id, "tombstone" if record.deleted else "record", signature,
                      record.model_id, record.name, record.version, len(record.encodings), record.updated_at)


def held_records(client: EnrollmentClient, site: str, trust: Trust, person_id: str = "+") -> list[HeldRecord]:
    """What the broker holds for the site (or one person), sorted by person and model."""
    filters = [f"{topics.ROOT}/{site}/{topics.ENROLL}/+/{person_id}",
               f"{topics.ROOT}/{site}/{topics.REVOKE}/{person_id}"]
    held = [inspect_message(t, p, site, trust) for t, p in client.retained(filters).items()]
    return sorted((h for h in held if h is not None), key=lambda h: (h.person_id, h.kind != "tombstone", h.model_id))


def highest_version(held: list[HeldRecord], person_id: str) -> int:
    return max((h.version for h in held if h.person_id == person_id), default=0)


def is_revoked(held: list[HeldRecord], person_id: str) -> bool:
    """True if the person's newest validly signed message is a tombstone."""
    mine = [h for h in held if h.person_id == person_id and h.kind != "invalid"
            and h.signature in ("valid", "not checked")]
    return bool(mine) and max(mine, key=lambda h: h.version).kind == "tombstone"


# ---------------------------------------------------------------- sending

def _deliver(target: Target, topic: str, payload: bytes, name: str) -> str:
    """Publish retained, or write the payload for a dry run. Returns where it went."""
    if target.client is not None:
        target.client.publish(topic, payload, retain=True)
        return topic
    path = target.out / name if target.out.is_dir() else target.out
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # encodings are personal data
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    return str(path)


def check_identity(person_id: str, name: str) -> None:
    if not valid_person_id(person_id):
        raise EnrollError(f"invalid person id {person_id!r}: 1-64 letters, digits, '_', '.' or '-', "
                          "starting with a letter or digit")
    if not 1 <= len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise EnrollError(f"invalid name {name[:40]!r}: 1-{MAX_NAME_CHARS} printable characters")


@dataclass
class EnrollOutcome:
    person_id: str
    photos: list[PhotoResult]
    model_id: str = ""
    version: int = 0
    topic: str = ""
    delivered_to: str = ""
    kept_in: str = ""
    skipped: str = ""          # why nothing was published (reembed)

    @property
    def accepted(self) -> list[PhotoResult]:
        return [p for p in self.photos if p.accepted]


def enroll(target: Target, person_id: str, name: str, photos: list[str | Path], encoder, detector,
           gate: PhotoGate = PhotoGate(), consistency: bool = True, keep_photos: str | Path | None = None,
           held: list[HeldRecord] | None = None) -> EnrollOutcome:
    """Gate and embed the photos, then publish (or write) the signed person record.
    Raises EnrollError, with every photo's verdict in the outcome, if no photo passes."""
    check_identity(person_id, name)
    if not photos:
        raise EnrollError("give at least one photo")
    if len(photos) > MAX_ENCODINGS:
        raise EnrollError(f"{len(photos)} photos; at most {MAX_ENCODINGS} per person")
    model_id = encoder.info.model_id
    if not topics.valid_model_id(model_id):
        raise EnrollError(f"model id {model_id!r} cannot be a topic level")
    outcome = EnrollOutcome(person_id, examine_photos(photos, encoder, detector, gate, consistency),
                            model_id=model_id)
    if not outcome.accepted:
        raise NoUsablePhoto(outcome)
    if held is None:
        held = held_records(target.client, target.site, target.trust, person_id) if target.client else []
    outcome.version = publish.version_now(highest_version(held, person_id))
    outcome.topic, payload = publish.person_record(
        target.site, person_id, name, np.stack([p.embedding for p in outcome.accepted]), model_id,
        outcome.version, target.key)
    outcome.delivered_to = _deliver(target, outcome.topic, payload, f"{person_id}.{model_id}.json")
    if keep_photos is not None:
        kept = [(p.data, p.sha256, p.kind) for p in outcome.accepted]
        outcome.kept_in = str(PhotoArchive(keep_photos).save(person_id, name, kept))
    return outcome


class NoUsablePhoto(EnrollError):
    def __init__(self, outcome: EnrollOutcome):
        super().__init__(f"{outcome.person_id}: no photo passed the checks; nothing was published")
        self.outcome = outcome


@dataclass
class RemoveOutcome:
    person_id: str
    version: int
    topic: str
    delivered_to: str
    cleared: list[str] = field(default_factory=list)   # enroll topics whose retained record was removed
    was_known: bool = False
    photos_deleted: bool = False


def remove(target: Target, person_id: str, keep_photos: str | Path | None = None) -> RemoveOutcome:
    """Publish a signed tombstone (retained: it reaches devices that are offline now),
    then clear the person's retained records of every model, so the broker no longer
    holds their encodings, and delete their kept photos."""
    check_identity(person_id, "-")
    held = held_records(target.client, target.site, target.trust, person_id) if target.client else []
    version = publish.version_now(highest_version(held, person_id))
    topic, payload = publish.tombstone(target.site, person_id, version, target.key)
    outcome = RemoveOutcome(person_id, version, topic, _deliver(target, topic, payload, f"{person_id}.revoke.json"),
                            was_known=bool(held))
    if target.client is not None:
        # Only after the tombstone is acknowledged: a device that connects in between gets
        # either the old record and the tombstone, or the tombstone alone.
        for h in held:
            where = topics.parse_sync_topic(h.topic)
            if where is not None and where.kind == topics.ENROLL:
                target.client.publish(h.topic, b"", retain=True)
                outcome.cleared.append(h.topic)
    if keep_photos is not None:
        outcome.photos_deleted = PhotoArchive(keep_photos).delete(person_id)
    return outcome


def reembed(target: Target, photos_dir: str | Path, encoder, detector, gate: PhotoGate = PhotoGate(),
            consistency: bool = True) -> list[EnrollOutcome]:
    """Re-enroll everyone kept in ``photos_dir`` with ``encoder``'s model: one new record
    per person at facegate/<site>/enroll/<new model id>/<person_id>. The old model's records
    stay, so devices still on the old model keep working until they are upgraded.
    People revoked on the broker are skipped (their kept photos should have been deleted)."""
    archive = PhotoArchive(photos_dir)
    people = archive.people()
    held = held_records(target.client, target.site, target.trust) if target.client else []
    if target.client is None:
        log.warning("dry run without a broker: revocations on the broker are not checked")
    outcomes = []
    for person in people:
        if is_revoked(held, person.person_id):
            outcomes.append(EnrollOutcome(person.person_id, [], skipped="revoked on the broker: not re-enrolled "
                                          "(delete the kept photos with `facegate remove --keep-photos`)"))
            continue
        try:
            outcomes.append(enroll(target, person.person_id, person.name, list(person.photos), encoder, detector,
                                   gate, consistency, held=held))
        except NoUsablePhoto as exc:
            exc.outcome.skipped = "no kept photo passed the checks with the new model"
            outcomes.append(exc.outcome)
    return outcomes
