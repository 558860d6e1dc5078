"""Building enrollment payloads: the server side of daemon/sync/records.py.

Used by the tests now and by the enrollment tool (`facegate enroll` / `remove`) later.
Publish the result retained, QoS 1, at ``topics.enroll_topic(site, person_id)``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import numpy as np

from daemon.sync.records import SCHEMA


def iso_utc(epoch: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a 'Z', e.g. '2025-01-31T12:00:00.123Z'."""
    when = datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def person_record_payload(person_id: str, name: str, encodings: np.ndarray, model_id: str,
                          version: int, updated_at: float | None = None) -> bytes:
    """An upsert: the person's unit encodings (k, D) computed with model ``model_id``.
    ``version`` must exceed every earlier record (and tombstone) of this person; a
    millisecond timestamp is a convenient choice."""
    encodings = np.asarray(encodings, np.float64).reshape(-1, np.shape(encodings)[-1])
    encodings = encodings / np.linalg.norm(encodings, axis=1, keepdims=True)
    body = {"schema": SCHEMA, "person_id": person_id, "version": int(version),
            "updated_at": iso_utc(updated_at), "name": name, "model_id": model_id,
            # 8 significant digits round-trip float32 closely enough and keep payloads small
            "encodings": [[float(f"{v:.8g}") for v in row] for row in encodings]}
    return json.dumps(body, separators=(",", ":")).encode()


def tombstone_payload(person_id: str, version: int, updated_at: float | None = None) -> bytes:
    """A revocation. Published retained so a device that is offline now still gets it."""
    body = {"schema": SCHEMA, "person_id": person_id, "version": int(version),
            "updated_at": iso_utc(updated_at), "deleted": True}
    return json.dumps(body, separators=(",", ":")).encode()
