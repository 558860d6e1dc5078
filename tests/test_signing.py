"""Ed25519 signatures on enrollment records (daemon/protocol/signing.py): key files, what the
signature covers, and the device refusing unsigned, forged, wrong-key, moved, replayed
and wrong-site records, counted in health."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.config import ConfigError, check_device_trust, config_from_dict
from daemon.door.service import Service
from daemon.gallery import Gallery
from daemon.protocol.records import RecordError, parse_enrollment
from daemon.protocol.signing import (KeyFileError, Trust, generate_keypair, key_id, load_private_key,
                                     load_public_keys, load_trust, signed_message, split_signature)
from daemon.protocol.topics import enroll_topic, revoke_topic
from daemon.server.publish import person_record, tombstone
from daemon_helpers import (TEST_KEY, TEST_TRUST, PixelEncoder, ServiceThread, copy_photos, enrollment, person_photos,
                            SiteServer, publish, revocation, service_config, unit_vectors, write_public_key)

REPO = Path(__file__).resolve().parent.parent
SITE, D = "hq", 128
ATTACKER = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)


def parse(topic, payload, trust=TEST_TRUST, site=SITE):
    return parse_enrollment(topic, payload, site, D, trust=trust)


def reason(topic, payload, trust=TEST_TRUST, site=SITE) -> str:
    with pytest.raises(RecordError) as info:
        parse(topic, payload, trust, site)
    return info.value.reason


# ---------------------------------------------------------------- keys

def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    pair = generate_keypair(tmp_path / "keys")
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.public_path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    private = load_private_key(pair.private_path)
    [public] = load_public_keys(pair.public_path)
    assert key_id(public) == key_id(private.public_key()) == pair.key_id
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        generate_keypair(tmp_path / "keys")


def test_keygen_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "daemon", "keygen", "--out", str(tmp_path / "k")], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "enroll-signing.key (mode 600" in result.stdout and "key id" in result.stdout
    assert stat.S_IMODE((tmp_path / "k" / "enroll-signing.key").stat().st_mode) == 0o600
    again = subprocess.run([sys.executable, "-m", "daemon", "keygen", "--out", str(tmp_path / "k")], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


@pytest.mark.parametrize("content,message", [
    (None, "not found"),
    (b"", "no PEM public key"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "unreadable PEM"),
    (b"x" * 100_000, "too large"),
])
def test_bad_public_key_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "key.pub"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message):
        load_public_keys(path)


def test_a_file_with_two_public_keys_trusts_both_during_a_rotation(tmp_path):
    new_key = Ed25519PrivateKey.generate()
    path = write_public_key(tmp_path, TEST_KEY)
    path.write_bytes(path.read_bytes() + write_public_key(tmp_path / "new", new_key).read_bytes())
    trust = load_trust(str(path), allow_unsigned=False)
    assert set(trust.keys) == {key_id(TEST_KEY.public_key()), key_id(new_key.public_key())}
    for key in (TEST_KEY, new_key):
        assert parse(*person_record(SITE, "alice", "A", unit_vectors(1), "m1", 1, key), trust=trust).version == 1
    # After the rotation the old key is dropped from the devices' file: its records stop counting.
    only_new = Trust.of(new_key.public_key())
    assert reason(*person_record(SITE, "alice", "A", unit_vectors(1), "m1", 1, TEST_KEY), trust=only_new) \
        == "unknown_key"


# ---------------------------------------------------------------- what the signature covers

def test_the_signature_covers_topic_and_exact_body_bytes():
    topic, payload = person_record(SITE, "alice", "Alice", unit_vectors(2), "m1", 5, TEST_KEY)
    body, kid, signature = split_signature(payload)
    assert json.loads(payload)["sig"] and json.loads(payload)["kid"] == kid == key_id(TEST_KEY.public_key())
    assert "sig" not in json.loads(body) and "kid" not in json.loads(body)
    TEST_KEY.public_key().verify(signature, signed_message(topic, body))  # raises if not
    assert signed_message(topic, body) == b"facegate-record-v1\x00" + topic.encode() + b"\x00" + body


def test_a_signed_record_and_tombstone_verify():
    record = parse(*person_record(SITE, "alice", "Alice", unit_vectors(2), "m1", 5, TEST_KEY))
    assert (record.person_id, record.version, record.model_id, len(record.encodings)) == ("alice", 5, "m1", 2)
    assert parse(*tombstone(SITE, "alice", 6, TEST_KEY)).deleted


def _record(**kwargs):
    args = dict(site=SITE, person_id="alice", name="Alice", encodings=unit_vectors(2), model_id="m1", version=5,
                key=TEST_KEY)
    args.update(kwargs)
    return person_record(**args)


def _flip(payload: bytes, at: int) -> bytes:
    return payload[:at] + bytes([payload[at] ^ 0x01]) + payload[at + 1:]


B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respell(payload: bytes) -> bytes:
    """The same signature with another spelling: the last base64 character's lowest bit
    carries no data (86 characters hold 516 bits, a signature is 512)."""
    last = B64URL.index(payload[-3:-2])
    return payload[:-3] + B64URL[last ^ 1:(last ^ 1) + 1] + payload[-2:]


REFUSED = {
    "unsigned": (lambda: _record(key=None), "unsigned"),
    "unsigned tombstone": (lambda: tombstone(SITE, "alice", 9, None), "unsigned"),
    "signed by an unknown key": (lambda: _record(key=ATTACKER), "unknown_key"),
    "attacker's signature under the trusted key id": (
        lambda: (lambda t, p: (t, p.replace(key_id(ATTACKER.public_key()).encode(),
                                            key_id(TEST_KEY.public_key()).encode())))(*_record(key=ATTACKER)),
        "bad_signature"),
    "forged signature bytes": (lambda: (lambda t, p: (t, p[:-88] + b"A" * 86 + b'"}'))(*_record()), "bad_signature"),
    "version changed": (lambda: (lambda t, p: (t, p.replace(b'"version":5', b'"version":7')))(*_record()),
                        "bad_signature"),
    "one bit flipped in an encoding": (lambda: (lambda t, p: (t, _flip(p, p.index(b"encodings") + 20)))(*_record()),
                                       "bad_signature"),
    "body re-serialised with spaces": (lambda: (lambda t, p: (t, p.replace(b",", b", ", 3)))(*_record()),
                                       "bad_signature"),
    "moved to another person": (lambda: (enroll_topic(SITE, "m1", "bob"), _record()[1]), "bad_signature"),
    "moved to another model": (lambda: (enroll_topic(SITE, "m2", "alice"), _record()[1]), "bad_signature"),
    "moved to another site": (lambda: (enroll_topic("hq2", "m1", "alice"), _record(site="hq")[1]),
                              "bad_signature"),
    "signed for another site, on its own topic": (lambda: _record(site="elsewhere"), "wrong_site"),
    "tombstone moved to another person": (lambda: (revoke_topic(SITE, "bob"), tombstone(SITE, "alice", 9, TEST_KEY)[1]),
                                          "bad_signature"),
    "signature dropped, fields kept": (lambda: (lambda t, p: (t, p[:p.index(b',"kid"')] + b"}"))(*_record()),
                                       "unsigned"),
    "non-canonical base64 spelling": (lambda: (lambda t, p: (t, _respell(p)))(*_record()), "unsigned"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_records_that_are_not_authentic_are_refused_with_a_reason(case):
    make, expected = REFUSED[case]
    topic, payload = make()
    if case == "moved to another site":
        assert reason(topic, payload, site="hq2") == expected
    else:
        assert reason(topic, payload) == expected


def test_allow_unsigned_is_for_development_and_still_checks_signatures_it_can():
    dev = Trust.of(TEST_KEY.public_key(), allow_unsigned=True)
    assert parse(*_record(key=None), trust=dev).person_id == "alice"
    assert reason(*_record(key=ATTACKER), trust=dev) == "unknown_key"
    keyless = Trust(allow_unsigned=True)  # no key at all: signatures cannot be checked, so they are ignored
    assert parse(*_record(key=ATTACKER), trust=keyless).person_id == "alice"
    assert reason(*_record(key=None), trust=Trust()) == "unsigned"  # the default trusts nothing


def test_a_replayed_older_record_never_rolls_a_person_back(tmp_path):
    """Old signed records stay valid signatures forever: versions are what stops a replay."""
    gallery = Gallery.open(tmp_path)
    old = parse(*_record(version=5, encodings=unit_vectors(1, seed=1)))
    new = parse(*_record(version=6, encodings=unit_vectors(1, seed=2)))
    revoked = parse(*tombstone(SITE, "alice", 7, TEST_KEY))
    assert gallery.apply(old) and gallery.apply(new)
    assert not gallery.apply(old), "the replayed v5 is ignored"
    np.testing.assert_allclose(gallery.get("alice").encodings, unit_vectors(1, seed=2), atol=1e-6)
    assert gallery.apply(revoked)
    assert not gallery.apply(new) and gallery.get("alice").deleted, "a replay cannot undo a revocation"


# ---------------------------------------------------------------- configuration

def test_a_device_with_a_broker_needs_a_public_key_or_an_explicit_dev_setting(tmp_path):
    with pytest.raises(ConfigError, match="enrollment.public_key is required when mqtt.host is set"):
        check_device_trust(config_from_dict({"mqtt": {"host": "broker"}}, env={}))
    check_device_trust(config_from_dict({}, env={}))  # standalone: no broker, nothing to trust
    check_device_trust(config_from_dict({"mqtt": {"host": "b"}, "enrollment": {"allow_unsigned": True}}, env={}))
    key = write_public_key(tmp_path)
    check_device_trust(config_from_dict({"mqtt": {"host": "b"}, "enrollment": {"public_key": str(key)}}, env={}))


@pytest.mark.parametrize("raw,message", [
    ({"enrollment": {"public_key": "/nonexistent/key.pub"}}, "enrollment.public_key: cannot read /nonexistent"),
    ({"enrollment": {"public_key": "."}}, "enrollment.public_key: . is not a file"),
    ({"mqtt": {"tls_ca_file": "/etc/hostname"}}, "mqtt.tls_ca_file is set but mqtt.tls is false"),
    ({"mqtt": {"tls": True, "tls_cert_file": "/etc/hostname"}}, "tls_cert_file and mqtt.tls_key_file go together"),
    ({"mqtt": {"tls": True, "tls_ca_file": "/nonexistent/ca.crt"}}, "mqtt.tls_ca_file: cannot read"),
])
def test_security_settings_are_checked_when_the_config_loads(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, env={})


def test_a_public_key_file_that_is_not_a_key_is_refused_at_load(tmp_path):
    (tmp_path / "bad.pub").write_text("hello")
    with pytest.raises(ConfigError, match="enrollment.public_key: public key .* no PEM public key"):
        config_from_dict({"enrollment": {"public_key": str(tmp_path / "bad.pub")}}, env={})


def test_credentials_come_from_the_environment_and_never_show(tmp_path):
    from daemon.protocol.broker import BrokerSettings
    cfg = config_from_dict({"mqtt": {"host": "b", "tls": True}}, env={"FACEGATE_MQTT_USERNAME": "door1",
                                                                       "FACEGATE_MQTT_PASSWORD": "s3cret!"})
    broker = BrokerSettings.from_config(cfg.mqtt)
    assert (broker.username, broker.password) == ("door1", "s3cret!")
    for text in (repr(cfg), repr(broker), broker.describe()):
        assert "s3cret!" not in text
    assert broker.describe() == "mqtts://b:1883 as door1"


def test_the_daemon_refuses_to_start_sync_without_a_key_from_the_command_line(tmp_path):
    config = tmp_path / "f.toml"
    config.write_text('[mqtt]\nhost = "127.0.0.1"\n[source]\nkind = "replay"\npath = "/nonexistent"\n')
    result = subprocess.run([sys.executable, "-m", "daemon", "run", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "config error: enrollment.public_key is required when mqtt.host is set" in result.stderr


# ---------------------------------------------------------------- the running daemon

def test_the_daemon_applies_only_authentic_newer_records_and_counts_the_rest(tmp_path, broker, face_fixtures):
    """Over a real broker: unsigned, forged, wrong-key, moved and replayed-older records
    are refused and counted in the health record; the authentic one is applied."""
    copy_photos(person_photos(face_fixtures, "Serena_Williams")[:1], tmp_path / "frames")
    cfg = service_config(tmp_path, broker, source={"loop": True, "fps": 5.0})
    site, model = cfg.device.site, "pixel-test"
    running = ServiceThread(Service(cfg, encoder=PixelEncoder()))
    server = SiteServer(broker, site, tmp_path)
    try:
        server.publish(*enrollment(site, "alice", unit_vectors(2), model, 10))   # stored, in the manifest
        publish(broker, *enrollment(site, "mallory", unit_vectors(1), model, 1, key=None))       # unsigned
        publish(broker, *enrollment(site, "mallory", unit_vectors(1), model, 2, key=ATTACKER))   # wrong key
        t, p = enrollment(site, "alice", unit_vectors(1, seed=9), model, 11)
        publish(broker, t, p.replace(b'"version":11', b'"version":12'))                          # tampered
        publish(broker, enroll_topic(site, model, "bob"), p)                                     # moved
        publish(broker, *enrollment(site, "alice", unit_vectors(1, seed=3), model, 9))            # replayed older
        publish(broker, *revocation(site, "carol", 1, key=ATTACKER))                             # forged revocation
        assert running.wait_until(lambda s: s.health()["records"] == {
            "applied": 1, "stale": 0, "waiting": 0, "superseded": 1,
            "rejected": {"unsigned": 1, "unknown_key": 2, "bad_signature": 2}}), running.service.health()["records"]
        alice = running.service.gallery.get("alice")
        assert alice.version == 10 and len(alice.encodings) == 2
        assert running.service.gallery.get("mallory") is None and running.service.gallery.get("bob") is None
        assert running.service.gallery.get("carol") is None
    finally:
        running.stop()
        server.close()
