"""The service loop without the trained model: the real detector, aligner, gallery,
broker and sources, with PixelEncoder standing in for the encoder (it recognises the
same photo seen again). The scenarios with the shipped model are in test_service_e2e.py."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from daemon.api import embed_image
from daemon.config import ConfigError
from daemon.door.service import Service
from daemon.frames import Frame, SourceError
from daemon.protocol.topics import enroll_topic, event_topic, health_topic, status_topic
from daemon_helpers import (PixelEncoder, Probe, ServiceThread, SiteServer, copy_photos, enrollment, person_photos,
                            publish, revocation, service_config, signed)

X, Y = "Jean_Chretien", "Serena_Williams"


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def run_once(cfg, source=None) -> tuple[Service, io.StringIO]:
    out = io.StringIO()
    service = Service(cfg, encoder=PixelEncoder(), stdout=out, source=source)
    service.start()
    try:
        service.run(exit_at_end=True)
    finally:
        service.close()
    return service, out


@pytest.fixture
def people(tmp_path, face_fixtures):
    """Gallery photos of everyone but Serena Williams."""
    root = tmp_path / "people"
    for pid in ("Donald_Rumsfeld", X, "Vladimir_Putin"):
        copy_photos(person_photos(face_fixtures, pid), root / pid)
    return root


def test_standalone_unlocks_an_enrolled_person_once_on_stdout(tmp_path, people, face_fixtures):
    copy_photos(person_photos(face_fixtures, X), tmp_path / "frames", repeat=2)
    cfg = service_config(tmp_path, gallery={"photos": str(people)})
    service, out = run_once(cfg)
    got = events(out)
    assert [(e["event"], e["person_id"]) for e in got] == [("unlock", X)], "12 frames, one unlock (cooldown)"
    assert got[0]["frames_voted"] == 3 and got[0]["distance"] < 0.05 and got[0]["model_id"] == "pixel-test"
    assert service.counters.frames == 12
    assert len(service.gallery) == 3


def test_a_person_who_is_not_enrolled_does_not_unlock(tmp_path, people, face_fixtures):
    copy_photos(person_photos(face_fixtures, Y), tmp_path / "frames", repeat=2)
    service, out = run_once(service_config(tmp_path, gallery={"photos": str(people)}))
    assert events(out) == []
    assert service.counters.results["unknown"] == 12


@pytest.mark.parametrize("key, value, reason", [("min_detection_score", 1.0, "low_score"),
                                                ("min_face_px", 1e4, "too_small"),
                                                ("min_eye_distance_px", 1e4, "too_small"),
                                                ("min_blur", 1e9, "too_blurred")])
def test_each_quality_key_is_the_gate_the_door_applies(tmp_path, people, face_fixtures, key, value, reason):
    copy_photos(person_photos(face_fixtures, X), tmp_path / "frames")
    service, out = run_once(service_config(tmp_path, gallery={"photos": str(people)}, quality={key: value}))
    assert events(out) == [] and not service.counters.results, "no face reaches the encoder"
    skipped = service.counters.skipped_faces
    assert skipped[reason] > 0 and sum(skipped.values()) == service.counters.faces > 0


def test_unknown_face_events_are_off_by_default_and_rate_limited_when_on(tmp_path, people, face_fixtures):
    copy_photos(person_photos(face_fixtures, Y), tmp_path / "frames", repeat=2)
    cfg = service_config(tmp_path, gallery={"photos": str(people)}, events={"unknown_face": True})
    _, out = run_once(cfg)
    got = events(out)
    assert [e["event"] for e in got] == ["unknown_face"]
    assert got[0]["frames_voted"] == 3 and got[0]["distance"] > 0.5


class ListSource:
    """A camera test double that plays a list of images, then raises or ends."""

    def __init__(self, images, name="list"):
        self.images, self.name, self._i = list(images), name, 0

    def open(self):
        pass

    def read(self):
        if self._i >= len(self.images):
            return None
        image = self.images[self._i]
        self._i += 1
        if isinstance(image, Exception):
            raise image
        return Frame(image=image, index=self._i, timestamp=time.time(), source=self.name)

    def close(self):
        pass


def test_garbage_frames_are_counted_and_the_loop_carries_on(tmp_path, people, face_fixtures):
    import cv2
    photos = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in person_photos(face_fixtures, X)[:3]]
    garbage = [np.zeros((480, 640), np.uint8), np.zeros((1, 1), np.uint8), np.zeros((4, 4, 5), np.uint8),
               np.full((240, 320, 3), 7, np.float32), np.zeros((0, 0), np.uint8)]
    cfg = service_config(tmp_path, gallery={"photos": str(people)})
    service, out = run_once(cfg, source=ListSource(garbage + photos))
    assert [e["person_id"] for e in events(out)] == [X]
    assert service.counters.frames == 8
    assert service.counters.frame_errors >= 2
    assert "frame" in service.health()["last_error"]


class FlakyCamera(ListSource):
    """Fails to open twice (unplugged), delivers frames, drops out once mid-stream."""

    def __init__(self, images):
        super().__init__(images, name="flaky camera")
        self.open_failures = 2
        self.opens = 0

    def open(self):
        self.opens += 1
        if self.open_failures:
            self.open_failures -= 1
            raise SourceError("camera unplugged")


def test_a_camera_that_fails_and_recovers_is_reopened_and_reported(tmp_path, people, face_fixtures):
    import cv2
    photos = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in person_photos(face_fixtures, X)[:4]]
    camera = FlakyCamera([photos[0], SourceError("stream dropped"), *photos[1:]])
    cfg = service_config(tmp_path, gallery={"photos": str(people)})
    service, out = run_once(cfg, source=camera)
    assert [e["person_id"] for e in events(out)] == [X]
    health = service.health()["source"]
    assert camera.opens == 4
    assert health["reopen_count"] == 3 and health["last_error"] == "stream dropped" and health["healthy"]


class DeadCamera(ListSource):
    """A camera that never opens (unplugged for good)."""

    def open(self):
        raise SourceError("camera unplugged")


def test_enrollments_and_revocations_still_sync_while_the_camera_is_down(tmp_path, broker, face_fixtures):
    """The gallery must follow the server even when no frame arrives: a revocation that
    waited for the camera would be applied too late."""
    cfg = service_config(tmp_path, broker, mqtt={"sync_wait_s": 0.0})
    site = cfg.device.site
    encoder = PixelEncoder()
    encodings = np.stack([embed_image(p, encoder).embedding for p in person_photos(face_fixtures, X)[:2]])
    running = ServiceThread(Service(cfg, encoder=encoder, source=DeadCamera([])))
    server = SiteServer(broker, site, tmp_path)
    try:
        server.publish(*enrollment(site, X, encodings, "pixel-test", 1))
        assert running.wait_until(lambda s: s.matcher.index.person_ids == (X,))
        server.publish(*revocation(site, X, 2))
        assert running.wait_until(lambda s: s.matcher.index.person_ids == ())
        assert not running.service.health()["source"]["healthy"]
    finally:
        running.stop()
        server.close()


def test_enrollment_revocation_and_bad_messages_while_running(tmp_path, broker, face_fixtures):
    """Live over MQTT: a person enrolled by the server unlocks; a malformed message changes
    nothing; after the tombstone the same person no longer unlocks."""
    copy_photos(person_photos(face_fixtures, X)[:3], tmp_path / "frames")
    cfg = service_config(tmp_path, broker, source={"loop": True, "fps": 15.0}, decision={"cooldown_s": 0.5})
    site = cfg.device.site
    encoder = PixelEncoder()
    encodings = np.stack([embed_image(p, encoder).embedding for p in person_photos(face_fixtures, X)[:3]])
    topic = event_topic(site, "door1")
    probe = Probe(broker, topic, status_topic(site, "door1"), health_topic(site, "door1"))
    running = ServiceThread(Service(cfg, encoder=encoder))
    server = SiteServer(broker, site, tmp_path)
    try:
        assert probe.wait_for(lambda p: p.payloads(status_topic(site, "door1"))[-1:] == [b"online"])
        server.publish(*enrollment(site, X, encodings, "pixel-test", 1, name="Jean Chrétien"))
        assert probe.wait_for(lambda p: len(p.json(topic)) >= 1)
        first = probe.json(topic)[0]
        assert (first["event"], first["person_id"], first["name"], first["site"]) == ("unlock", X, "Jean Chrétien", site)

        topic_x = enroll_topic(site, "pixel-test", X)
        publish(broker, *signed(topic_x, b'{"schema": 2, "person_id": "Jean_Chretien", "deleted": "yes"}'))
        forged = enrollment(site, X, encodings, "pixel-test", 5)[1][:-30] + b"A" * 28 + b'"}'  # signature replaced
        publish(broker, topic_x, forged)
        publish(broker, *enrollment(site, X, encodings[:1], "pixel-test", 1, name="old"))
        assert running.wait_until(lambda s: s.health()["records"]["rejected"] == {"bad_field": 1, "bad_signature": 1}
                                  and s.health()["records"]["stale"] == 1)
        assert running.service.matcher.index.person_ids == (X,), "the gallery is untouched"

        server.publish(*revocation(site, X, 2))
        assert running.wait_until(lambda s: s.matcher.index.person_ids == ())
        time.sleep(0.3)  # frames already in the pipeline
        before = len(probe.json(topic))
        time.sleep(1.5)  # three cooldowns of frames of X
        assert len(probe.json(topic)) == before, "a revoked person must not unlock"

        health_topic_name = health_topic(site, "door1")
        assert probe.wait_for(lambda p: len(p.json(health_topic_name)) >= 2)
        health = probe.json(health_topic_name)[-1]
        assert health["gallery"]["persons"] == 0 and health["gallery"]["tombstones"] == 1
        assert health["model_id"] == "pixel-test" and health["source"]["healthy"] and health["fps"] > 0
        assert health["broker"] == {"connected": True}
        assert set(health["timings_ms"]) >= {"capture", "faces", "embed", "match", "decide"}
    finally:
        running.stop()
        server.close()
    assert probe.wait_for(lambda p: p.payloads(status_topic(site, "door1"))[-1:] == [b"offline"])
    probe.close()


def test_a_device_with_a_broker_but_no_public_key_refuses_to_start(tmp_path, broker):
    cfg = service_config(tmp_path, broker, enrollment={"public_key": ""})
    service = Service(cfg, encoder=PixelEncoder())
    with pytest.raises(ConfigError, match="enrollment.public_key is required when mqtt.host is set"):
        service.start()
    service.close()


def test_the_runtime_never_imports_tensorflow():
    import subprocess
    import sys
    code = ("import sys, daemon.cli, daemon.door.service, daemon.door.link, daemon.events.mqtt, daemon.config; "
            "daemon.cli.build_parser(); bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'model_build')]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("modules, forbidden", [
    ("daemon.door.service, daemon.door.sync, daemon.door.link, daemon.events.mqtt", ("daemon.server",)),
    ("daemon.server.service, daemon.server.tool, daemon.server.photos", ("daemon.door", "daemon.gallery")),
])
def test_the_door_and_the_enrollment_server_share_only_the_protocol_and_the_stages(modules, forbidden):
    """A door never carries the server's code (signing, the store), and the server keeps its own store."""
    import subprocess
    import sys
    code = (f"import sys, {modules}; bad = sorted(m for m in sys.modules if m.startswith({forbidden!r})); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_state_file_of_a_door_with_a_broker_is_private(tmp_path, broker, face_fixtures):
    """The gallery, the event outbox and their -wal/-shm files: 0600 whatever the umask."""
    import os
    copy_photos(person_photos(face_fixtures, X)[:1], tmp_path / "frames")
    old = os.umask(0o002)
    try:
        run_once(service_config(tmp_path, broker, mqtt={"sync_wait_s": 0.2}))
    finally:
        os.umask(old)
    state = tmp_path / "state"
    names = {f.name for f in state.iterdir()}
    assert {"gallery.sqlite3", "outbox.sqlite3"} <= names
    assert {f.name: f.stat().st_mode & 0o777 for f in state.iterdir()} == {n: 0o600 for n in names}
    assert state.stat().st_mode & 0o777 == 0o700


def test_state_left_readable_by_an_older_version_is_made_private(tmp_path, face_fixtures):
    """A state folder (0755) and gallery (0644) from before this version, or from a
    hand-made folder: narrowed to 0700 / 0600 at start."""
    copy_photos(person_photos(face_fixtures, X)[:1], tmp_path / "frames")
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    from daemon.gallery import Gallery
    Gallery.open(state).close()
    (state / "gallery.sqlite3").chmod(0o644)
    run_once(service_config(tmp_path))
    assert state.stat().st_mode & 0o777 == 0o700
    assert {f.name: f.stat().st_mode & 0o777 for f in state.iterdir()} == {f.name: 0o600 for f in state.iterdir()}
