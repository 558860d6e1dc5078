"""The quality gate between detection and embedding: faces too small, too blurred or
too uncertain to trust are skipped (and counted) rather than matched.

A small or blurred face still produces an embedding, just an unreliable one; matching
it would turn image noise into false accepts or flickering votes. The thresholds and
their defaults are ``[quality]`` in daemon/config.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the reason codes are imported by the command line's parser: no cv2 for that
    from daemon.config import QualityConfig
    from daemon.faces.detect import Face

# Stable reason codes: they are health-record keys and log words (the enrollment photo
# gate, daemon/server/gate.py, uses them too).
LOW_SCORE = "low_score"
TOO_SMALL = "too_small"
TOO_BLURRED = "too_blurred"
DESCRIPTIONS = {LOW_SCORE: "face detection too uncertain", TOO_SMALL: "face too small",
                TOO_BLURRED: "face too blurred"}


@dataclass(frozen=True)
class QualityPolicy:
    min_detection_score: float
    min_face_px: float          # shorter side of the detection box, in frame pixels
    min_eye_distance_px: float  # the crop puts the eyes ~32 px apart; far below that is upscaled mush
    min_blur: float             # variance of the Laplacian of the aligned crop

    @classmethod
    def from_config(cls, q: QualityConfig) -> "QualityPolicy":
        return cls(min_detection_score=q.min_detection_score, min_face_px=q.min_face_px,
                   min_eye_distance_px=q.min_eye_distance_px, min_blur=q.min_blur)

    def face_problem(self, face: Face) -> str | None:
        """Why a detected face should be skipped before aligning it, or None."""
        if face.score < self.min_detection_score:
            return LOW_SCORE
        if min(face.width, face.height) < self.min_face_px or face.eye_distance < self.min_eye_distance_px:
            return TOO_SMALL
        return None

    def crop_problem(self, crop: np.ndarray) -> str | None:
        """Why an aligned crop should not be embedded, or None."""
        from daemon.faces.align import blur_score
        return TOO_BLURRED if blur_score(crop) < self.min_blur else None
