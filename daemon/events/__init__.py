"""Events the door emits, and where they go.

Payload of an unlock (one JSON object; schema in docs/mqtt.md)::

    {"event": "unlock", "event_id": "<uuid4>", "device_id": "front-door", "site": "home",
     "person_id": "alice", "name": "Alice Example", "distance": 0.612, "frames_voted": 3,
     "model_id": "enc-...", "ts": "2025-01-31T12:00:00.123Z"}

With liveness on, an unlock also carries which cues passed (``liveness.mode`` off: no
such key, as before)::

    "liveness": {"mode": "blink", "passed": ["blink"], "cues": {"blink": {"passed": true, "closed_ear": 0.09}}}

``ts`` is ISO 8601 UTC with milliseconds. ``event_id`` lets consumers drop the
duplicates that at-least-once delivery (QoS 1, the outbox) can produce. Every event has
a maximum age (``events.unlock_max_age_s``, ``events.max_age_s``): an older one is never
sent, and its MQTT 5 message expiry makes the broker drop it once that age is reached.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from typing import TextIO

from daemon.protocol.wire import iso_utc

UNLOCK = "unlock"
UNKNOWN_FACE = "unknown_face"


def unlock_event(*, device_id: str, site: str, person_id: str, name: str, distance: float,
                 frames_voted: int, model_id: str, ts: float, liveness: dict | None = None) -> dict:
    event = {"event": UNLOCK, "event_id": str(uuid.uuid4()), "device_id": device_id, "site": site,
             "person_id": person_id, "name": name, "distance": round(float(distance), 4),
             "frames_voted": int(frames_voted), "model_id": model_id, "ts": iso_utc(ts)}
    if liveness is not None:
        event["liveness"] = liveness
    return event


def unknown_face_event(*, device_id: str, site: str, distance: float, frames_voted: int,
                       model_id: str, ts: float) -> dict:
    """A face that matched nobody; ``distance`` is to the closest enrolled person (null if none)."""
    finite = distance != float("inf")
    return {"event": UNKNOWN_FACE, "event_id": str(uuid.uuid4()), "device_id": device_id, "site": site,
            "distance": round(float(distance), 4) if finite else None, "frames_voted": int(frames_voted),
            "model_id": model_id, "ts": iso_utc(ts)}


def event_time(event: dict) -> float:
    """The event's ``ts`` as epoch seconds."""
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


class StdoutSink:
    """One JSON object per line, flushed at once so a pipe reader sees each unlock immediately."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream

    def emit(self, event: dict) -> None:
        stream = self._stream or sys.stdout
        stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        stream.flush()
