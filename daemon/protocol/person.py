"""The person record: what the gallery stores and the enrollment sync carries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daemon.protocol.topics import valid_name

MAX_ENCODINGS = 64          # per person; a handful of photos is already plenty
MAX_NAME_CHARS = 128


def valid_person_id(person_id: object) -> bool:
    """Ids end up in MQTT topics and log lines: the rule of a topic level."""
    return valid_name(person_id)


@dataclass(frozen=True, eq=False)
class PersonRecord:
    """One enrolled person, or a tombstone that revokes one.

    ``version`` only grows: a record replaces the stored one only when its version is
    strictly greater, so replayed or reordered messages can never roll a person back.
    A tombstone (``deleted=True``, no encodings) is kept for the same reason: a stale
    upsert arriving later must not resurrect a revoked person.
    """

    person_id: str
    version: int
    model_id: str = ""
    name: str = ""
    encodings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    updated_at: float = 0.0     # epoch seconds (UTC), when the server made this version
    deleted: bool = False

    @classmethod
    def tombstone(cls, person_id: str, version: int, updated_at: float = 0.0) -> "PersonRecord":
        return cls(person_id=person_id, version=version, updated_at=updated_at, deleted=True)

    @property
    def embedding_size(self) -> int:
        return int(self.encodings.shape[1]) if self.encodings.ndim == 2 else 0

    def __repr__(self) -> str:  # never dump k x D floats into a log line
        kind = "tombstone" if self.deleted else f"{len(self.encodings)} encoding(s), model {self.model_id}"
        return f"PersonRecord({self.person_id!r} v{self.version}, {kind})"
