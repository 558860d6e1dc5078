"""The signed site manifest: its format, the device's admission rules, and a running door
that refuses old, expired and foreign manifests over a real broker."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.door.admission import Admission
from daemon.door.service import Service
from daemon.protocol import topics
from daemon.protocol.manifest import (MAX_PAGE_BYTES, PAGE_MAX, Manifest, assemble, build_manifest, parse_page,
                                      parse_top)
from daemon.protocol.person import PersonRecord
from daemon.protocol.records import RecordError
from daemon_helpers import (TEST_KEY, TEST_TRUST, PixelEncoder, ServiceThread, SiteServer, enrollment, publish,
                            service_config, unit_vectors)

SITE, MODEL = "hq", "m1"
ATTACKER = Ed25519PrivateKey.generate()


def signed_manifest(entries, seq=10, issued_at=None, valid_s=3600.0, key=TEST_KEY, model=MODEL):
    return build_manifest(SITE, model, entries, seq, time.time() if issued_at is None else issued_at, valid_s, key)


def parsed(manifest, trust=TEST_TRUST):
    """(top, {sha: entries}) as a device parses them."""
    top = parse_top(*manifest.top, SITE, MODEL, trust=trust)
    return top, dict(parse_page(t, p, SITE, MODEL) for t, p in manifest.pages)


def record(person, version, deleted=False):
    if deleted:
        return PersonRecord.tombstone(person, version)
    return PersonRecord(person, version, MODEL, person, unit_vectors(1, seed=version))


# ---------------------------------------------------------------- the format

def test_a_manifest_round_trips_and_lists_exact_versions():
    entries = {"alice": (5, False), "bob": (7, True)}
    top, pages = parsed(signed_manifest(entries))
    manifest = assemble(top, pages)
    assert dict(manifest.entries) == entries and (manifest.seq, top.enrolled, top.revoked) == (10, 1, 1)
    assert manifest.lists(record("alice", 5)) and manifest.lists(record("bob", 7, deleted=True))
    assert not manifest.lists(record("alice", 4)), "a superseded version"
    assert not manifest.lists(record("bob", 3)), "a revoked person's old record"
    assert not manifest.lists(record("carol", 1)), "someone the server never listed"
    assert [r.person_id for r in manifest.revocations()] == ["bob"]
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))).entries == manifest.entries


def test_ten_thousand_people_fit_in_pages_and_one_enrollment_changes_one_page():
    entries = {f"person-{i:05d}": (1_738_320_000_000 + i, i % 10 == 0) for i in range(10_000)}
    manifest = signed_manifest(entries)
    assert 8 <= len(manifest.pages) <= 16
    assert all(len(p) <= MAX_PAGE_BYTES for _, p in manifest.pages) and len(manifest.top[1]) < 2000
    top, pages = parsed(manifest)
    assert dict(assemble(top, pages).entries) == entries
    changed = dict(entries, **{"person-00042": (1_800_000_000_000, False)})
    again = signed_manifest(changed, seq=11)
    assert sum(a != b for (_, a), (_, b) in zip(manifest.pages, again.pages)) == 1


def test_a_page_that_is_not_the_one_the_top_lists_is_not_used():
    manifest = signed_manifest({"alice": (5, False)})
    top, _ = parsed(manifest)
    forged_topic, _ = manifest.pages[0]
    sha, entries = parse_page(forged_topic, b'{"enrolled":{"alice":4},"revoked":{}}', SITE, MODEL)
    assert assemble(top, {sha: entries}) is None, "its hash is not listed: the manifest stays incomplete"


@pytest.mark.parametrize("change,reason", [
    (lambda t, p: (t, p.replace(b'"seq":10', b'"seq":99')), "bad_signature"),
    (lambda t, p: (t, signed_manifest({}, key=ATTACKER).top[1]), "unknown_key"),
    (lambda t, p: (t, p.split(b',"kid"')[0] + b"}"), "unsigned"),
    (lambda t, p: (topics.manifest_topic(SITE, "m2"), p), "bad_topic"),
    (lambda t, p: (topics.manifest_topic("other", MODEL), p), "wrong_site"),
    (lambda t, p: (t, b"x" * 40_000), "too_large"),
])
def test_a_forged_moved_or_oversized_top_is_refused(change, reason):
    topic, payload = change(*signed_manifest({"alice": (5, False)}).top)
    with pytest.raises(RecordError) as info:
        parse_top(topic, payload, SITE, MODEL, trust=TEST_TRUST)
    assert info.value.reason == reason


@pytest.mark.parametrize("payload", [
    b'{"enrolled":{"alice":"5"},"revoked":{}}', b'{"enrolled":{"../x":5},"revoked":{}}',
    b'{"enrolled":{"alice":5},"revoked":{"alice":6}}', b'{"enrolled":{}}', b'[1]', b'{"enrolled":{},"revoked":{},"x":1}',
])
def test_a_malformed_page_is_refused(payload):
    with pytest.raises(RecordError):
        parse_page(topics.manifest_page_topic(SITE, MODEL, 0), payload, SITE, MODEL)


def test_pages_never_hold_more_than_the_maximum():
    from daemon.protocol.manifest import paginate
    pages = paginate({f"p{i}": (i + 1, False) for i in range(3 * PAGE_MAX)})
    assert all(len(json.loads(p)["enrolled"]) <= PAGE_MAX for p in pages)


# ---------------------------------------------------------------- admission (device side, pure)

def admission_with(entries, seq=10, **kwargs) -> Admission:
    admission = Admission(MODEL)
    top, pages = parsed(signed_manifest(entries, seq=seq, **kwargs))
    for sha, page in pages.items():
        admission.offer_page(sha, page)
    admission.offer_top(top)
    assert admission.manifest is not None
    return admission


def test_a_door_with_no_history_applies_nothing_until_a_manifest_arrives_then_only_what_it_lists():
    admission = Admission(MODEL)
    for r in (record("alice", 1), record("alice", 2), record("bob", 1), record("bob", 3, deleted=True)):
        admission.offer_record(r)
    assert admission.take_ready() == [] and admission.state() == "none" and admission.waiting == 4
    top, pages = parsed(signed_manifest({"alice": (2, False), "bob": (3, True)}))
    admission.offer_top(top)
    assert admission.state() == "waiting_for_pages" and admission.take_ready() == []
    for sha, page in pages.items():
        admission.offer_page(sha, page)
    assert admission.state() == "fresh"
    assert sorted((r.person_id, r.version) for r in admission.take_ready()) == [("alice", 2), ("bob", 3)]
    assert admission.superseded == 2 and admission.waiting == 0  # alice v1 and bob's v1 record
    assert admission.take_adopted().seq == 10 and admission.take_adopted() is None


def test_a_record_newer_than_the_manifest_waits_for_the_next_one():
    admission = admission_with({"alice": (2, False)})
    admission.offer_record(record("alice", 3))
    assert admission.take_ready() == [] and admission.waiting == 1
    top, pages = parsed(signed_manifest({"alice": (3, False)}, seq=11))
    for sha, page in pages.items():
        admission.offer_page(sha, page)
    admission.offer_top(top)
    assert [r.version for r in admission.take_ready()] == [3]


def test_lower_sequence_expired_and_conflicting_manifests_are_refused_and_counted():
    admission = admission_with({"alice": (2, False)}, seq=10)
    for manifest in (signed_manifest({"alice": (1, False)}, seq=9),                       # rolled back
                     signed_manifest({"alice": (1, False)}, seq=12, issued_at=time.time() - 7200),  # expired
                     signed_manifest({"alice": (1, False)}, seq=10)):                     # same seq, other content
        top, pages = parsed(manifest)
        for sha, page in pages.items():
            admission.offer_page(sha, page)
        admission.offer_top(top)
    assert admission.rejected == {"old_sequence": 1, "expired": 1, "conflicting_sequence": 1}
    assert admission.manifest.seq == 10 and admission.admits(record("alice", 2))


def test_an_expired_manifest_is_reported_and_its_people_still_admitted():
    now = [time.time()]
    admission = Admission(MODEL, wall=lambda: now[0])
    top, pages = parsed(signed_manifest({"alice": (2, False)}, valid_s=60))
    for sha, page in pages.items():
        admission.offer_page(sha, page)
    admission.offer_top(top)
    assert admission.state() == "fresh"
    now[0] += 61
    assert admission.state() == "expired" and admission.admits(record("alice", 2))
    assert admission.health()["state"] == "expired"


# ---------------------------------------------------------------- a running door, a real broker

def test_the_door_refuses_old_expired_and_foreign_manifests_and_remembers_the_sequence(tmp_path, broker):
    cfg = service_config(tmp_path, broker, mqtt={"sync_wait_s": 0.0})
    site, model = cfg.device.site, "pixel-test"
    server = SiteServer(broker, site, tmp_path)
    server.publish(*enrollment(site, "alice", unit_vectors(2), model, 5))
    server.resign()
    held = server.store.manifest_seq(site, model)

    def manifest(seq, **kwargs):
        return build_manifest(site, model, {"alice": (4, False)}, seq, kwargs.pop("issued_at", time.time()),
                              3600.0, kwargs.pop("key", TEST_KEY))

    running = ServiceThread(Service(cfg, encoder=PixelEncoder(), source=_NoFrames()))
    try:
        assert running.wait_until(lambda s: s.health()["manifest"]["seq"] == held)
        for bad in (manifest(held - 1),                                           # rolled back
                    manifest(held + 1, issued_at=time.time() - 7200),             # expired
                    manifest(held + 2, key=ATTACKER)):                            # another key
            for topic, payload in bad.messages():
                publish(broker, topic, payload)
        assert running.wait_until(lambda s: s.health()["manifest"]["rejected"] == {
            "old_sequence": 1, "expired": 1, "unknown_key": 1}), running.service.health()["manifest"]
        health = running.service.health()
        assert health["manifest"]["seq"] == held and health["manifest"]["state"] == "fresh"
        assert running.service.matcher.index.person_ids == ("alice",)
    finally:
        running.stop()
    # After a restart the stored sequence still rules: the rolled-back one is refused again.
    for topic, payload in manifest(held - 1).messages():
        publish(broker, topic, payload)
    again = ServiceThread(Service(cfg, encoder=PixelEncoder(), source=_NoFrames()))
    try:
        assert again.wait_until(lambda s: s.health()["manifest"]["rejected"].get("old_sequence") == 1)
        assert again.service.health()["manifest"]["seq"] == held
        assert again.service.matcher.index.person_ids == ("alice",)
    finally:
        again.stop()
        server.close()


def test_a_door_with_no_history_and_no_manifest_on_the_broker_applies_nothing(tmp_path, broker):
    """An empty broker, or one holding only records (the manifest cleared), is not a sync."""
    cfg = service_config(tmp_path, broker, mqtt={"sync_wait_s": 0.5})
    site, model = cfg.device.site, "pixel-test"
    publish(broker, *enrollment(site, "alice", unit_vectors(2), model, 1))  # validly signed, listed nowhere
    door = ServiceThread(Service(cfg, encoder=PixelEncoder(), source=_NoFrames()))
    try:
        assert door.wait_until(lambda s: s.health()["records"]["waiting"] == 1)
        health = door.service.health()
        assert health["manifest"]["state"] == "none" and health["records"]["applied"] == 0
        assert door.service.gallery.get("alice") is None and door.service.matcher.index.person_ids == ()
    finally:
        door.stop()


def test_a_stored_person_whose_new_version_is_withheld_is_no_longer_matched(tmp_path, broker):
    """The door holds alice v1; the server re-enrolled her (v2, another face) while the door
    was off, and someone put v1 back on the broker. The door must not match the old face."""
    cfg = service_config(tmp_path, broker, mqtt={"sync_wait_s": 0.0})
    site, model = cfg.device.site, "pixel-test"
    server = SiteServer(broker, site, tmp_path)
    v1 = enrollment(site, "alice", unit_vectors(2, seed=1), model, 1)
    server.publish(*v1)
    door = ServiceThread(Service(cfg, encoder=PixelEncoder(), source=_NoFrames()))
    try:
        assert door.wait_until(lambda s: s.matcher.index.person_ids == ("alice",))
    finally:
        door.stop()
    server.publish(*enrollment(site, "alice", unit_vectors(2, seed=2), model, 2))
    publish(broker, *v1)  # the new record is replaced by the old one
    door = ServiceThread(Service(cfg, encoder=PixelEncoder(), source=_NoFrames()))
    try:
        assert door.wait_until(lambda s: s.health()["records"]["superseded"] == 1
                               and s.health()["gallery"]["not_in_manifest"] == 1)
        assert door.service.gallery.get("alice").version == 1, "still stored ..."
        assert door.wait_until(lambda s: s.matcher.index.person_ids == ()), "... but never matched"
    finally:
        door.stop()
        server.close()


@pytest.mark.parametrize("on_expired", ["keep", "deny"])
def test_after_the_manifest_expires_keep_goes_on_unlocking_and_deny_withholds(tmp_path, broker, face_fixtures,
                                                                               on_expired):
    """enrollment.on_expired_manifest: keep (the default) reports the expiry in health and
    goes on recognising the people it lists; deny (fail-secure) withholds every unlock."""
    import numpy as np

    from daemon.api import embed_image
    from daemon_helpers import copy_photos, person_photos
    person = "Jean_Chretien"
    copy_photos(person_photos(face_fixtures, person)[:3], tmp_path / "frames")
    cfg = service_config(tmp_path, broker, source={"loop": True, "fps": 15.0}, decision={"cooldown_s": 0.3},
                         enrollment={"on_expired_manifest": on_expired})
    site, encoder = cfg.device.site, PixelEncoder()
    encodings = np.stack([embed_image(p, encoder).embedding for p in person_photos(face_fixtures, person)[:3]])
    server = SiteServer(broker, site, tmp_path, manifest_valid_s=6.0)
    server.publish(*enrollment(site, person, encodings, "pixel-test", 1))
    running = ServiceThread(Service(cfg, encoder=encoder))
    try:
        assert running.wait_until(lambda s: s.counters.events["unlock"] >= 1), "unlocks while the manifest is fresh"
        assert running.wait_until(lambda s: s.health()["manifest"]["state"] == "expired", timeout=15)
        before = running.service.counters.events["unlock"]
        time.sleep(1.5)  # several cooldowns of frames of the person
        after = running.service.counters.events["unlock"]
        withheld = running.service.health()["events"]["withheld_unlocks"]
        if on_expired == "deny":
            assert after == before and withheld >= 1
        else:
            assert after > before and withheld == 0
        assert running.service.health()["manifest"]["on_expired"] == on_expired
    finally:
        running.stop()
        server.close()


class _NoFrames:
    """A camera that is connected but shows nothing (the door idles, sync goes on)."""

    name = "idle"

    def open(self):
        pass

    def read(self):
        time.sleep(0.05)
        return None

    def close(self):
        pass
