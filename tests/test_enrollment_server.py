"""The enrollment server's store and `facegate server`, against a real Mosquitto and a
running door: the broker is only a cache, and neither its loss nor replays of old signed
messages let a revoked or superseded face in.

The door runs with PixelEncoder (it recognises the same photo again); the records are
made by the real enrollment tool from the same photos.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from daemon.door.service import Service
from daemon.faces.detect import FaceDetector
from daemon.protocol import topics
from daemon.protocol.broker import BrokerSettings
from daemon.server.client import EnrollmentClient
from daemon.server.service import EnrollmentServer
from daemon.server.store import EnrollmentStore, Publication
from daemon.server.tool import Target, enroll, remove
from daemon_helpers import (TEST_KEY, PixelEncoder, ServiceThread, copy_photos, person_photos, publish, revocation,
                            service_config, wait_for)

REPO = Path(__file__).resolve().parent.parent
ALICE_FACE, OLD_FACE, BOB_FACE = "Jean_Chretien", "Serena_Williams", "Vladimir_Putin"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def settings(broker) -> BrokerSettings:
    return BrokerSettings(broker.host, broker.port)


class Admin:
    """`facegate enroll / remove` with the real tool, the store and a fresh connection each time."""

    def __init__(self, broker, site: str, store: EnrollmentStore, faces: Path, detector):
        self.broker, self.site, self.store, self.faces, self.detector = broker, site, store, faces, detector

    def _target(self, client) -> Target:
        return Target(self.site, TEST_KEY, client=client, store=self.store)

    def enroll(self, person: str, face: str) -> int:
        with EnrollmentClient(settings(self.broker)) as client:
            return enroll(self._target(client), person, person.title(), person_photos(self.faces, face)[:3],
                          PixelEncoder(), self.detector, consistency=False).version

    def remove(self, person: str) -> int:
        with EnrollmentClient(settings(self.broker)) as client:
            return remove(self._target(client), person).version

    def broker_holds(self) -> dict[str, bytes]:
        with EnrollmentClient(settings(self.broker)) as client:
            return client.retained([topics.enroll_filter(self.site), topics.revoke_filter(self.site),
                                    *topics.manifest_filters(self.site)])


class ServerThread:
    """`facegate server` (EnrollmentServer.run) in a thread."""

    def __init__(self, broker, store, site, interval_s=3600.0, valid_s=7200.0):
        self.server = EnrollmentServer(store, site, TEST_KEY, settings(broker), manifest_interval_s=interval_s,
                                       manifest_valid_s=valid_s, settle_s=0.3, reconnect_max_s=1)
        self.server.start()
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()

    def wait(self, predicate, timeout=10.0) -> bool:
        return wait_for(lambda: predicate(self.server), timeout)

    def stop(self):
        self.server.stop()
        self._thread.join(10)
        self.server.close()
        assert not self._thread.is_alive()


def door_config(tmp_path, broker, site=None, state="state"):
    cfg = service_config(tmp_path, broker, source={"loop": True, "fps": 15.0}, decision={"cooldown_s": 0.5},
                         mqtt={"sync_wait_s": 1.0})
    cfg.device.state_dir = str(tmp_path / state)
    if site:
        cfg.device.site = site
    return cfg


# ---------------------------------------------------------------- the scenario

def test_a_revocation_outlives_a_broker_that_lost_everything(tmp_path, volatile_broker, face_fixtures, detector):
    """Remove alice while the door is off, restart the broker without persistence, start
    the door and then the server: alice is refused within seconds of the server connecting."""
    broker = volatile_broker
    copy_photos(person_photos(face_fixtures, ALICE_FACE)[:3], tmp_path / "frames")
    cfg = door_config(tmp_path, broker)
    site = cfg.device.site
    store = EnrollmentStore.open(tmp_path / "server")
    admin = Admin(broker, site, store, face_fixtures, detector)
    admin.enroll("alice", ALICE_FACE)
    door = ServiceThread(Service(cfg, encoder=PixelEncoder()))
    try:
        assert door.wait_until(lambda s: s.counters.events["unlock"] >= 1), "alice unlocks while enrolled"
    finally:
        door.stop()

    admin.remove("alice")        # the door is off
    broker.restart()             # no persistence: the tombstone, the manifest, everything is gone
    assert admin.broker_holds() == {}

    door = ServiceThread(Service(cfg, encoder=PixelEncoder()))  # an empty broker, the old stored state
    server = ServerThread(broker, store, site)
    try:
        assert server.wait(lambda s: s.connected)
        connected = time.monotonic()
        assert door.wait_until(lambda s: s.matcher.index.person_ids == () and s.gallery.get("alice").deleted)
        assert time.monotonic() - connected < 5, "refused within seconds of the server connecting"
        time.sleep(0.3)  # frames already past the matcher
        before = door.service.counters.events["unlock"]
        time.sleep(2.0)  # four cooldowns of frames of alice
        assert door.service.counters.events["unlock"] == before, "a revoked person must not unlock"
        assert admin.broker_holds() == store.retained(site), "the broker holds the store's state again"
    finally:
        server.stop()
        door.stop()
        store.close()


@pytest.mark.parametrize("history", ["fresh door", "gallery moved aside"])
def test_replayed_old_records_and_a_cleared_tombstone_never_unlock(tmp_path, broker, face_fixtures, detector,
                                                                   history):
    """Someone who can publish on the enroll and revoke topics clears bob's tombstone,
    republishes bob's old record and alice's superseded v1 (another face). A door with no
    history (new, or its gallery moved aside after corruption) refuses them; once the
    server repairs the broker, alice's current face unlocks and nothing else."""
    frames = tmp_path / "frames"
    for face in (OLD_FACE, BOB_FACE, ALICE_FACE):  # looped in this order
        copy_photos(person_photos(face_fixtures, face)[:3], frames / face)
    for i, photo in enumerate(sorted(frames.rglob("*.jpg"))):
        photo.rename(frames / f"{i:03d}.jpg")
    cfg = door_config(tmp_path, broker)
    site = cfg.device.site
    store = EnrollmentStore.open(tmp_path / "server")
    admin = Admin(broker, site, store, face_fixtures, detector)
    admin.enroll("alice", OLD_FACE)
    alice_v1 = admin.broker_holds()[topics.enroll_topic(site, "pixel-test", "alice")]
    admin.enroll("bob", BOB_FACE)
    bob_v1 = admin.broker_holds()[topics.enroll_topic(site, "pixel-test", "bob")]
    admin.enroll("alice", ALICE_FACE)   # v2: alice's real face
    admin.remove("bob")

    if history == "gallery moved aside":
        door = ServiceThread(Service(cfg, encoder=PixelEncoder()))
        try:
            assert door.wait_until(lambda s: s.counters.events["unlock"] >= 1)
        finally:
            door.stop()
        state = Path(cfg.device.state_dir)
        for part in state.glob("gallery.sqlite3*"):
            part.rename(part.with_name(part.name + ".corrupt-1"))

    publish(broker, topics.revoke_topic(site, "bob"), b"")                      # tombstone cleared
    publish(broker, topics.enroll_topic(site, "pixel-test", "bob"), bob_v1)     # the revoked record, replayed
    publish(broker, topics.enroll_topic(site, "pixel-test", "alice"), alice_v1) # the superseded face, replayed

    door = ServiceThread(Service(cfg, encoder=PixelEncoder()))
    server = None
    try:
        assert door.wait_until(lambda s: s.counters.frames >= 3 * 9 and s.health()["records"]["superseded"] >= 2)
        assert door.service.counters.events["unlock"] == 0, "no replayed face unlocks"
        assert door.service.gallery.get("bob").deleted, "the manifest alone revokes bob"
        assert door.service.matcher.index.person_ids == ()

        server = ServerThread(broker, store, site)  # repairs the broker: alice v2 and bob's tombstone again
        assert door.wait_until(lambda s: s.counters.events["unlock"] >= 1, timeout=15)
        assert door.service.matcher.index.person_ids == ("alice",)
        assert door.service.gallery.get("alice").version == store.highest_version(site, "alice")
        assert wait_for(lambda: admin.broker_holds() == store.retained(site)), "the replays are gone"
    finally:
        if server:
            server.stop()
        door.stop()
        store.close()


# ---------------------------------------------------------------- the server on its own

def test_the_server_repairs_cleared_replaced_and_replayed_retained_messages(tmp_path, broker, face_fixtures,
                                                                            detector):
    site = f"r{os.getpid()}{int(time.time() * 1000) % 100000}"
    store = EnrollmentStore.open(tmp_path / "server")
    admin = Admin(broker, site, store, face_fixtures, detector)
    admin.enroll("alice", OLD_FACE)
    old = admin.broker_holds()
    admin.enroll("alice", ALICE_FACE)
    admin.enroll("bob", BOB_FACE)
    admin.remove("bob")
    server = ServerThread(broker, store, site)
    try:
        assert server.wait(lambda s: s.syncs == 1)
        assert wait_for(lambda: admin.broker_holds() == store.retained(site))
        repairs = server.server.repairs
        alice, bob = topics.enroll_topic(site, "pixel-test", "alice"), topics.revoke_topic(site, "bob")
        manifest = topics.manifest_topic(site, "pixel-test")
        publish(broker, bob, b"")                                                 # cleared
        publish(broker, alice, old[alice])                                        # replayed, validly signed
        publish(broker, topics.enroll_topic(site, "pixel-test", "mallory"), b'{"not": "signed"}')  # planted
        publish(broker, manifest, old[manifest])                                  # an older manifest
        assert wait_for(lambda: admin.broker_holds() == store.retained(site))
        assert server.server.repairs - repairs == 4
    finally:
        server.stop()
        store.close()


def test_the_server_signs_a_new_manifest_on_schedule(tmp_path, broker, face_fixtures, detector):
    site = f"s{os.getpid()}{int(time.time() * 1000) % 100000}"
    store = EnrollmentStore.open(tmp_path / "server")
    Admin(broker, site, store, face_fixtures, detector).enroll("alice", ALICE_FACE)
    first = store.manifest_seq(site, "pixel-test")
    server = ServerThread(broker, store, site, interval_s=1.0, valid_s=3.0)
    try:
        assert wait_for(lambda: store.manifest_seq(site, "pixel-test") > first)
        second = store.manifest_seq(site, "pixel-test")
        assert wait_for(lambda: store.manifest_seq(site, "pixel-test") > second, timeout=5)
        assert time.time() < store.manifest_expiry(site) <= time.time() + 3.0
    finally:
        server.stop()
        store.close()


def test_a_store_restored_from_an_older_backup_takes_back_newer_state_from_the_broker(tmp_path, broker,
                                                                                     face_fixtures, detector):
    """The documented restore: the server imports what the broker holds, signed by its own
    key and newer than the backup (here: a removal made after the backup)."""
    site = f"b{os.getpid()}{int(time.time() * 1000) % 100000}"
    store = EnrollmentStore.open(tmp_path / "server")
    admin = Admin(broker, site, store, face_fixtures, detector)
    admin.enroll("alice", ALICE_FACE)
    backup = tmp_path / "backup.sqlite3"
    with sqlite3.connect(backup) as copy:
        store._db.backup(copy)          # what `sqlite3 enrollment.sqlite3 ".backup FILE"` does
    admin.remove("alice")
    store.close()

    restored_dir = tmp_path / "restored"
    restored_dir.mkdir(mode=0o700)
    shutil.copy(backup, restored_dir / "enrollment.sqlite3")
    restored = EnrollmentStore.open(restored_dir)
    assert not restored.is_revoked(site, "alice")
    server = ServerThread(broker, restored, site)
    try:
        assert wait_for(lambda: restored.is_revoked(site, "alice"))
        assert restored.manifest_entries(site, "pixel-test")["alice"][1] is True
        assert wait_for(lambda: Admin(broker, site, restored, face_fixtures, detector).broker_holds()
                        == restored.retained(site))
    finally:
        server.stop()
        restored.close()


def test_facegate_server_from_the_command_line_fills_an_empty_broker_and_stops_on_sigterm(tmp_path, broker):
    site = f"c{os.getpid()}"
    store = EnrollmentStore.open(tmp_path / "server")
    from daemon_helpers import enrollment, unit_vectors
    from daemon.protocol.records import parse_enrollment
    from daemon.protocol.signing import Trust
    topic, payload = enrollment(site, "alice", unit_vectors(2), "m1", 5)
    record = parse_enrollment(topic, payload, site, None, trust=Trust.of(TEST_KEY.public_key()))
    store.add(Publication.of(site, topic, payload, record))
    store.close()
    key = tmp_path / "signing.key"
    from cryptography.hazmat.primitives import serialization
    key.write_bytes(TEST_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "server", "--site", site, "--mqtt-host", broker.host,
                             "--mqtt-port", str(broker.port), "--signing-key", str(key), "--state-dir",
                             str(tmp_path / "server")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def held():
            with EnrollmentClient(settings(broker)) as client:
                return client.retained([topics.enroll_filter(site), *topics.manifest_filters(site)])
        assert wait_for(lambda: set(held()) == {topic, topics.manifest_topic(site, "m1"),
                                                topics.manifest_page_topic(site, "m1", 0)}, timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"SIGTERM: shutting down" in err and b"broker in step with the store" in err


# ---------------------------------------------------------------- the store

def test_remove_erases_the_encodings_from_the_store_and_keeps_the_history(tmp_path, face_fixtures, detector):
    """With the broker unreachable (no client) the change is still stored, for the server to publish."""
    store = EnrollmentStore.open(tmp_path / "server")
    target = Target("hq", TEST_KEY, client=None, store=store)
    enroll(target, "alice", "Alice", person_photos(face_fixtures, ALICE_FACE)[:2], PixelEncoder(), detector,
           consistency=False)
    outcome = remove(target, "alice")
    assert "not yet published" in outcome.delivered_to and store.is_revoked("hq", "alice")
    history = store.history("hq", "alice")
    assert [(h["kind"], h["current"], h["encodings"]) for h in history] == [("record", False, 2), ("tombstone", True, 0)]
    assert len(history[0]["photos"]) == 2 and history[0]["sha256"]
    payloads = store._db.execute("SELECT payload FROM published WHERE kind = 'record'").fetchall()
    assert payloads == [(None,)], "no encodings of a removed person are kept"
    assert store.manifest_entries("hq", "pixel-test") == {"alice": (outcome.version, True)}
    store.close()


def test_the_store_is_intact_after_kill_9_during_a_burst_of_changes(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from daemon.server.store import EnrollmentStore, Publication
        store = EnrollmentStore.open({str(tmp_path / 'server')!r})
        i = 0
        while True:
            i += 1
            person = f"p{{i % 20}}"
            store.add(Publication("hq", person, "record", "m1", i, f"facegate/hq/enroll/m1/{{person}}",
                                  b"payload %d" % i, encodings=1))
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    committed = 0
    while committed < 150:
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = EnrollmentStore.open(tmp_path / "server")
    rows = store._db.execute("SELECT version FROM published ORDER BY version").fetchall()
    assert [v for (v,) in rows][:committed] == list(range(1, committed + 1)), "every acknowledged change is there"
    current = store.current("hq")
    assert len(current) == 20 and all(c.payload == b"payload %d" % c.version for c in current)
    assert store._db.execute("SELECT COUNT(*) FROM published WHERE payload IS NOT NULL").fetchone()[0] == 20
    store.close()


def test_the_store_and_its_folder_are_private_and_a_writable_folder_is_refused(tmp_path):
    from daemon.state import StateDirError
    old = os.umask(0o022)
    try:
        store = EnrollmentStore.open(tmp_path / "server")
        store.close()
    finally:
        os.umask(old)
    assert (tmp_path / "server").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "server").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f
    (tmp_path / "server").chmod(0o770)
    with pytest.raises(StateDirError, match="writable by other users"):
        EnrollmentStore.open(tmp_path / "server")


def test_the_store_is_private_after_a_hand_run_of_the_command_line(tmp_path):
    """`facegate list` run by hand with a umask of 022 creates the store 0700 / 0600; a
    group-writable folder is refused with exit code 2."""
    state = tmp_path / "server"

    def facegate_list():
        return subprocess.run([sys.executable, "-m", "daemon", "list", "--site", "hq", "--state-dir", str(state)],
                              cwd=REPO, capture_output=True, text=True, timeout=60,
                              preexec_fn=lambda: os.umask(0o022))
    result = facegate_list()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "0 current message(s) in the store" in result.stdout
    assert state.stat().st_mode & 0o777 == 0o700
    assert {f.name: f.stat().st_mode & 0o777 for f in state.iterdir()} == {f.name: 0o600 for f in state.iterdir()}
    state.chmod(0o775)
    result = facegate_list()
    assert result.returncode == 2 and "is writable by other users" in result.stderr


def test_a_signed_record_the_store_never_made_is_not_imported_if_older(tmp_path):
    """Importing is only for what is newer than the store: a replayed old record is not."""
    from daemon.server.tool import import_newer
    from daemon.protocol.signing import Trust
    from daemon_helpers import enrollment, unit_vectors
    store = EnrollmentStore.open(tmp_path / "server")
    trust = Trust.of(TEST_KEY.public_key())
    new = enrollment("hq", "alice", unit_vectors(1), "m1", 7)
    assert import_newer(store, "hq", dict([new]), trust) == [new[0]]
    old = enrollment("hq", "alice", unit_vectors(1, seed=4), "m1", 6)
    assert import_newer(store, "hq", dict([old]), trust) == []
    assert import_newer(store, "hq", dict([revocation("hq", "alice", 9, key=None)]), trust) == [], "unsigned"
    store.close()
