"""Helpers for the daemon tests: synthetic embeddings, a model-free encoder, replay
frames from the face fixtures, a test signing key, the enrollment server's store, MQTT
probes and running the service in a thread."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from daemon.config import config_from_dict
from daemon.door.service import Service
from daemon.embeddings.base import ModelInfo
from daemon.protocol.broker import BrokerSettings
from daemon.protocol.records import parse_enrollment
from daemon.protocol.signing import Trust, sign_payload
from daemon.server import publish as records
from daemon.server.client import EnrollmentClient
from daemon.server.store import EnrollmentStore, Publication
from daemon.server.tool import Target, commit

# The enrollment server's key in the tests (fixed, so failures are reproducible).
TEST_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"facegate test signing key").digest())
TEST_TRUST = Trust.of(TEST_KEY.public_key())


def enrollment(site: str, person_id: str, encodings, model_id: str = "m1", version: int = 1,
               name: str | None = None, key=TEST_KEY) -> tuple[str, bytes]:
    """(topic, payload) of a person record signed with the test key."""
    return records.person_record(site, person_id, name or person_id, encodings, model_id, version, key)


def revocation(site: str, person_id: str, version: int, key=TEST_KEY) -> tuple[str, bytes]:
    """(topic, payload) of a tombstone signed with the test key."""
    return records.tombstone(site, person_id, version, key)


def signed(topic: str, body: bytes, key=TEST_KEY) -> tuple[str, bytes]:
    """Any JSON object body, signed: for messages that are authentic but malformed."""
    return topic, sign_payload(key, topic, body)


def write_public_key(folder: Path, key=TEST_KEY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "enroll-signing.pub"
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


class SiteServer:
    """The enrollment server's side in device tests: ``publish(topic, payload)`` stores a
    signed record or tombstone in a real EnrollmentStore, signs the site's manifests and
    publishes both, retained, exactly as `facegate enroll` / `remove` do (tool.commit).
    Messages published with plain ``publish()`` instead are not in any manifest: replays."""

    def __init__(self, broker, site: str, folder: Path, key=TEST_KEY, manifest_valid_s: float = 3600.0):
        self.broker, self.site = broker, site
        self.store = EnrollmentStore.open(folder / f"server-{uuid.uuid4().hex[:6]}")
        self.key, self.manifest_valid_s = key, manifest_valid_s

    def publish(self, topic: str, payload: bytes) -> None:
        record = parse_enrollment(topic, payload, self.site, None, trust=Trust.of(self.key.public_key()))
        with EnrollmentClient(BrokerSettings(self.broker.host, self.broker.port)) as client:
            commit(self._target(client), [Publication.of(self.site, topic, payload, record)])

    def _target(self, client) -> Target:
        return Target(self.site, self.key, client=client, store=self.store, manifest_valid_s=self.manifest_valid_s)

    def resign(self) -> None:
        """A new manifest (higher sequence) for the same state, published."""
        with EnrollmentClient(BrokerSettings(self.broker.host, self.broker.port)) as client:
            for manifest in self.store.sign_manifests(self.site, self.key, self.manifest_valid_s):
                for topic, payload in manifest.messages():
                    client.publish(topic, payload)

    def close(self) -> None:
        self.store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unit_vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    """n random unit vectors (float32)."""
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class PixelEncoder:
    """A model-free Encoder: a fixed random projection of the normalised 56x56 crop.

    It only recognises (nearly) identical crops, which is all the service tests need:
    the same photo seen again matches at distance ~0, different people's photos are
    more than 0.55 apart. The real-model scenarios are in test_service_e2e.py.
    """

    def __init__(self, model_id: str = "pixel-test", threshold: float = 0.5):
        self.info = ModelInfo(model_id=model_id, input_size=112, embedding_size=128, threshold=threshold)
        self._projection = np.random.default_rng(0).standard_normal((128, 56 * 56)).astype(np.float32)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        crops = crops[None] if crops.ndim == 2 else crops
        out = []
        for crop in crops:
            x = cv2.resize(crop, (56, 56), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            x = (x - x.mean()) / (x.std() + 1e-6)
            e = self._projection @ x
            out.append(e / np.linalg.norm(e))
        return np.stack(out).astype(np.float32)


def person_photos(faces: Path, person: str) -> list[Path]:
    return sorted((faces / person).glob("*.jpg"))


def copy_photos(photos: list[Path], folder: Path, repeat: int = 1) -> Path:
    """Replay folder made of the photos themselves (each `repeat` times, in order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in range(repeat):
        for i, photo in enumerate(photos):
            shutil.copy(photo, folder / f"frame_{r:02d}_{i:03d}.jpg")
    return folder


def camera_frames(photos: list[Path], folder: Path, repeat: int = 1) -> Path:
    """640x480 'camera' frames: each photo enlarged so the face is ~35 % of the frame
    width (a person at a door), on a textured background, at a few positions."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    background = cv2.GaussianBlur(rng.integers(40, 200, (480, 640), np.uint8), (0, 0), 8)
    n = 0
    for r in range(repeat):
        for photo in photos:
            face = cv2.resize(cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE), (420, 420))
            frame = background.copy()
            x, y = 60 + (n * 37) % 160, 20 + (n * 13) % 40
            frame[y:y + 420, x:x + 420] = face
            cv2.imwrite(str(folder / f"frame_{n:03d}.jpg"), frame)
            n += 1
    return folder


def service_config(tmp_path: Path, broker=None, **sections) -> "Config":  # noqa: F821
    """A Config for tests: state in tmp_path, a unique site (retained messages of other
    tests stay out of the way), fast replay and reconnects, liveness off. ``sections`` are TOML-like dicts."""
    raw = {
        "device": {"id": "door1", "site": f"t{uuid.uuid4().hex[:10]}", "state_dir": str(tmp_path / "state")},
        "source": {"kind": "replay", "path": str(tmp_path / "frames"), "fps": 0.0},
        "mqtt": {"sync_wait_s": 3.0, "reconnect_min_s": 1, "reconnect_max_s": 1, "health_interval_s": 0.5},
        # These scenarios replay still photos, which liveness rightly refuses; liveness has its
        # own tests (test_liveness_*.py), and mode off is the door as it was before liveness.
        "liveness": {"mode": "off"},
    }
    if broker is not None:
        raw["mqtt"].update(host=broker.host, port=broker.port)
        raw["enrollment"] = {"public_key": str(write_public_key(tmp_path / "keys"))}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, env={})


class Probe:
    """An MQTT client that records every message on the given topic filters."""

    def __init__(self, broker, *filters: str, client_id: str | None = None, persistent: bool = False):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._filters = filters
        self._subscribed = threading.Event()
        # A persistent (clean_session=False) MQTT 3.1.1 session makes the broker queue
        # QoS 1 messages for us while we are disconnected, like a real event consumer.
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"probe-{uuid.uuid4().hex}",
                                  clean_session=not persistent, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "probe could not subscribe"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        for f in self._filters:
            client.subscribe(f, qos=1)

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.payloads(topic)]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker, topic: str, payload: bytes, retain: bool = True) -> None:
    """Publish one QoS 1 message and wait for the broker's acknowledgement.
    ``publish(broker, *enrollment(...))`` publishes a signed record."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


class ServiceThread:
    """A started Service running in a background thread (stop() joins it and closes)."""

    def __init__(self, service: Service, exit_at_end: bool = False):
        self.service = service
        service.start()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(exit_at_end,), daemon=True)
        self._thread.start()

    def _run(self, exit_at_end):
        try:
            self.service.run(exit_at_end=exit_at_end)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def wait_until(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.service):
                return True
            time.sleep(0.05)
        return predicate(self.service)

    def join(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "service did not finish"

    def stop(self) -> None:
        self.service.stop()
        self._thread.join(15)
        self.service.close()
        assert not self._thread.is_alive(), "service did not stop"
        if self.error:
            raise self.error
