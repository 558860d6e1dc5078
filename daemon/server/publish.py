"""Building enrollment messages: the server side of daemon/protocol/records.py.

Each builder returns ``(topic, payload)``. Publish it retained, QoS 1. With a signing
key the payload carries the Ed25519 signature over topic and body (daemon/protocol/signing.py);
without one it is unsigned, which devices accept only with ``allow_unsigned`` (development).
"""

from __future__ import annotations

import time

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.protocol import topics
from daemon.protocol.records import SCHEMA
from daemon.protocol.signing import sign_payload
from daemon.protocol.wire import compact_json, iso_utc


def version_now(known: int = 0, now: float | None = None) -> int:
    """A version for a new record: the current time in milliseconds, and always above
    ``known`` (the highest version already published for the person), so a server
    clock that went backwards cannot produce a version that devices would ignore."""
    return max(int((time.time() if now is None else now) * 1000), known + 1)


def _finish(topic: str, body: dict, key: Ed25519PrivateKey | None) -> tuple[str, bytes]:
    payload = compact_json(body)
    return topic, (sign_payload(key, topic, payload) if key is not None else payload)


def person_record(site: str, person_id: str, name: str, encodings: np.ndarray, model_id: str, version: int,
                  key: Ed25519PrivateKey | None, updated_at: float | None = None) -> tuple[str, bytes]:
    """An upsert: the person's unit encodings (k, D) computed with model ``model_id``,
    for ``facegate/<site>/enroll/<model_id>/<person_id>``. ``version`` must exceed every
    earlier record and tombstone of this person (see version_now)."""
    encodings = np.asarray(encodings, np.float64).reshape(-1, np.shape(encodings)[-1])
    encodings = encodings / np.linalg.norm(encodings, axis=1, keepdims=True)
    body = {"schema": SCHEMA, "person_id": person_id, "version": int(version),
            "updated_at": iso_utc(updated_at), "name": name, "model_id": model_id,
            # 8 significant digits round-trip float32 closely enough and keep payloads small
            "encodings": [[float(f"{v:.8g}") for v in row] for row in encodings]}
    return _finish(topics.enroll_topic(site, model_id, person_id), body, key)


def tombstone(site: str, person_id: str, version: int, key: Ed25519PrivateKey | None,
              updated_at: float | None = None) -> tuple[str, bytes]:
    """A revocation of every model's record, for ``facegate/<site>/revoke/<person_id>``.
    Published retained so a device that is offline now still gets it."""
    body = {"schema": SCHEMA, "person_id": person_id, "version": int(version),
            "updated_at": iso_utc(updated_at), "deleted": True}
    return _finish(topics.revoke_topic(site, person_id), body, key)
