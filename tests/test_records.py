"""Strict validation of enrollment messages (daemon/protocol/records.py) and the payload builders.

Field validation is checked here with ``allow_unsigned`` trust (the checks after the
signature); signatures themselves are tested in test_signing.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.protocol.person import MAX_ENCODINGS
from daemon.protocol.records import RecordError, max_payload_bytes, parse_enrollment
from daemon.protocol.signing import Trust
from daemon.protocol.topics import enroll_topic, revoke_topic
from daemon.server.publish import person_record, tombstone
from daemon_helpers import TEST_KEY, TEST_TRUST, unit_vectors

SITE, D = "home", 128
TOPIC = enroll_topic(SITE, "m1", "alice")
REVOKE = revoke_topic(SITE, "alice")
UNSIGNED_OK = Trust(allow_unsigned=True)


def record_payload(*args, **kwargs) -> bytes:
    return person_record(SITE, *args, **kwargs)[1]


def body(**changes) -> dict:
    b = json.loads(record_payload("alice", "Alice Example", unit_vectors(2), "m1", 3, None, updated_at=1700000000))
    b.update(changes)
    return {k: v for k, v in b.items() if v is not DROP}


def tomb(**changes) -> dict:
    b = json.loads(tombstone(SITE, "alice", 9, None, updated_at=1700000000)[1])
    b.update(changes)
    return {k: v for k, v in b.items() if v is not DROP}


DROP = object()


def parse(b, topic=TOPIC, trust=UNSIGNED_OK):
    payload = b if isinstance(b, bytes) else json.dumps(b).encode()
    return parse_enrollment(topic, payload, SITE, D, trust=trust)


def test_a_published_record_round_trips():
    encodings = unit_vectors(3, seed=5)
    topic, payload = person_record(SITE, "alice", "Alice Example", encodings, "m1", 7, TEST_KEY,
                                   updated_at=1700000000.5)
    assert topic == TOPIC == "facegate/home/enroll/m1/alice"
    r = parse(payload, trust=TEST_TRUST)
    assert (r.person_id, r.name, r.model_id, r.version, r.deleted) == ("alice", "Alice Example", "m1", 7, False)
    assert r.updated_at == pytest.approx(1700000000.5)
    assert r.encodings.dtype == np.float32 and r.encodings.shape == (3, D)
    np.testing.assert_allclose(r.encodings, encodings, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(r.encodings, axis=1), 1.0, atol=1e-6)


def test_a_tombstone_round_trips():
    topic, payload = tombstone(SITE, "alice", 9, TEST_KEY, updated_at=1700000000)
    assert topic == REVOKE == "facegate/home/revoke/alice"
    r = parse(payload, topic, trust=TEST_TRUST)
    assert r.deleted and r.version == 9 and r.person_id == "alice" and len(r.encodings) == 0


def test_payload_size_for_the_largest_record_fits_the_cap():
    topic, payload = person_record(SITE, "alice", "A" * 128, unit_vectors(MAX_ENCODINGS), "m" * 128, 2**62, TEST_KEY)
    assert len(payload) < max_payload_bytes(D)
    assert len(parse(payload, topic, trust=TEST_TRUST).encodings) == MAX_ENCODINGS


def test_any_embedding_size_is_accepted_when_none_is_expected_but_rows_must_agree():
    payload = record_payload("alice", "A", unit_vectors(2, dim=64), "m1", 1, None)
    assert parse_enrollment(TOPIC, payload, SITE, None, trust=UNSIGNED_OK).encodings.shape == (2, 64)
    with pytest.raises(RecordError, match="equally many"):
        parse_enrollment(TOPIC, json.dumps(body(encodings=[unit_vectors(1)[0].tolist(), [1.0]])).encode(),
                         SITE, None, trust=UNSIGNED_OK)


BAD = {
    "wrong site": (lambda: (body(), "facegate/elsewhere/enroll/m1/alice"), "wrong_site"),
    "not an enroll topic": (lambda: (body(), "facegate/home/device/alice"), "bad_topic"),
    "old one-level enroll topic": (lambda: (body(), "facegate/home/enroll/alice"), "bad_topic"),
    "topic id with bad characters": (lambda: (body(person_id="al ice"), "facegate/home/enroll/m1/al ice"),
                                     "bad_topic"),
    "model id with a wildcard": (lambda: (body(model_id="+"), "facegate/home/enroll/+/alice"), "bad_topic"),
    "model_id and topic disagree": (lambda: (body(model_id="m2"), TOPIC), "bad_field"),
    "record on the revoke topic": (lambda: (body(), REVOKE), "bad_field"),
    "tombstone not deleted": (lambda: (tomb(deleted=False), REVOKE), "bad_field"),
    "tombstone deleted missing": (lambda: (tomb(deleted=DROP), REVOKE), "bad_field"),
    "tombstone for another person": (lambda: (tomb(person_id="bob"), REVOKE), "bad_field"),
    "tombstone with a name": (lambda: (tomb(name="x"), REVOKE), "bad_field"),
    "schema 1 (unsigned era)": (lambda: (body(schema=1), TOPIC), "bad_field"),
    "updated_at year 1900": (lambda: (body(updated_at="1900-01-01T00:00:00Z"), TOPIC), "bad_field"),
    "updated_at year 9999": (lambda: (body(updated_at="9999-12-31T23:59:59+14:00"), TOPIC), "bad_field"),
    "signature field in the body": (lambda: (body(sig="x"), TOPIC), "bad_field"),
    "topic and body disagree": (lambda: (body(person_id="bob"), TOPIC), "bad_field"),
    "empty (cleared retained)": (lambda: (b"", TOPIC), "empty"),
    "oversized": (lambda: (b"{" + b" " * max_payload_bytes(D) + b"}", TOPIC), "too_large"),
    "not json": (lambda: (b"\x00\xff garbage", TOPIC), "bad_json"),
    "truncated": (lambda: (json.dumps(body()).encode()[:200], TOPIC), "bad_json"),
    "json array": (lambda: (b"[1, 2]", TOPIC), "bad_json"),
    "NaN literal": (lambda: (json.dumps(body()).replace('"encodings": [[', '"encodings": [[NaN, ').encode(), TOPIC),
                    "bad_json"),
    "Infinity literal": (lambda: (json.dumps(body()).replace('"encodings": [[', '"encodings": [[Infinity, ').encode(),
                          TOPIC), "bad_json"),
    "duplicate key": (lambda: (b'{"person_id": "alice", "person_id": "bob"}', TOPIC), "bad_json"),
    "deep nesting": (lambda: (b"[" * 100000 + b"]" * 100000, TOPIC), "bad_json"),
    "unknown field": (lambda: (body(admin=True), TOPIC), "bad_field"),
    "missing name": (lambda: (body(name=DROP), TOPIC), "bad_field"),
    "missing encodings": (lambda: (body(encodings=DROP), TOPIC), "bad_field"),
    "schema 3": (lambda: (body(schema=3), TOPIC), "bad_field"),
    "version 0": (lambda: (body(version=0), TOPIC), "bad_field"),
    "version bool": (lambda: (body(version=True), TOPIC), "bad_field"),
    "version float": (lambda: (body(version=3.0), TOPIC), "bad_field"),
    "version string": (lambda: (body(version="3"), TOPIC), "bad_field"),
    "version too big": (lambda: (body(version=2**63), TOPIC), "bad_field"),
    "updated_at without zone": (lambda: (body(updated_at="2025-01-01T00:00:00"), TOPIC), "bad_field"),
    "updated_at number": (lambda: (body(updated_at=1700000000), TOPIC), "bad_field"),
    "name empty": (lambda: (body(name=""), TOPIC), "bad_field"),
    "name too long": (lambda: (body(name="x" * 129), TOPIC), "bad_field"),
    "name control chars": (lambda: (body(name="Alice\n[INFO] forged log line"), TOPIC), "bad_field"),
    "model_id not a string": (lambda: (body(model_id=5), TOPIC), "bad_field"),
    "no encodings": (lambda: (body(encodings=[]), TOPIC), "bad_field"),
    "too many encodings": (lambda: (body(encodings=unit_vectors(65).tolist()), TOPIC), "bad_field"),
    "wrong dimension": (lambda: (body(encodings=unit_vectors(1, dim=64).tolist()), TOPIC), "bad_field"),
    "ragged": (lambda: (body(encodings=[unit_vectors(1)[0].tolist(), [1.0]]), TOPIC), "bad_field"),
    "string in vector": (lambda: (body(encodings=[["0.1"] * D]), TOPIC), "bad_field"),
    "bool in vector": (lambda: (body(encodings=[[True] + [0.0] * (D - 1)]), TOPIC), "bad_field"),
    "not unit": (lambda: (body(encodings=[[0.5] * D]), TOPIC), "bad_field"),
    "zero vector": (lambda: (body(encodings=[[0.0] * D]), TOPIC), "bad_field"),
    "huge integer": (lambda: (json.dumps(body(encodings=[[0] * (D - 1) + [1]])).replace(
        "[0,", "[" + "9" * 400 + ",", 1).encode(), TOPIC), "bad_field"),
    "deleted not bool": (lambda: (body(deleted="yes"), TOPIC), "bad_field"),
    "tombstone with encodings": (lambda: (body(deleted=True), TOPIC), "bad_field"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_messages_are_refused_with_a_reason(case):
    make, reason = BAD[case]
    payload, topic = make()
    with pytest.raises(RecordError) as info:
        parse(payload, topic)
    assert info.value.reason == reason, str(info.value)


def test_error_messages_name_the_topic_and_the_field():
    with pytest.raises(RecordError, match=r"facegate/home/enroll/m1/alice: version must be an integer"):
        parse(body(version=-1))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                    max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), JSON.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(sorted(body())), JSON, max_size=8).map(
                     lambda d: json.dumps({**body(), **d}).encode())))
def test_arbitrary_payloads_raise_record_error_or_yield_a_valid_record(payload):
    try:
        r = parse(payload)
    except RecordError:
        return
    # Whatever got through is fully well-formed.
    assert r.person_id == "alice" and isinstance(r.version, int) and r.version >= 1
    assert r.deleted or (r.encodings.shape[1] == D and np.isfinite(r.encodings).all())
