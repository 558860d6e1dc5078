"""The one interface every liveness cue implements.

A cue has two halves:

- ``measure(image, face)``: one number from one frame for one face (the eye aspect
  ratio, a live probability), or None when the frame gives no usable reading;
- ``judge(readings)``: a verdict from the person's readings inside the liveness
  window, as a :class:`CueResult`. Pure: the policy owns the readings and the clock.

Cues only see the frame, the face box and the two eye points (:class:`FacePoints`), so
they work with any detector whose landmarks start with the two eyes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class FacePoints:
    """What a cue may use of a detected face."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    right_eye: np.ndarray                   # the subject's right eye (image left), (x, y)
    left_eye: np.ndarray

    @classmethod
    def of(cls, face) -> "FacePoints":
        """From a detector's Face: eyes are landmark rows 0 and 1 in every detector we use."""
        landmarks = np.asarray(face.landmarks, np.float64)
        return cls(tuple(float(v) for v in face.box), landmarks[0], landmarks[1])


@dataclass(frozen=True)
class Reading:
    t: float      # monotonic seconds
    value: float


@dataclass(frozen=True)
class CueResult:
    passed: bool
    why: str                                  # one short phrase for logs
    detail: dict = field(default_factory=dict)  # numbers for the unlock event


class Cue(Protocol):
    name: str

    def measure(self, image: np.ndarray, face: FacePoints) -> float | None: ...

    def judge(self, readings: list[Reading]) -> CueResult: ...
