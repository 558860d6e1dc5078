"""End to end with the shipped encoder, the fixture faces and a real Mosquitto.

Enrollment records are computed from photos 1-3 of a person; the daemon sees 640x480
"camera" frames made from all six photos (see daemon_helpers.camera_frames). These
tests skip, saying why, until daemon/models/encoder.tflite exists.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from daemon.api import embed_image
from daemon.door.service import Service
from daemon.embeddings import load_encoder
from daemon.events.outbox import Outbox
from daemon.protocol.topics import event_topic, status_topic
from daemon_helpers import (Probe, ServiceThread, SiteServer, camera_frames, copy_photos, person_photos, revocation,
                            service_config, write_public_key)
from daemon_helpers import enrollment as signed_enrollment

REPO = Path(__file__).resolve().parent.parent
X, Y, Z = "Donald_Rumsfeld", "Serena_Williams", "Vladimir_Putin"


@pytest.fixture(scope="module")
def encoder(encoder_model):
    return load_encoder(encoder_model)


def enrollment(site, encoder, faces, person, version=1) -> tuple[str, bytes]:
    photos = person_photos(faces, person)[:3]
    encodings = np.stack([embed_image(p, encoder).embedding for p in photos])
    return signed_enrollment(site, person, encodings, encoder.info.model_id, version, name=person.replace("_", " "))


def run_until_end(cfg, encoder) -> Service:
    service = Service(cfg, encoder=encoder, stdout=io.StringIO())
    service.start()
    try:
        service.run(exit_at_end=True)
    finally:
        service.close()
    return service


def unlocks(probe, topic) -> list[str]:
    return [e["person_id"] for e in probe.json(topic) if e["event"] == "unlock"]


def test_published_enrollment_then_frames_of_that_person_give_exactly_one_unlock(
        tmp_path, broker, encoder, face_fixtures):
    camera_frames(person_photos(face_fixtures, X), tmp_path / "frames", repeat=2)
    cfg = service_config(tmp_path, broker)
    site = cfg.device.site
    server = SiteServer(broker, site, tmp_path)
    server.publish(*enrollment(site, encoder, face_fixtures, X))
    server.publish(*enrollment(site, encoder, face_fixtures, Y))
    topic = event_topic(site, "door1")
    probe = Probe(broker, topic)
    service = run_until_end(cfg, encoder)
    assert service.gallery.get(X) is not None and service.gallery.get(Y) is not None
    assert probe.wait_for(lambda p: len(p.json(topic)) >= 1)
    time.sleep(0.5)  # anything else would arrive now
    events = probe.json(topic)
    assert [(e["event"], e["person_id"]) for e in events] == [("unlock", X)]
    e = events[0]
    assert e["device_id"] == "door1" and e["site"] == site and e["model_id"] == encoder.info.model_id
    assert e["frames_voted"] >= 3 and 0 <= e["distance"] <= encoder.info.threshold
    assert len(Outbox.open(cfg.device.state_dir)) == 0, "delivered and acknowledged before exit"
    probe.close()


def test_revoked_while_the_daemon_was_stopped_no_longer_unlocks(tmp_path, broker, encoder, face_fixtures):
    camera_frames(person_photos(face_fixtures, X), tmp_path / "frames", repeat=2)
    cfg = service_config(tmp_path, broker)
    site = cfg.device.site
    topic = event_topic(site, "door1")
    server = SiteServer(broker, site, tmp_path)
    server.publish(*enrollment(site, encoder, face_fixtures, X, version=1))
    probe = Probe(broker, topic)
    run_until_end(cfg, encoder)
    assert probe.wait_for(lambda p: unlocks(p, topic) == [X]), "X unlocks before the revocation"

    server.publish(*revocation(site, X, 2))  # the daemon is not running
    service = run_until_end(cfg, encoder)
    assert service.gallery.get(X).deleted
    time.sleep(0.5)
    assert unlocks(probe, topic) == [X], "no second unlock after the revocation"
    probe.close()


def test_with_the_broker_down_the_stored_gallery_unlocks_and_the_event_follows(
        tmp_path, broker, encoder, face_fixtures):
    camera_frames(person_photos(face_fixtures, X), tmp_path / "frames")
    cfg = service_config(tmp_path, broker, events={"unlock_max_age_s": 30.0})  # an outage shorter than that
    site = cfg.device.site
    topic = event_topic(site, "door1")
    SiteServer(broker, site, tmp_path).publish(*enrollment(site, encoder, face_fixtures, X))
    # The consumer's persistent session: the broker keeps its QoS 1 messages while it is away.
    consumer = Probe(broker, topic, client_id=f"consumer-{site}", persistent=True)
    run_until_end(cfg, encoder)  # first boot: syncs X into the stored gallery
    assert consumer.wait_for(lambda p: unlocks(p, topic) == [X])

    broker.stop()
    offline_cfg = service_config(tmp_path, broker, device={"site": site}, mqtt={"sync_wait_s": 0.5},
                                 events={"unlock_max_age_s": 30.0})
    running = ServiceThread(Service(offline_cfg, encoder=encoder, stdout=io.StringIO()))
    try:
        assert running.wait_until(lambda s: s.counters.events["unlock"] == 1), "stored gallery still unlocks"
        # The unlock is counted before its event reaches the outbox: wait for that too.
        assert running.wait_until(lambda s: s.sync.sink.pending == 1), "the event waits in the outbox"
        broker.start()
        assert consumer.wait_for(lambda p: unlocks(p, topic) == [X, X], timeout=20), "delivered when back"
        assert running.wait_until(lambda s: s.sync.sink.pending == 0)
    finally:
        running.stop()
        consumer.close()


def test_a_replay_source_that_is_missing_then_appears_recovers(tmp_path, encoder, face_fixtures):
    """The frame source fails at start (folder not there), the daemon keeps retrying and
    reporting the error, and recognises the person once frames arrive."""
    people = tmp_path / "people"
    for pid in (X, Y):
        copy_photos(person_photos(face_fixtures, pid)[:3], people / pid)
    cfg = service_config(tmp_path, gallery={"photos": str(people)}, source={"fps": 20.0})
    out = io.StringIO()
    running = ServiceThread(Service(cfg, encoder=encoder, stdout=out), exit_at_end=True)
    try:
        assert running.wait_until(lambda s: "does not exist" in (s.health()["source"]["last_error"] or ""))
        assert not running.service.health()["source"]["healthy"]
        staging = camera_frames(person_photos(face_fixtures, X), tmp_path / "staging")
        staging.rename(tmp_path / "frames")  # appears at once, complete
        running.join()
    finally:
        running.stop()
    health = running.service.health()["source"]
    assert health["healthy"] and health["reopen_count"] >= 1
    assert [json.loads(line)["person_id"] for line in out.getvalue().splitlines()] == [X]


# ---------------------------------------------------------------- the command line

def facegate(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "daemon", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, **kwargs)


@pytest.fixture
def gallery_photos(tmp_path, face_fixtures):
    people = tmp_path / "people"
    for pid in (X, Y, "Jean_Chretien"):
        copy_photos(person_photos(face_fixtures, pid), people / pid)
    return people


@pytest.mark.parametrize("person,liveness,expected", [(X, ["--liveness", "off"], [X]), (Z, ["--liveness", "off"], []),
                                                      (X, [], [])],
                         ids=["enrolled", "not-enrolled", "still-photos-refused-by-default-liveness"])
def test_embedded_default_from_the_command_line(tmp_path, encoder_model, face_fixtures, gallery_photos,
                                                person, liveness, expected):
    """The README's standalone command. The frames are still photos: liveness, on by default,
    refuses them; the demo turns it off (as the README does)."""
    frames = camera_frames(person_photos(face_fixtures, person), tmp_path / "frames", repeat=2)
    proc = facegate("run", "--replay", str(frames), "--fps", "0", "--gallery-photos", str(gallery_photos),
                    "--state-dir", str(tmp_path / "state"), "--once", "--model", str(encoder_model), *liveness)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    events = [json.loads(line) for line in out.decode().splitlines()]  # stdout holds only JSON lines
    assert [e["person_id"] for e in events if e["event"] == "unlock"] == expected
    for e in events:
        assert {"event", "person_id", "distance", "ts"} <= set(e)
    assert b"ready in" in err  # logs go to stderr


def test_cli_under_systemd_notify_and_graceful_sigterm(tmp_path, broker, encoder_model, face_fixtures):
    """READY=1 and WATCHDOG=1 reach $NOTIFY_SOCKET; SIGTERM publishes offline and exits 0."""
    frames = camera_frames(person_photos(face_fixtures, Y)[:2], tmp_path / "frames")
    site = f"cli{os.getpid()}"
    config = tmp_path / "facegate.toml"
    config.write_text(f"""
        [device]
        id = "door1"
        site = "{site}"
        state_dir = "{tmp_path / 'state'}"
        [source]
        kind = "replay"
        path = "{frames}"
        fps = 20.0
        loop = true
        [model]
        path = "{encoder_model}"
        [mqtt]
        host = "{broker.host}"
        port = {broker.port}
        health_interval_s = 0.5
        [enrollment]
        public_key = "{write_public_key(tmp_path / 'keys')}"
    """.replace("\n        ", "\n"))
    notify_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(30)
    status = status_topic(site, "door1")
    probe = Probe(broker, status)
    started = time.monotonic()
    proc = facegate("run", "--config", str(config),
                    env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000"})
    try:
        messages = []
        while not any(m.startswith("WATCHDOG=1") for m in messages):
            messages.append(sock.recv(4096).decode())
        assert messages[0].startswith("READY=1"), messages
        assert probe.wait_for(lambda p: p.payloads(status)[-1:] == [b"online"], timeout=15)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        sock.close()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"SIGTERM: shutting down" in err
    assert probe.wait_for(lambda p: p.payloads(status)[-1:] == [b"offline"])
    assert time.monotonic() - started < 60
    probe.close()


def test_state_files_are_private_after_a_hand_run(tmp_path, encoder_model, face_fixtures, gallery_photos):
    """Not under systemd (no StateDirectoryMode, a umask of 022): the state folder is
    still 0700 and every file in it 0600 (a shared folder: test_cli_run.py)."""
    frames = camera_frames(person_photos(face_fixtures, X)[:2], tmp_path / "frames")
    state = tmp_path / "state"
    args = ("run", "--replay", str(frames), "--fps", "0", "--gallery-photos", str(gallery_photos),
            "--state-dir", str(state), "--once", "--model", str(encoder_model))
    proc = facegate(*args, preexec_fn=lambda: os.umask(0o022))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert state.stat().st_mode & 0o777 == 0o700
    files = list(state.iterdir())
    assert any(f.name == "gallery.sqlite3" for f in files)
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}
