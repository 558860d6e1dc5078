"""The enrollment tool: the photo gate, signed records on a real broker, revocation,
`facegate list`, dry runs, kept photos and re-embedding for a new model.

Most tests use the real detector and aligner with PixelEncoder (a model-free stand-in
that recognises the same photo again); the tests at the end use the shipped encoder
(the `encoder_model` fixture) and skip while it is missing.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.door.admission import Admission
from daemon.door.link import MqttLink
from daemon.faces.detect import FaceDetector
from daemon.gallery import Gallery
from daemon.protocol import topics
from daemon.protocol.broker import BrokerSettings
from daemon.protocol.person import PersonRecord
from daemon.protocol.records import parse_enrollment
from daemon.server import publish as build
from daemon.server.client import EnrollmentClient
from daemon.server.gate import PhotoGate, find_outliers
from daemon.server.photos import examine_photo, examine_photos
from daemon.server.store import EnrollmentStore
from daemon.server.tool import EnrollError, NoUsablePhoto, Target, enroll, held_records, reembed, remove
from daemon_helpers import TEST_KEY, TEST_TRUST, PixelEncoder, person_photos, publish, unit_vectors

REPO = Path(__file__).resolve().parent.parent
X, Y = "Donald_Rumsfeld", "Serena_Williams"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def encoder():
    return PixelEncoder()


def new_site() -> str:
    return f"e{uuid.uuid4().hex[:10]}"


def write(path: Path, image: np.ndarray, quality: int = 95) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def gray(photo: Path) -> np.ndarray:
    return cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)


# ---------------------------------------------------------------- the photo gate

def test_a_good_photo_passes_with_its_measurements(face_fixtures, encoder, detector):
    result = examine_photo(person_photos(face_fixtures, X)[0], encoder, detector, PhotoGate())
    assert result.accepted and result.reason is None, result.detail
    assert result.embedding.shape == (128,) and abs(np.linalg.norm(result.embedding) - 1) < 1e-5
    assert "face 110 px" in result.detail and result.kind == "JPEG" and len(result.sha256) == 64


def test_each_bad_photo_is_rejected_with_a_reason_a_person_can_act_on(tmp_path, face_fixtures, encoder, detector):
    a, b = gray(person_photos(face_fixtures, X)[0]), gray(person_photos(face_fixtures, Y)[0])
    cases = {
        "two people": (write(tmp_path / "two.jpg", np.hstack([a, b])), PhotoGate(),
                       "several_faces", "2 faces found; an enrollment photo must show exactly one person"),
        "far away": (write(tmp_path / "small.jpg", cv2.resize(a, (120, 120))), PhotoGate(),
                     "too_small", "px (at least 80 px)"),
        "blurred": (write(tmp_path / "blur.jpg", cv2.GaussianBlur(a, (0, 0), 2.5)), PhotoGate(),
                    "too_blurred", "face too blurred: sharpness"),
        "no face": (write(tmp_path / "wall.jpg", np.full((240, 320), 128, np.uint8)), PhotoGate(),
                    "no_face", "no face found"),
        "uncertain": (person_photos(face_fixtures, X)[0], PhotoGate(min_detection_score=0.95),
                      "low_score", "face detection too uncertain: score 0.92 (at least 0.95"),
        "not an image": (REPO / "README.md", PhotoGate(), "unreadable", "not a readable image"),
    }
    for name, (path, gate, reason, detail) in cases.items():
        result = examine_photo(path, encoder, detector, gate)
        assert (result.reason, result.embedding) == (reason, None), (name, result.detail)
        assert detail in result.detail, (name, result.detail)


def test_a_photo_given_twice_counts_once(face_fixtures, encoder, detector):
    photo = person_photos(face_fixtures, X)[0]
    first, second = examine_photos([photo, photo], encoder, detector, PhotoGate(), consistency=False)
    assert first.accepted and second.reason == "duplicate" and str(photo) in second.detail


def test_outliers_are_photos_far_from_the_median_of_the_others():
    rng = np.random.default_rng(0)
    person = unit_vectors(1, seed=1)[0]
    close = [person + 0.05 * rng.standard_normal(128) for _ in range(4)]
    close = np.stack([v / np.linalg.norm(v) for v in close])
    stranger = unit_vectors(1, seed=2)
    assert find_outliers(close, 0.9) == {}
    outliers = find_outliers(np.vstack([close[:2], stranger, close[2:]]), 0.9)
    assert list(outliers) == [2] and outliers[2] > 1.0
    assert find_outliers(close[:1], 0.9) == {}, "one photo: nothing to compare with"
    assert set(find_outliers(np.vstack([close[:1], stranger]), 0.9)) == {0, 1}, "two that disagree: both"
    assert find_outliers(close[:2], 0.9) == {}


def test_a_photo_of_someone_else_among_the_persons_photos_is_rejected(tmp_path, face_fixtures, encoder, detector):
    """PixelEncoder recognises the same photo: three re-encodings of one photo are 'the
    person', a photo of someone else is the outlier."""
    a = gray(person_photos(face_fixtures, X)[0])
    mine = [write(tmp_path / f"x{q}.jpg", a, q) for q in (95, 85, 75)]
    results = examine_photos([*mine, person_photos(face_fixtures, Y)[0]], encoder, detector,
                             PhotoGate(consistency_threshold=0.5))
    assert [r.reason for r in results] == [None, None, None, "inconsistent"]
    assert "does not look like the same person" in results[3].detail
    assert "above the consistency threshold 0.50" in results[3].detail


# ---------------------------------------------------------------- publishing to a real broker

def enroll_pixel(*args, **kwargs):
    """enroll() without the consistency check: PixelEncoder cannot tell that two
    different photos show the same person (the real model can; see the last test)."""
    return enroll(*args, consistency=False, **kwargs)


def reembed_pixel(*args, **kwargs):
    return reembed(*args, consistency=False, **kwargs)


@pytest.fixture
def server(broker):
    with EnrollmentClient(BrokerSettings(broker.host, broker.port)) as client:
        yield client


@pytest.fixture
def store(tmp_path):
    store = EnrollmentStore.open(tmp_path / "server-state")
    yield store
    store.close()


def device(broker, site, model_id="pixel-test") -> MqttLink:
    link = MqttLink(broker=BrokerSettings(broker.host, broker.port), site=site,
                    device_id=f"door-{uuid.uuid4().hex[:6]}", model_id=model_id, embedding_size=128, trust=TEST_TRUST, reconnect_min_s=1, reconnect_max_s=1)
    link.start()
    assert link.wait_for_sync(10)
    return link


def synced(broker, site, model_id="pixel-test") -> dict[str, PersonRecord]:
    """What a device on ``model_id`` that connects now applies: the records and revocations
    the site manifest lists."""
    link = device(broker, site, model_id)
    try:
        assert link.rejected_counts() == {} and link.manifest_rejected_counts() == {}
        admission = Admission(model_id)
        for item in link.take_manifests():
            admission.offer_page(*item) if isinstance(item, tuple) else admission.offer_top(item)
        for record in link.take_records():
            admission.offer_record(record)
        assert admission.state() == "fresh" and admission.superseded == 0
        applied = {r.person_id: r for r in admission.manifest.revocations()}
        applied.update({r.person_id: r for r in admission.take_ready()})
        return applied
    finally:
        link.stop()


def test_enroll_publishes_a_signed_record_that_devices_accept(store, tmp_path, server, broker, face_fixtures, encoder,
                                                              detector):
    site = new_site()
    photos = person_photos(face_fixtures, X)[:3]
    before = int(time.time() * 1000)
    outcome = enroll_pixel(Target(site, TEST_KEY, client=server, store=store), "rumsfeld", "Donald Rumsfeld", photos, encoder,
                           detector, keep_photos=tmp_path / "kept")
    assert outcome.topic == outcome.delivered_to == f"facegate/{site}/enroll/pixel-test/rumsfeld"
    assert outcome.version >= before and len(outcome.accepted) == 3
    record = synced(broker, site)["rumsfeld"]
    assert (record.name, record.version, record.model_id) == ("Donald Rumsfeld", outcome.version, "pixel-test")
    np.testing.assert_allclose(record.encodings, np.stack([p.embedding for p in outcome.accepted]), atol=1e-6)
    # The kept photos: the accepted files, byte for byte, readable only by the server.
    kept = tmp_path / "kept" / "rumsfeld"
    meta = json.loads((kept / "person.json").read_text())
    assert meta["name"] == "Donald Rumsfeld" and len(meta["photos"]) == 3
    for entry, photo in zip(meta["photos"], photos):
        assert (kept / entry["file"]).read_bytes() == photo.read_bytes()
        assert stat.S_IMODE((kept / entry["file"]).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o700
    [held] = held_records(server, site, TEST_TRUST)
    assert (held.kind, held.signature, held.encodings, held.version) == ("record", "valid", 3, outcome.version)


def test_a_new_enrollment_always_gets_a_higher_version_than_the_broker_holds(store, server, broker, face_fixtures,
                                                                             encoder, detector):
    """Even when the server's clock is behind a version already published."""
    site = new_site()
    far_future = 2**62
    publish(broker, *build.person_record(site, "rumsfeld", "R", unit_vectors(1), "other-model", far_future, TEST_KEY))
    outcome = enroll_pixel(Target(site, TEST_KEY, client=server, store=store), "rumsfeld", "R", person_photos(face_fixtures, X)[:1],
                     encoder, detector)
    assert outcome.version == far_future + 1
    again = enroll_pixel(Target(site, TEST_KEY, client=server, store=store), "rumsfeld", "R", person_photos(face_fixtures, X)[1:2],
                   encoder, detector)
    assert again.version == far_future + 2


def test_a_photo_set_with_no_usable_photo_publishes_nothing(store, tmp_path, server, broker, encoder, detector):
    site = new_site()
    with pytest.raises(NoUsablePhoto) as info:
        enroll_pixel(Target(site, TEST_KEY, client=server, store=store), "nobody", "No Body", [REPO / "README.md", tmp_path],
               encoder, detector)
    assert [p.reason for p in info.value.outcome.photos] == ["unreadable", "unreadable"]
    assert held_records(server, site, TEST_TRUST) == []


@pytest.mark.parametrize("person_id,name,message", [
    ("al ice", "Alice", "invalid person id"), ("../etc", "Alice", "invalid person id"),
    ("a" * 65, "A", "invalid person id"), ("alice", "", "invalid name"),
    ("alice", "Alice\nINFO forged", "invalid name"), ("alice", "x" * 129, "invalid name"),
])
def test_invalid_ids_and_names_are_refused_before_anything_runs(tmp_path, person_id, name, message):
    with pytest.raises(EnrollError, match=message):
        enroll_pixel(Target("hq", TEST_KEY, out=tmp_path / "r.json"), person_id, name, ["x.jpg"], PixelEncoder(), None)


def test_publishing_needs_a_signing_key(server):
    with pytest.raises(EnrollError, match="no signing key"):
        Target("hq", None, client=server)


def test_a_dry_run_writes_the_signed_record_and_publishes_nothing(tmp_path, server, broker, face_fixtures,
                                                                  encoder, detector):
    site = new_site()
    out = tmp_path / "record.json"
    outcome = enroll_pixel(Target(site, TEST_KEY, out=out), "rumsfeld", "R", person_photos(face_fixtures, X)[:2],
                     encoder, detector)
    assert outcome.delivered_to == str(out) and stat.S_IMODE(out.stat().st_mode) == 0o600
    record = parse_enrollment(outcome.topic, out.read_bytes(), site, 128, trust=TEST_TRUST)
    assert record.person_id == "rumsfeld" and len(record.encodings) == 2
    assert held_records(server, site, TEST_TRUST) == []
    tombstone = remove(Target(site, TEST_KEY, out=tmp_path / "revoke.json"), "rumsfeld")
    assert parse_enrollment(tombstone.topic, (tmp_path / "revoke.json").read_bytes(), site, 128,
                            trust=TEST_TRUST).deleted


def test_remove_revokes_on_every_model_and_erases_encodings_and_photos(store, tmp_path, server, broker, face_fixtures,
                                                                       encoder, detector):
    site = new_site()
    target = Target(site, TEST_KEY, client=server, store=store)
    kept = tmp_path / "kept"
    enroll_pixel(target, "rumsfeld", "R", person_photos(face_fixtures, X)[:2], encoder, detector, keep_photos=kept)
    enroll_pixel(target, "serena", "S", person_photos(face_fixtures, Y)[:1], encoder, detector, keep_photos=kept)
    reembed_pixel(target, kept, PixelEncoder(model_id="pixel-test-2"), detector)  # rumsfeld now has two models' records
    running = device(broker, site)  # a device that holds rumsfeld and stays connected
    try:
        assert {r.person_id for r in running.take_records()} == {"rumsfeld", "serena"}
        outcome = remove(target, "rumsfeld", keep_photos=kept)
        assert outcome.was_known and outcome.photos_deleted and not (kept / "rumsfeld").exists()
        assert set(outcome.cleared) == {topics.enroll_topic(site, "pixel-test", "rumsfeld"),
                                        topics.enroll_topic(site, "pixel-test-2", "rumsfeld")}
        deadline = time.monotonic() + 10
        got: list[PersonRecord] = []
        while not any(r.deleted for r in got) and time.monotonic() < deadline:
            got += running.take_records()
            time.sleep(0.05)
        [tomb] = [r for r in got if r.deleted]
        assert tomb.person_id == "rumsfeld" and tomb.version == outcome.version
        assert running.rejected_counts() == {}, "cleared topics are not counted as attacks"
    finally:
        running.stop()
    # The broker now holds the tombstone and no encodings of rumsfeld; serena is untouched.
    held = held_records(server, site, TEST_TRUST)
    assert [(h.person_id, h.kind, h.model_id) for h in held] == [
        ("rumsfeld", "tombstone", ""), ("serena", "record", "pixel-test"), ("serena", "record", "pixel-test-2")]
    for model in ("pixel-test", "pixel-test-2"):  # a device that was offline gets the revocation, on any model
        records = synced(broker, site, model)
        assert records["rumsfeld"].deleted and not records["serena"].deleted


def test_reembed_adds_new_model_records_while_old_model_devices_keep_theirs(store, tmp_path, server, broker, face_fixtures,
                                                                            encoder, detector):
    site = new_site()
    target = Target(site, TEST_KEY, client=server, store=store)
    kept = tmp_path / "kept"
    old = enroll_pixel(target, "rumsfeld", "Donald Rumsfeld", person_photos(face_fixtures, X)[:2], encoder, detector,
                       keep_photos=kept)
    enroll_pixel(target, "serena", "S", person_photos(face_fixtures, Y)[:1], encoder, detector, keep_photos=kept)
    remove(target, "serena")  # revoked, but (without --keep-photos) her photos stayed in the folder

    new_model = PixelEncoder(model_id="pixel-test-2")
    new_model._projection = new_model._projection[::-1].copy()  # a different "model": different encodings
    outcomes = {o.person_id: o for o in reembed_pixel(target, kept, new_model, detector)}
    assert outcomes["serena"].skipped.startswith("revoked") and not outcomes["serena"].topic
    assert outcomes["rumsfeld"].version > old.version and outcomes["rumsfeld"].model_id == "pixel-test-2"

    old_device, new_device = synced(broker, site, "pixel-test"), synced(broker, site, "pixel-test-2")
    assert old_device["rumsfeld"].model_id == "pixel-test" and old_device["rumsfeld"].version == old.version
    np.testing.assert_allclose(old_device["rumsfeld"].encodings, np.stack([p.embedding for p in old.accepted]),
                               atol=1e-6)
    assert new_device["rumsfeld"].model_id == "pixel-test-2" and new_device["rumsfeld"].name == "Donald Rumsfeld"
    assert old_device["serena"].deleted and new_device["serena"].deleted


def test_a_device_upgraded_to_the_new_model_takes_its_record_even_if_the_old_one_is_newer(tmp_path):
    """Enrolled again on the old model after the reembed: the old-model record has the
    higher version, but on the new model only the new-model record is of any use."""
    gallery = Gallery.open(tmp_path)
    old = PersonRecord("alice", 20, "old-model", "Alice", unit_vectors(1, seed=1))
    new = PersonRecord("alice", 10, "new-model", "Alice", unit_vectors(1, seed=2))
    assert gallery.apply(old) and gallery.apply(new)
    assert gallery.get("alice").model_id == "new-model"
    older = PersonRecord("alice", 9, "new-model", "Alice", unit_vectors(1, seed=3))
    assert not gallery.apply(older), "within one model, an older version still loses"
    assert gallery.apply(PersonRecord.tombstone("alice", 21))
    assert not gallery.apply(PersonRecord("alice", 11, "other-model", "A", unit_vectors(1))), "a revocation holds"


# ---------------------------------------------------------------- the command line, with the shipped encoder

def facegate(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_enroll_list_remove_from_the_command_line(tmp_path, broker, encoder_model, face_fixtures):
    site = new_site()
    keys = tmp_path / "keys"
    assert facegate("keygen", "--out", str(keys)).returncode == 0
    server = ["--site", site, "--mqtt-host", broker.host, "--mqtt-port", str(broker.port),
              "--signing-key", str(keys / "enroll-signing.key"), "--state-dir", str(tmp_path / "server")]
    photos = [str(p) for p in person_photos(face_fixtures, X)[:3]] + [str(REPO / "README.md")]
    result = facegate("enroll", "--person-id", "rumsfeld", "--name", "Donald Rumsfeld", "--model",
                      str(encoder_model), "--keep-photos", str(tmp_path / "kept"), *server, *photos)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("  ok ") == 3 and "rejected (unreadable)" in result.stdout
    assert f"published (retained) to facegate/{site}/enroll/" in result.stdout

    listing = facegate("list", *server, "--json")
    assert listing.returncode == 0, listing.stderr[-2000:]
    [held] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert (held["person_id"], held["kind"], held["encodings"], held["signature"]) == ("rumsfeld", "record", 3, "valid")

    removed = facegate("remove", "rumsfeld", *server, "--keep-photos", str(tmp_path / "kept"))
    assert removed.returncode == 0 and f"published (retained) to facegate/{site}/revoke/rumsfeld" in removed.stdout
    table = facegate("list", *server)
    assert "tombstone" in table.stdout and "0 person(s) with a record, 1 tombstone(s)" in table.stdout
    assert not (tmp_path / "kept" / "rumsfeld").exists()


def test_publishing_without_a_key_or_a_broker_is_a_clear_error(tmp_path, encoder_model, face_fixtures):
    photo = str(person_photos(face_fixtures, X)[0])
    no_key = facegate("enroll", "--person-id", "a", "--name", "A", "--model", str(encoder_model), "--site", "hq",
                      "--mqtt-host", "127.0.0.1", photo)
    assert no_key.returncode == 2 and "no signing key" in no_key.stderr
    missing_key = facegate("remove", "a", "--signing-key", str(tmp_path / "missing.key"))
    assert missing_key.returncode == 2 and "missing.key: not found" in missing_key.stderr
    from daemon.protocol.signing import generate_keypair
    key = generate_keypair(tmp_path / "keys").private_path
    no_broker = facegate("remove", "a", "--signing-key", str(key))
    assert no_broker.returncode == 2 and "no broker: set mqtt.host" in no_broker.stderr


def test_the_real_model_rejects_a_photo_of_someone_else(encoder_model, face_fixtures, detector):
    from daemon.embeddings import load_encoder
    encoder = load_encoder(encoder_model)
    photos = person_photos(face_fixtures, X)[:3] + person_photos(face_fixtures, Y)[:1]
    results = examine_photos(photos, encoder, detector, PhotoGate())
    assert [r.reason for r in results] == [None, None, None, "inconsistent"], [r.detail for r in results]
