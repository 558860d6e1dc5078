"""The enrollment server's operations: enroll, remove, list, reembed.

Each takes its collaborators explicitly (the store, the broker client or an output
path, the signing key, the encoder and detector), so the command line (daemon/cli.py)
only parses arguments and prints, and tests can run every step against a real broker.

Every change is written to the server's store (daemon/server/store.py) first, with a
newly signed site manifest, and then published. If the broker cannot be reached the
change is still stored, and `facegate server` publishes it when it can.

Versions are the current time in milliseconds, and always above every version the store
or the broker holds for that person: a record always supersedes the previous one, even
if the server's clock went backwards. Validly signed messages on the broker that are
newer than the store (a store restored from an older backup, or from before the store
existed) are taken into the store first (import_newer).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.config import ServerConfig
from daemon.protocol import signing, topics
from daemon.protocol.person import MAX_ENCODINGS, MAX_NAME_CHARS, valid_person_id
from daemon.protocol.records import RecordError, parse_enrollment
from daemon.protocol.signing import Trust
from daemon.server import publish
from daemon.server.archive import PhotoArchive
from daemon.server.client import EnrollmentClient
from daemon.server.gate import PhotoGate
from daemon.server.photos import PhotoResult, examine_photos
from daemon.server.store import EnrollmentStore, Publication

log = logging.getLogger(__name__)


class EnrollError(ValueError):
    """An enrollment that cannot go ahead; the message says why and what to do."""


@dataclass
class Target:
    """Where records go: the server's ``store`` and then the broker (``client``, None when
    it cannot be reached), or, for a dry run, files (``out``)."""

    site: str
    key: Ed25519PrivateKey | None
    client: EnrollmentClient | None = None
    out: Path | None = None
    store: EnrollmentStore | None = None
    manifest_valid_s: float = ServerConfig.manifest_valid_s

    def __post_init__(self):
        if not topics.valid_name(self.site):
            raise EnrollError(f"invalid site {self.site!r} (letters, digits, '_', '.', '-'; at most 64)")
        if self.out is None and self.key is None:
            raise EnrollError("no signing key: pass --signing-key or set enrollment.signing_key "
                              "(create one with `facegate keygen --out DIR`); devices refuse unsigned records")
        if self.out is None and self.store is None:
            raise EnrollError("no enrollment store: set server.state_dir (or pass --state-dir); the store, not "
                              "the broker, is the record of who is enrolled")

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


def retained_messages(client: EnrollmentClient, site: str, person_id: str = "+") -> dict[str, bytes]:
    """The retained enroll and revoke messages the broker holds for the site (or one person)."""
    return client.retained([f"{topics.ROOT}/{site}/{topics.ENROLL}/+/{person_id}",
                            f"{topics.ROOT}/{site}/{topics.REVOKE}/{person_id}"])


def describe(messages: dict[str, bytes], site: str, trust: Trust) -> list[HeldRecord]:
    """The messages as `facegate list` shows them, sorted by person, tombstone first, model."""
    held = [inspect_message(t, p, site, trust) for t, p in messages.items()]
    return sorted((h for h in held if h is not None), key=lambda h: (h.person_id, h.kind != "tombstone", h.model_id))


def held_records(client: EnrollmentClient, site: str, trust: Trust, person_id: str = "+") -> list[HeldRecord]:
    """What the broker holds for the site (or one person)."""
    return describe(retained_messages(client, site, person_id), site, trust)


def stored_records(store: EnrollmentStore, site: str, trust: Trust) -> list[HeldRecord]:
    """What the store says the broker should hold for the site."""
    return describe({c.topic: c.payload for c in store.current(site)}, site, trust)


def import_newer(store: EnrollmentStore, site: str, messages: dict[str, bytes], trust: Trust) -> list[str]:
    """Take into the store the messages signed by our key that are newer than anything
    it holds for their person: they were published by this server (a store restored
    from an older backup, or from before the store existed). Returns their topics."""
    imported = []
    for topic, payload in messages.items():
        if not payload:
            continue
        try:
            record = parse_enrollment(topic, payload, site, None, trust=trust)
        except RecordError:
            continue
        if record.version > store.highest_version(site, record.person_id):
            store.add(Publication.of(site, topic, payload, record, source="import"))
            log.warning("store: imported %r from the broker (signed by our key, newer than the store)", record)
            imported.append(topic)
    return imported


# ---------------------------------------------------------------- sending

def _write_file(target: Target, payload: bytes, name: str) -> str:
    """Dry run: write the payload. Returns where it went."""
    path = target.out / name if target.out.is_dir() else target.out
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # encodings are personal data
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    return str(path)


def _pull(target: Target, person_id: str) -> dict[str, bytes]:
    """What the broker holds for the person, after importing anything newer into the store."""
    if target.client is None:
        return {}
    messages = retained_messages(target.client, target.site, person_id)
    import_newer(target.store, target.site, messages, target.trust)
    return messages


def commit(target: Target, publications: list[Publication], clear: list[str] = ()) -> str:
    """Store the publications with a newly signed manifest, then publish them, clear
    ``clear`` (only after they are acknowledged) and publish the manifest: its top and
    the pages that changed (the broker holds the others; `facegate server` sees to that).
    Returns where they went."""
    target.store.add(*publications)
    before = target.store.manifest_messages(target.site)
    manifests = target.store.sign_manifests(target.site, target.key, target.manifest_valid_s)
    if target.client is None:
        log.warning("the broker is not reachable: stored in %s only; `facegate server` publishes it as soon "
                    "as it can reach the broker", target.store.path)
        return f"{target.store.path} (not yet published)"
    for p in publications:
        target.client.publish(p.topic, p.payload, retain=True)
    for topic in clear:
        target.client.publish(topic, b"", retain=True)
    after = {topic: payload for m in manifests for topic, payload in m.messages()}
    for manifest in manifests:
        for topic, payload in manifest.messages():
            if before.get(topic) != payload:
                target.client.publish(topic, payload, retain=True)
    for topic in before.keys() - after.keys():  # pages of a manifest that shrank
        target.client.publish(topic, b"", retain=True)
    return publications[0].topic


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
           pulled: dict[str, bytes] | None = None, source: str = "enroll") -> EnrollOutcome:
    """Gate and embed the photos, then store and publish (or write) the signed person
    record. Raises EnrollError, with every photo's verdict in the outcome, if no photo
    passes. ``pulled``: the broker was already read (reembed reads it once for everyone)."""
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
    if target.store is not None and pulled is None:
        _pull(target, person_id)
    known = target.store.highest_version(target.site, person_id) if target.store is not None else 0
    outcome.version = publish.version_now(known)
    encodings = np.stack([p.embedding for p in outcome.accepted])
    outcome.topic, payload = publish.person_record(target.site, person_id, name, encodings, model_id,
                                                   outcome.version, target.key)
    if target.out is not None:
        outcome.delivered_to = _write_file(target, payload, f"{person_id}.{model_id}.json")
    else:
        outcome.delivered_to = commit(target, [Publication(
            target.site, person_id, "record", model_id, outcome.version, outcome.topic, payload, name,
            len(encodings), tuple(p.sha256 for p in outcome.accepted), source)])
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
    """Store and publish a signed tombstone (retained: it reaches devices that are offline
    now) and a manifest that lists it, then clear the person's retained records of every
    model, so the broker no longer holds their encodings (the store erases them too), and
    delete their kept photos."""
    check_identity(person_id, "-")
    if target.out is not None:
        version = publish.version_now()
        topic, payload = publish.tombstone(target.site, person_id, version, target.key)
        return RemoveOutcome(person_id, version, topic, _write_file(target, payload, f"{person_id}.revoke.json"))
    held = _pull(target, person_id)
    known = target.store.highest_version(target.site, person_id)
    version = publish.version_now(known)
    topic, payload = publish.tombstone(target.site, person_id, version, target.key)
    # Cleared only after the tombstone is acknowledged: a device that connects in between
    # gets either the old record and the tombstone, or the tombstone alone.
    clear = sorted(t for t in target.store.topics_of(target.site, person_id) | {t for t, p in held.items() if p}
                   if topics.parse_sync_topic(t).kind == topics.ENROLL)
    tomb = Publication(target.site, person_id, "tombstone", "", version, topic, payload, source="remove")
    outcome = RemoveOutcome(person_id, version, topic, commit(target, [tomb], clear if target.client else []),
                            was_known=bool(known or held))
    outcome.cleared = clear if target.client is not None else []
    if keep_photos is not None:
        outcome.photos_deleted = PhotoArchive(keep_photos).delete(person_id)
    return outcome


def reembed(target: Target, photos_dir: str | Path, encoder, detector, gate: PhotoGate = PhotoGate(),
            consistency: bool = True) -> list[EnrollOutcome]:
    """Re-enroll everyone kept in ``photos_dir`` with ``encoder``'s model: one new record
    per person at facegate/<site>/enroll/<new model id>/<person_id>. The old model's records
    stay, so devices still on the old model keep working until they are upgraded.
    People revoked in the store are skipped (their kept photos should have been deleted)."""
    archive = PhotoArchive(photos_dir)
    people = archive.people()
    pulled = _pull(target, "+") if target.store is not None else {}
    if target.store is None:
        log.warning("dry run without the store: revocations are not checked")
    outcomes = []
    for person in people:
        if target.store is not None and target.store.is_revoked(target.site, person.person_id):
            outcomes.append(EnrollOutcome(person.person_id, [], skipped="revoked: not re-enrolled "
                                          "(delete the kept photos with `facegate remove --keep-photos`)"))
            continue
        try:
            outcomes.append(enroll(target, person.person_id, person.name, list(person.photos), encoder, detector,
                                   gate, consistency, pulled=pulled, source="reembed"))
        except NoUsablePhoto as exc:
            exc.outcome.skipped = "no kept photo passed the checks with the new model"
            outcomes.append(exc.outcome)
    return outcomes
