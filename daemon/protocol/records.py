"""Strict validation of enrollment messages: bytes from the broker -> PersonRecord.

Anyone who can publish to the broker can send anything, so nothing here trusts the
payload, and the checks run cheapest first: the topic, the size (before anything is
parsed), the Ed25519 signature over topic and body (before the JSON is parsed), then
the exact JSON shape (unknown or duplicate keys are refused) and every field's type
and range. A message whose topic and body disagree is refused. The one entry point,
:func:`parse_enrollment`, is pure.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np

from daemon.protocol import topics
from daemon.protocol.person import MAX_ENCODINGS, MAX_NAME_CHARS, PersonRecord
from daemon.protocol.signing import SignatureError, Trust

SCHEMA = 2                        # 2: signed, person records keyed by model (1 was unsigned, one topic per person)
MAX_VERSION = 2**63 - 1           # SQLite INTEGER
MAX_MODEL_ID_CHARS = 128
MAX_EMBEDDING_SIZE = 1024         # when the embedding size is not known (`facegate list`)
NORM_TOLERANCE = 0.02             # encodings must be unit vectors (the publisher normalises)
MAX_TIMESTAMP_CHARS = 40
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp()
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc).timestamp()
UPSERT_KEYS = {"schema", "person_id", "version", "updated_at", "name", "model_id", "encodings"}
TOMBSTONE_KEYS = {"schema", "person_id", "version", "updated_at", "deleted"}

# Reason codes (health-record keys), besides signing.UNSIGNED / UNKNOWN_KEY / BAD_SIGNATURE.
EMPTY = "empty"            # zero-length retained message: a cleared topic, not a revocation
TOO_LARGE = "too_large"
BAD_TOPIC = "bad_topic"
WRONG_SITE = "wrong_site"
BAD_JSON = "bad_json"
BAD_FIELD = "bad_field"


class RecordError(ValueError):
    """An enrollment message that must be ignored; ``reason`` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def max_payload_bytes(embedding_size: int | None) -> int:
    """Generous cap: MAX_ENCODINGS x D numbers of up to 26 characters each, plus the rest."""
    return 4096 + MAX_ENCODINGS * (embedding_size or MAX_EMBEDDING_SIZE) * 26


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in object")
    return dict(pairs)


def field_error(message: str) -> RecordError:
    return RecordError(BAD_FIELD, message)


def _sync_topic(topic: str, expected_site: str) -> topics.SyncTopic:
    parsed = topics.parse_sync_topic(topic)
    if parsed is None or parsed.kind == topics.MANIFEST:
        raise RecordError(BAD_TOPIC, f"not an enroll or revoke topic: {topic[:200]!r}")
    if parsed.site != expected_site:
        raise RecordError(WRONG_SITE, f"record for site {parsed.site!r}, this device is in {expected_site!r}")
    return parsed


def int_field(body: dict, key: str, low: int, high: int) -> int:
    value = body.get(key)
    if type(value) is not int or not low <= value <= high:  # bool is not an int here
        raise field_error(f"{key} must be an integer in [{low}, {high}] (got {str(value)[:40]!r})")
    return value


def timestamp_field(value, key: str = "updated_at") -> float:
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_CHARS:
        raise field_error(f"{key} must be an ISO 8601 string such as '2025-01-31T12:00:00Z'")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise field_error(f"{key} is not ISO 8601: {value[:40]!r}") from exc
    if when.tzinfo is None:
        raise field_error(f"{key} needs a timezone (e.g. 'Z'): {value!r}")
    try:
        epoch = when.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise field_error(f"{key} is out of range: {value!r}") from exc
    if not EARLIEST <= epoch < LATEST:
        raise field_error(f"{key} must be between the years 2000 and 2200: {value!r}")
    return epoch


def _text_field(body: dict, key: str, max_chars: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
        raise field_error(f"{key} must be a string of 1 to {max_chars} characters")
    if not value.isprintable():
        raise field_error(f"{key} contains control characters")
    return value


def _encodings(value, embedding_size: int | None) -> np.ndarray:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ENCODINGS:
        raise field_error(f"encodings must be a list of 1 to {MAX_ENCODINGS} vectors")
    size = embedding_size
    if size is None:  # any size, as long as every vector has it
        first = value[0]
        size = len(first) if isinstance(first, list) and 1 <= len(first) <= MAX_EMBEDDING_SIZE else -1
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != size:
            raise field_error(f"encodings[{i}] must be a list of {embedding_size or 'equally many'} numbers"
                               + (" (the loaded model's embedding size)" if embedding_size else ""))
        if not all(type(v) in (int, float) for v in row):
            raise field_error(f"encodings[{i}] holds a non-number")
    try:
        matrix = np.asarray(value, np.float64)
    except OverflowError:  # an integer literal with hundreds of digits
        raise field_error("encodings hold a non-finite value") from None
    if not np.isfinite(matrix).all():
        raise field_error("encodings hold a non-finite value")
    if np.abs(matrix).max() > 1.0 + NORM_TOLERANCE:  # no unit vector has such a component (and 1e308**2 overflows)
        raise field_error("encodings must be unit vectors")
    norms = np.linalg.norm(matrix, axis=1)
    if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
        raise field_error("encodings must be unit vectors")
    return np.ascontiguousarray(matrix / norms[:, None], np.float32)


def decode_object(topic: str, data: bytes) -> dict:
    """Strict JSON: one object, no NaN/Infinity, no duplicate keys; RecordError(BAD_JSON) otherwise."""
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(BAD_JSON, f"{topic}: not valid JSON ({str(exc)[:120]})") from exc
    if not isinstance(body, dict):
        raise RecordError(BAD_JSON, f"{topic}: payload must be a JSON object")
    return body


def parse_enrollment(topic: str, payload: bytes, expected_site: str, embedding_size: int | None, *,
                     trust: Trust) -> PersonRecord:
    """Validate one enrollment message; return the record (a tombstone for a revoke
    topic) or raise RecordError. ``embedding_size`` None accepts any consistent size."""
    where = _sync_topic(topic, expected_site)
    if len(payload) == 0:
        raise RecordError(EMPTY, f"{topic}: empty payload (a cleared retained message); "
                                 "revocation needs a tombstone, nothing changed")
    limit = max_payload_bytes(embedding_size)
    if len(payload) > limit:
        raise RecordError(TOO_LARGE, f"{topic}: {len(payload)} bytes is over the {limit} byte limit")
    try:
        body_bytes = trust.body_of(topic, payload)
    except SignatureError as exc:
        raise RecordError(exc.reason, f"{topic}: {exc}") from None
    body = decode_object(topic, body_bytes)
    try:
        return _record(body, where, embedding_size)
    except RecordError as exc:
        raise RecordError(exc.reason, f"{topic}: {exc}") from None


def _record(body: dict, where: topics.SyncTopic, embedding_size: int | None) -> PersonRecord:
    tombstone = where.kind == topics.REVOKE
    allowed = TOMBSTONE_KEYS if tombstone else UPSERT_KEYS
    unknown = sorted(set(body) - allowed)
    if unknown:
        kind = "a tombstone (revoke topic)" if tombstone else "a person record (enroll topic)"
        raise field_error(f"unexpected field(s) for {kind}: {', '.join(repr(k[:40]) for k in unknown[:5])}")
    missing = sorted(allowed - set(body))
    if missing:
        raise field_error(f"missing field(s) {', '.join(missing)}")
    int_field(body, "schema", SCHEMA, SCHEMA)
    if body["person_id"] != where.person_id:
        raise field_error(f"person_id {str(body['person_id'])[:70]!r} does not match the topic")
    version = int_field(body, "version", 1, MAX_VERSION)
    updated_at = timestamp_field(body["updated_at"])
    if tombstone:
        if body["deleted"] is not True:
            raise field_error("deleted must be true in a tombstone")
        return PersonRecord.tombstone(where.person_id, version, updated_at)
    name = _text_field(body, "name", MAX_NAME_CHARS)
    model_id = _text_field(body, "model_id", MAX_MODEL_ID_CHARS)
    if model_id != where.model_id:
        raise field_error(f"model_id {model_id[:70]!r} does not match the topic")
    return PersonRecord(person_id=where.person_id, version=version, model_id=model_id, name=name,
                        encodings=_encodings(body["encodings"], embedding_size), updated_at=updated_at)
