"""Hostile input: enrollment messages and image files built to break the device.

The message tests drive the real MQTT callback (MqttLink._on_message, with paho's own
MQTTMessage objects; no network needed) with a seeded generator of 12,000 malformed,
truncated, oversized, unsigned, forged, moved and adversarial payloads, plus hypothesis
properties. Expected: 0 crashes, 0 records accepted into the gallery, the gallery unchanged.
The image tests feed crafted files (decompression bombs, truncated and fake files) to
the image loader and the enrollment photo gate.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage

from daemon.door.link import MqttLink
from daemon.gallery import Gallery
from daemon.images import MAX_FILE_BYTES, ImageError, decode_image, load_image
from daemon.protocol.broker import BrokerSettings
from daemon.protocol.manifest import build_manifest
from daemon.protocol.records import max_payload_bytes
from daemon.protocol.signing import key_id, sign_payload
from daemon.protocol.topics import enroll_topic, manifest_page_topic, manifest_topic, parse_sync_topic, revoke_topic
from daemon.server import publish as build
from daemon.server.gate import PhotoGate
from daemon.server.photos import examine_photo
from daemon_helpers import TEST_KEY, TEST_TRUST, PixelEncoder, unit_vectors

SITE, MODEL, D = "hq", "m1", 128
STORED_VERSION = 100
N_PAYLOADS = 12_000
ATTACKER = Ed25519PrivateKey.from_private_bytes(b"\x66" * 32)


# ---------------------------------------------------------------- the device under attack

def make_link() -> MqttLink:
    """A real link, never connected: messages go straight into its paho callback."""
    return MqttLink(broker=BrokerSettings("127.0.0.1", 1), site=SITE, device_id="door1", model_id=MODEL,
                    embedding_size=D, trust=TEST_TRUST)


def deliver(link: MqttLink, topic: str | bytes, payload: bytes) -> None:
    message = MQTTMessage(topic=topic.encode("utf-8", "surrogatepass") if isinstance(topic, str) else topic)
    message.payload = payload
    link._on_message(None, None, message)  # exactly what paho's network thread calls


def snapshot(gallery: Gallery) -> list[tuple]:
    return [(r.person_id, r.version, r.deleted, r.name, r.model_id, r.encodings.tobytes())
            for r in gallery.all_records()]


@pytest.fixture
def device(tmp_path):
    """A link and a gallery holding alice and bob (v100) and a tombstone for carol (v100),
    all delivered through the link like real records."""
    link, gallery = make_link(), Gallery.open(tmp_path)
    for person, k in (("alice", 2), ("bob", 3)):
        deliver(link, *build.person_record(SITE, person, person.title(), unit_vectors(k, seed=k), MODEL,
                                           STORED_VERSION, TEST_KEY))
    deliver(link, *build.tombstone(SITE, "carol", STORED_VERSION, TEST_KEY))
    for record in link.take_records():
        assert gallery.apply(record)
    assert [r.person_id for r in gallery.people()] == ["alice", "bob"] and link.rejected_counts() == {}
    yield link, gallery
    gallery.close()


# ---------------------------------------------------------------- the seeded payload generator

PEOPLE = ["alice", "bob", "carol", "mallory", "x" * 64, "A-b.c_9"]


def _valid_body(rng: random.Random, person: str = "alice", version: int | None = None) -> dict:
    k = rng.choice([1, 2, 5])
    return {"schema": 2, "person_id": person, "version": version or rng.randrange(STORED_VERSION + 1, 2**62),
            "updated_at": "2025-06-01T12:00:00.000Z", "name": "Alice", "model_id": MODEL,
            "encodings": [[round(v, 6) for v in row] for row in unit_vectors(k, seed=rng.randrange(1000)).tolist()]}


def _encode(body) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _newer_signed(rng: random.Random) -> tuple[str, bytes]:
    """An authentic record that *would* be applied: the base that mutations break."""
    person = rng.choice(["alice", "bob", "dave"])
    topic = enroll_topic(SITE, MODEL, person)
    return topic, sign_payload(TEST_KEY, topic, _encode(_valid_body(rng, person)))


def _any_topic(rng: random.Random, person: str = "alice") -> str:
    return rng.choice([enroll_topic(SITE, MODEL, person), revoke_topic(SITE, person)])


def gen_random_bytes(rng):
    return _any_topic(rng), rng.randbytes(rng.choice([0, 1, 2, 3, 17, 100, 1000, 5000]))


def gen_truncated(rng):
    topic, payload = _newer_signed(rng)
    return topic, payload[:rng.randrange(0, len(payload))]


def gen_mutated(rng):
    topic, payload = _newer_signed(rng)
    data = bytearray(payload)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data))
        op = rng.random()
        if op < 0.6:
            data[at] = (data[at] + rng.randint(1, 255)) % 256  # always a different byte
        elif op < 0.8:
            del data[at]
        else:
            data.insert(at, rng.randrange(256))
    if bytes(data) == payload:
        data.append(32)
    return topic, bytes(data)


def gen_oversized(rng):
    topic, payload = _newer_signed(rng)
    limit = max_payload_bytes(D)
    filler = rng.choice([b" ", b"0", b"[", b"\xff"])
    size = rng.choice([limit + 1, limit + 100, 2 * limit, 4 * 1024 * 1024])
    if rng.random() < 0.5:  # a signed-looking payload padded inside the JSON
        return topic, payload[:20] + filler * (size - len(payload)) + payload[20:]
    return topic, filler * size


def gen_unsigned(rng):
    person = rng.choice(PEOPLE)
    if rng.random() < 0.5:
        return enroll_topic(SITE, MODEL, person), _encode(_valid_body(rng, person))
    return revoke_topic(SITE, person), _encode({"schema": 2, "person_id": person, "version": 2**62,
                                                "updated_at": "2025-06-01T12:00:00Z", "deleted": True})


def gen_wrong_key(rng):
    person = rng.choice(PEOPLE)
    if rng.random() < 0.5:
        topic, body = enroll_topic(SITE, MODEL, person), _encode(_valid_body(rng, person))
    else:
        topic = revoke_topic(SITE, person)
        body = _encode({"schema": 2, "person_id": person, "version": 2**62,
                        "updated_at": "2025-06-01T12:00:00Z", "deleted": True})
    payload = sign_payload(ATTACKER, topic, body)
    if rng.random() < 0.5:  # claim to be the trusted key
        payload = payload.replace(key_id(ATTACKER.public_key()).encode(), key_id(TEST_KEY.public_key()).encode())
    return topic, payload


JUNK_TOPICS = ["", "/", "#", "+", "facegate", "facegate/hq", "facegate/hq/enroll", "facegate/hq/enroll/m1",
               "facegate/hq/enroll/m1/alice/extra", "facegate/hq/enroll/+/alice", "facegate/hq/enroll/m1/#",
               "facegate/hq/revoke", "facegate/hq/revoke/alice/x", "facegate/hq/device/door1/event",
               "facegate/HQ/enroll/m1/alice", "facegate/hq/enroll/m1/al ice", "facegate/hq/enroll/m1/ålice",
               "facegate/hq/enroll/m\u0000/alice", "facegate/hq/enroll/m1/" + "a" * 65, "x" * 70000,
               "facegate/../enroll/m1/alice", "facegate/hq/enroll//alice", "facegate/other/enroll/m1/alice",
               "facegate/other/revoke/alice", "FACEGATE/hq/enroll/m1/alice"]


def gen_moved(rng):
    signed_for, payload = _newer_signed(rng)
    choice = rng.random()
    if choice < 0.5:  # a real, well-formed topic of this site, but not the one it was signed for
        topic = signed_for
        while topic == signed_for:
            person = rng.choice(PEOPLE)
            topic = rng.choice([enroll_topic(SITE, rng.choice(["m2", MODEL]), person), revoke_topic(SITE, person)])
        return topic, payload
    if choice < 0.9:
        return rng.choice(JUNK_TOPICS), payload
    return rng.randbytes(rng.randint(1, 40)) + b"\xff\xfe", payload  # not UTF-8


REQUIRED = ("schema", "person_id", "version", "updated_at", "name", "model_id", "encodings")


def _drop(rng, body: dict) -> dict:
    """Remove a required field (never one another break added: that would repair the body)."""
    present = [k for k in REQUIRED if k in body]
    if not present:
        return body
    dropped = rng.choice(present)
    return {k: v for k, v in body.items() if k != dropped}


# Each one makes a valid body invalid (and applying several keeps it invalid).
BREAKS = [
    _drop,
    lambda rng, b: {**b, rng.choice(["sig", "kid", "admin", "deleted", "", "x" * 1000]): True},
    lambda rng, b: {**b, "schema": rng.choice([0, 1, 3, "2", 2.0, True, None, [], {}])},
    lambda rng, b: {**b, "person_id": rng.choice(["zed", "", 5, None, "alice ", "ALICE", "a" * 10000, ["alice"]])},
    lambda rng, b: {**b, "version": rng.choice([0, -1, 2**63, 2**200, 1.5, 1e300, "5", True, False, None, []])},
    lambda rng, b: {**b, "updated_at": rng.choice(["", "yesterday", 12345, None, "2025-01-01T00:00:00",
                                                   "1800-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
                                                   "2025-13-01T00:00:00Z", "2" * 1000])},
    lambda rng, b: {**b, "name": rng.choice(["", "x" * 129, "a\nb", "\u202eevil", "tab\there", 5, None, ["n"]])},
    lambda rng, b: {**b, "model_id": rng.choice(["m2", "", 5, None, "m1 ", "x" * 129])},
    lambda rng, b: {**b, "encodings": rng.choice([
        [], None, "x", {}, [[]], [[0.0] * D], [[1.0] + [0.0] * (D - 2)], [[1.0] + [0.0] * D],
        [[0.5] * D], [["0.1"] * D], [[True] + [0.0] * (D - 1)], [[None] * D], [[[1.0]] * D],
        [[1.0] + [0.0] * (D - 1)] * 65, [[1.0] + [0.0] * (D - 1), [1.0]], [[1e308] * D], [[-1e-320] * D]])},
]

RAW_BREAKS = [  # text-level breakage JSON encoders cannot produce
    lambda body: body.replace(b'"encodings":[[', b'"encodings":[[NaN,', 1),
    lambda body: body.replace(b'"encodings":[[', b'"encodings":[[Infinity,', 1),
    lambda body: body.replace(b'"encodings":[[', b'"encodings":[[1e400,', 1),
    lambda body: body.replace(b'"encodings":[[', b'"encodings":[[' + b"9" * 5000 + b",", 1),
    lambda body: body.replace(b'"name":"Alice"', b'"name":"Alice","name":"Bob"', 1),
    lambda body: body.replace(b'"name":"Alice"', b'"name":"\xff\xfe"', 1),
    lambda body: body.replace(b'"name":"Alice"', b'"name":"\\ud800"', 1),
    lambda body: body.replace(b'"encodings":', b'"encodings":' + b"[" * 50_000 + b"]" * 50_000 + b',"e":', 1),
    lambda body: b'{"a":' + b"{" * 10_000 + b"}" * 10_000 + b"}",
    lambda body: b'{"schema":2}',
    lambda body: body[:-1] + b',}',
    lambda body: body.replace(b'{', b'{ "x" : 1 , ', 1),
]


def gen_signed_malformed(rng):
    """Authentic signatures on adversarial bodies (a compromised or buggy server): the
    field validation behind the signature must still refuse every one."""
    person = rng.choice(["alice", "bob", "dave"])
    body = _valid_body(rng, person)
    if rng.random() < 0.7:
        for _ in range(rng.randint(1, 3)):
            body = rng.choice(BREAKS)(rng, body)
        raw = _encode(body)
    else:
        raw = rng.choice(RAW_BREAKS)(_encode(body))
    kind = rng.random()
    if kind < 0.1:  # a person record on the revoke topic, or a tombstone on an enroll topic
        topic, raw = revoke_topic(SITE, person), _encode(_valid_body(rng, person))
    elif kind < 0.2:
        topic = enroll_topic(SITE, MODEL, person)
        raw = _encode({"schema": 2, "person_id": person, "version": 2**62, "updated_at": "2025-06-01T12:00:00Z",
                       "deleted": rng.choice([True, False, "true", 1])})
    elif kind < 0.25:
        topic = revoke_topic(SITE, person)
        raw = _encode({"schema": 2, "person_id": person, "version": 2**62, "updated_at": "2025-06-01T12:00:00Z",
                       "deleted": rng.choice([False, "true", 1, None])})
    else:
        topic = enroll_topic(SITE, MODEL, person)
    return topic, sign_payload(TEST_KEY, topic, raw)


def gen_replayed_older(rng):
    """Genuine, correctly signed, but not newer than what the device holds."""
    person = rng.choice(["alice", "bob", "carol"])
    version = rng.randint(1, STORED_VERSION)
    if rng.random() < 0.7:
        return build.person_record(SITE, person, "Old", unit_vectors(1, seed=version), MODEL, version, TEST_KEY)
    return build.tombstone(SITE, person, version, TEST_KEY)


GENERATORS = {  # name -> (generator, how many)
    "random bytes": (gen_random_bytes, 1500),
    "truncated": (gen_truncated, 1500),
    "mutated": (gen_mutated, 2000),
    "oversized": (gen_oversized, 100),
    "unsigned": (gen_unsigned, 1000),
    "wrong key": (gen_wrong_key, 1000),
    "moved": (gen_moved, 1400),
    "signed malformed": (gen_signed_malformed, 2500),
    "replayed older": (gen_replayed_older, 1000),
}


def hostile_payloads(seed: int = 20250131):
    rng = random.Random(seed)
    for name, (make, count) in GENERATORS.items():
        for _ in range(count):
            yield name, *make(rng)


def test_12000_hostile_enrollment_messages_crash_nothing_and_change_nothing(device, caplog):
    link, gallery = device
    before, generation = snapshot(gallery), gallery.generation
    logging.getLogger("daemon.door.link").setLevel(logging.ERROR)  # 12,000 warnings would only cost time
    counts: dict[str, int] = {}
    empty = 0
    started = time.monotonic()
    try:
        for name, topic, payload in hostile_payloads():
            counts[name] = counts.get(name, 0) + 1
            empty += payload == b"" and parse_sync_topic(topic) is not None  # a cleared topic, not an attack
            deliver(link, topic, payload)
    finally:
        logging.getLogger("daemon.door.link").setLevel(logging.NOTSET)
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    assert total == N_PAYLOADS == 12_000 and counts == {k: n for k, (_, n) in GENERATORS.items()}

    rejected = link.rejected_counts()
    assert "internal_error" not in rejected, "a payload reached an unexpected exception: a crash"
    queued = link.take_records()
    # Only the genuine-but-older replays get past validation, and the gallery refuses each one.
    assert len(queued) == counts["replayed older"]
    assert all(r.version <= STORED_VERSION and r.person_id in ("alice", "bob", "carol") for r in queued)
    applied = sum(gallery.apply(r) for r in queued)
    assert applied == 0
    assert sum(rejected.values()) == total - len(queued) - empty  # empty payloads are cleared topics, not counted
    assert snapshot(gallery) == before and gallery.generation == generation, "the gallery must not change"
    for reason in ("unsigned", "unknown_key", "bad_signature", "too_large", "bad_topic", "wrong_site",
                   "bad_field", "bad_json"):
        assert rejected.get(reason, 0) > 0, f"no payload exercised {reason}: {rejected}"
    print(f"\n{total} hostile payloads in {elapsed:.1f} s: 0 crashes, 0 accepted; rejected {rejected}, "
          f"{len(queued)} authentic replays refused as stale, {empty} empty")


# ---------------------------------------------------------------- hypothesis properties

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: (st.lists(inner, max_size=5)
                                   | st.dictionaries(st.text(max_size=12), inner, max_size=6)),
                    max_leaves=30)
SLOW_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]  # the fixture is not reset per example
KEYS = ["schema", "person_id", "version", "updated_at", "name", "model_id", "encodings", "deleted", "sig", "kid"]


@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW_OK)
@given(topic=st.one_of(st.sampled_from([enroll_topic(SITE, MODEL, "alice"), revoke_topic(SITE, "alice")]),
                       st.text(max_size=80)),
       payload=st.one_of(st.binary(max_size=2000), JSON.map(lambda v: json.dumps(v).encode())))
def test_any_unsigned_bytes_on_any_topic_are_refused(device, topic, payload):
    link, gallery = device
    deliver(link, topic, payload)
    assert link.take_records() == []
    assert "internal_error" not in link.rejected_counts()


@settings(max_examples=800, deadline=None, suppress_health_check=SLOW_OK)
@given(changes=st.dictionaries(st.sampled_from(KEYS), JSON, min_size=1, max_size=6),
       revoke=st.booleans())
def test_signed_bodies_with_arbitrary_fields_are_refused_unless_fully_valid(device, changes, revoke):
    """Even with the server's own signature, only a record that is valid in every field
    passes; and anything that passes is well-formed."""
    link, _ = device
    body = _valid_body(random.Random(0), "alice")
    if revoke:
        body = {"schema": 2, "person_id": "alice", "version": 2**62, "updated_at": "2025-06-01T12:00:00Z",
                "deleted": True}
    body.update(changes)
    topic = revoke_topic(SITE, "alice") if revoke else enroll_topic(SITE, MODEL, "alice")
    try:
        raw = json.dumps(body, separators=(",", ":"), allow_nan=True).encode()
    except (ValueError, TypeError):
        return
    deliver(link, topic, sign_payload(TEST_KEY, topic, raw))
    assert "internal_error" not in link.rejected_counts()
    for record in link.take_records():
        assert record.person_id == "alice" and 1 <= record.version < 2**63
        assert record.deleted or (record.model_id == MODEL and record.encodings.shape[1] == D
                                  and np.isfinite(record.encodings).all())


MANIFEST_TOPICS = [manifest_topic(SITE, MODEL), manifest_page_topic(SITE, MODEL, 0),
                   manifest_page_topic(SITE, MODEL, 255), "facegate/hq/manifest/m1/007", "facegate/hq/manifest/m1/x"]
MANIFEST_KEYS = ["schema", "site", "model_id", "seq", "issued_at", "expires_at", "enrolled", "revoked", "pages"]


@settings(max_examples=1000, deadline=None, suppress_health_check=SLOW_OK)
@given(topic=st.sampled_from(MANIFEST_TOPICS),
       payload=st.one_of(st.binary(max_size=2000), JSON.map(lambda v: json.dumps(v).encode())))
def test_any_bytes_on_the_manifest_topics_are_refused_without_a_crash(device, topic, payload):
    link, _ = device
    deliver(link, topic, payload)
    assert "internal_error" not in link.rejected_counts()
    for item in link.take_manifests():  # only a page can pass unsigned; it counts only if a top lists its hash
        sha, entries = item
        assert len(sha) == 64 and all(1 <= v < 2**63 for v, _ in entries.values())


@settings(max_examples=600, deadline=None, suppress_health_check=SLOW_OK)
@given(changes=st.dictionaries(st.sampled_from(MANIFEST_KEYS), JSON, min_size=1, max_size=5))
def test_signed_manifests_with_arbitrary_fields_are_refused_unless_fully_valid(device, changes):
    link, _ = device
    body = json.loads(build_manifest(SITE, MODEL, {"alice": (5, False)}, 7, time.time(), 60, None).top[1])
    body.update(changes)
    try:
        raw = json.dumps(body, separators=(",", ":"), allow_nan=True).encode()
    except (ValueError, TypeError):
        return
    deliver(link, manifest_topic(SITE, MODEL), sign_payload(TEST_KEY, manifest_topic(SITE, MODEL), raw))
    assert "internal_error" not in link.rejected_counts()
    for top in link.take_manifests():
        assert 1 <= top.seq < 2**63 and top.expires_at > top.issued_at and len(top.pages) >= 1


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_decode_into_a_crash(data):
    try:
        image = decode_image(data, "fuzz")
    except ImageError:
        return
    assert image.dtype == np.uint8 and image.ndim in (2, 3)


@functools.lru_cache(maxsize=None)
def _real_image(fmt: str) -> bytes:
    image = cv2.imread(str(next((Path(__file__).parent / "fixtures" / "faces").glob("*/*.jpg"))), cv2.IMREAD_GRAYSCALE)
    return cv2.imencode(fmt, image)[1].tobytes()


@settings(max_examples=600, deadline=None)
@given(fmt=st.sampled_from([".jpg", ".png", ".bmp", ".webp", ".tiff", ".pgm"]),
       edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, 100_000))
def test_mutated_real_images_give_an_image_or_a_clear_error(fmt, edits, cut):
    """Byte edits in the headers (where sizes are declared) and truncation."""
    data = bytearray(_real_image(fmt))
    for at, value in edits:
        if at < len(data):
            data[at] = value
    try:
        image = decode_image(bytes(data[:cut]), "mutated")
    except ImageError as exc:
        assert str(exc).startswith("mutated: ")
        return
    assert image.dtype == np.uint8 and min(image.shape[:2]) >= 8


# ---------------------------------------------------------------- crafted image files

def _png(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def _bmp(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54)
    return header + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0) + b"\x00" * 64


def _webp(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def _tiff(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, min(width * height, 2**32 - 1))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def _jpeg_truncated() -> bytes:
    data = _real_image(".jpg")
    return data[:len(data) * 2 // 3]


CRAFTED = {
    "png-bomb.png": (lambda: _png(100_000, 100_000), "declares 100000x100000 pixels, over the"),
    "png-zero-width.png": (lambda: _png(0, 10), "too small to hold a face"),
    "bmp-bomb.bmp": (lambda: _bmp(60_000, -60_000), "declares 60000x60000 pixels"),
    "webp-bomb.webp": (lambda: _webp(16_000_000, 16_000_000), "declares 16000000x16000000 pixels"),
    "tiff-bomb.tif": (lambda: _tiff(200_000, 200_000), "declares 200000x200000 pixels"),
    "pnm-bomb.pgm": (lambda: b"P5\n# a comment\n900000 900000\n255\n" + b"\x00" * 100, "declares 900000x900000"),
    "truncated.jpg": (_jpeg_truncated, "JPEG is truncated"),
    "header-only.jpg": (lambda: _real_image(".jpg")[:300], "JPEG is truncated"),
    "truncated.png": (lambda: _real_image(".png")[:2000], "not a readable image"),
    "text.jpg": (lambda: b"this is a text file, named .jpg\n" * 10, "content is text"),
    "script.png": (lambda: b"#!/bin/sh\nrm -rf /\n", "content is text"),
    "pdf.jpg": (lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + os.urandom(200), "not a readable image"),
    "gif.jpg": (lambda: b"GIF89a" + os.urandom(100), "not a readable image"),
    "empty.jpg": (lambda: b"", "empty file"),
    "tiny.png": (lambda: _real_image(".png")[:16], "PNG header is cut short"),
}


@pytest.fixture
def crafted(tmp_path) -> dict[str, Path]:
    files = {}
    for name, (make, _) in CRAFTED.items():
        files[name] = tmp_path / name
        files[name].write_bytes(make())
    return files


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_image_files_get_a_clear_error(crafted, name):
    started = time.monotonic()
    with pytest.raises(ImageError) as info:
        load_image(crafted[name])
    assert CRAFTED[name][1] in str(info.value) and str(crafted[name]) in str(info.value)
    assert time.monotonic() - started < 2, "refused from the header, not after decoding"


def test_paths_that_are_not_image_files_get_a_clear_error(tmp_path):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)  # reading it would block forever
    (tmp_path / "folder.jpg").mkdir()
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as f:  # sparse: costs no disk
        f.truncate(MAX_FILE_BYTES + 1)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    cases = {fifo: "not a regular file", tmp_path / "folder.jpg": "is a directory", huge: "byte limit",
             zero: "not a regular file", tmp_path / "missing.jpg": "no such file"}
    for path, message in cases.items():
        with pytest.raises(ImageError, match=message):
            load_image(path)


def test_the_enrollment_gate_reports_bad_files_as_unreadable_photos(crafted):
    from daemon.faces.detect import FaceDetector
    encoder, detector = PixelEncoder(), FaceDetector()
    for name, path in crafted.items():
        result = examine_photo(path, encoder, detector, PhotoGate())
        assert result.reason == "unreadable" and result.embedding is None, name
        assert CRAFTED[name][1] in result.detail, (name, result.detail)


def test_embed_and_enroll_commands_report_bad_files_one_by_one(crafted, tmp_path, encoder_model, face_fixtures):
    import subprocess
    import sys
    repo = Path(__file__).resolve().parent.parent
    good = next((face_fixtures / "Serena_Williams").glob("*.jpg"))
    files = [str(p) for p in crafted.values()] + [str(tmp_path)]
    result = subprocess.run([sys.executable, "-m", "daemon", "embed", "--model", str(encoder_model), "--json",
                             *files, str(good)], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == files + [str(good)]
    assert all(line["error"] and line["embedding"] is None for line in lines[:-1])
    assert lines[-1]["embedding"] is not None
    out = tmp_path / "record.json"
    result = subprocess.run([sys.executable, "-m", "daemon", "enroll", "--person-id", "serena", "--name", "Serena",
                             "--model", str(encoder_model), "--site", "hq", "--out", str(out), *files, str(good)],
                            cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stdout.count("rejected (unreadable)") == len(files) and "1 encoding(s)" in result.stdout
