"""Strict validation of enrollment messages: bytes from the broker -> PersonRecord.

Anyone who can publish to the broker can send anything, so nothing here trusts the
payload: size is capped before parsing, the JSON shape is exact (unknown or duplicate
keys are refused), every field is type- and range-checked, and a message whose topic
and body disagree is refused. The one entry point, :func:`parse_enrollment`, is pure;
signature checking (a ``sig`` field) will slot in here.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np

from daemon.gallery.record import MAX_ENCODINGS, MAX_NAME_CHARS, PersonRecord, valid_person_id
from daemon.sync.topics import ROOT

SCHEMA = 1
MAX_VERSION = 2**63 - 1           # SQLite INTEGER
MAX_MODEL_ID_CHARS = 128
NORM_TOLERANCE = 0.02             # encodings must be unit vectors (the publisher normalises)
UPSERT_KEYS = {"schema", "person_id", "version", "updated_at", "name", "model_id", "encodings", "deleted"}
TOMBSTONE_KEYS = {"schema", "person_id", "version", "updated_at", "deleted"}

# Reason codes (health-record keys).
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


def max_payload_bytes(embedding_size: int) -> int:
    """Generous cap: MAX_ENCODINGS x D numbers of up to 26 characters each, plus the rest."""
    return 4096 + MAX_ENCODINGS * embedding_size * 26


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in object")
    return dict(pairs)


def _field_error(message: str) -> RecordError:
    return RecordError(BAD_FIELD, message)


def _person_id_from_topic(topic: str, expected_site: str) -> str:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != ROOT or parts[2] != "enroll":
        raise RecordError(BAD_TOPIC, f"not an enrollment topic: {topic[:200]!r}")
    if parts[1] != expected_site:
        raise RecordError(WRONG_SITE, f"record for site {parts[1][:64]!r}, this device is in {expected_site!r}")
    if not valid_person_id(parts[3]):
        raise RecordError(BAD_TOPIC, f"invalid person id in topic {topic[:200]!r}")
    return parts[3]


def _int_field(body: dict, key: str, low: int, high: int) -> int:
    value = body.get(key)
    if type(value) is not int or not low <= value <= high:  # bool is not an int here
        raise _field_error(f"{key} must be an integer in [{low}, {high}] (got {str(value)[:40]!r})")
    return value


def _timestamp(value) -> float:
    if not isinstance(value, str) or len(value) > 40:
        raise _field_error("updated_at must be an ISO 8601 string such as '2025-01-31T12:00:00Z'")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _field_error(f"updated_at is not ISO 8601: {value!r}") from exc
    if when.tzinfo is None:
        raise _field_error(f"updated_at needs a timezone (e.g. 'Z'): {value!r}")
    return when.timestamp()


def _text_field(body: dict, key: str, max_chars: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
        raise _field_error(f"{key} must be a string of 1 to {max_chars} characters")
    if not value.isprintable():
        raise _field_error(f"{key} contains control characters")
    return value


def _encodings(value, embedding_size: int) -> np.ndarray:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ENCODINGS:
        raise _field_error(f"encodings must be a list of 1 to {MAX_ENCODINGS} vectors")
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != embedding_size:
            raise _field_error(f"encodings[{i}] must be a list of {embedding_size} numbers "
                               f"(the loaded model's embedding size)")
        if not all(type(v) in (int, float) for v in row):
            raise _field_error(f"encodings[{i}] holds a non-number")
    try:
        matrix = np.asarray(value, np.float64)
    except OverflowError:  # an integer literal with hundreds of digits
        raise _field_error("encodings hold a non-finite value") from None
    if not np.isfinite(matrix).all():
        raise _field_error("encodings hold a non-finite value")
    norms = np.linalg.norm(matrix, axis=1)
    if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
        raise _field_error("encodings must be unit vectors")
    return np.ascontiguousarray(matrix / norms[:, None], np.float32)


def parse_enrollment(topic: str, payload: bytes, expected_site: str, embedding_size: int) -> PersonRecord:
    """Validate one enrollment message; return the record or raise RecordError."""
    person_id = _person_id_from_topic(topic, expected_site)
    if len(payload) == 0:
        raise RecordError(EMPTY, f"{topic}: empty payload (a cleared retained message); "
                                 "revocation needs a tombstone, nothing changed")
    if len(payload) > max_payload_bytes(embedding_size):
        raise RecordError(TOO_LARGE, f"{topic}: {len(payload)} bytes is over the "
                                     f"{max_payload_bytes(embedding_size)} byte limit")
    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant,
                          object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(BAD_JSON, f"{topic}: not valid JSON ({str(exc)[:120]})") from exc
    if not isinstance(body, dict):
        raise RecordError(BAD_JSON, f"{topic}: payload must be a JSON object")
    try:
        return _record(body, person_id, embedding_size)
    except RecordError as exc:
        raise RecordError(exc.reason, f"{topic}: {exc}") from None


def _record(body: dict, person_id: str, embedding_size: int) -> PersonRecord:
    deleted = body.get("deleted", False)
    if not isinstance(deleted, bool):
        raise _field_error("deleted must be true or false")
    allowed = TOMBSTONE_KEYS if deleted else UPSERT_KEYS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _field_error(f"unexpected field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}")
    missing = sorted((allowed - {"deleted"}) - set(body))
    if missing:
        raise _field_error(f"missing field(s) {', '.join(missing)}")
    _int_field(body, "schema", SCHEMA, SCHEMA)
    if body["person_id"] != person_id:
        raise _field_error(f"person_id {str(body['person_id'])[:70]!r} does not match the topic")
    version = _int_field(body, "version", 1, MAX_VERSION)
    updated_at = _timestamp(body["updated_at"])
    if deleted:
        return PersonRecord.tombstone(person_id, version, updated_at)
    name = _text_field(body, "name", MAX_NAME_CHARS)
    model_id = _text_field(body, "model_id", MAX_MODEL_ID_CHARS)
    return PersonRecord(person_id=person_id, version=version, model_id=model_id, name=name,
                        encodings=_encodings(body["encodings"], embedding_size), updated_at=updated_at)

