"""The quality gate between detection and embedding: faces too small, too blurred or
too uncertain to trust are skipped (and counted) rather than matched.

A small or blurred face still produces an embedding, just an unreliable one; matching
it would turn image noise into false accepts or flickering votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.faces.align import blur_score
from daemon.faces.detect import Face

# Stable reason codes: they are health-record keys and log words.
LOW_SCORE = "low_score"
TOO_SMALL = "too_small"
TOO_BLURRED = "too_blurred"
REASONS = (LOW_SCORE, TOO_SMALL, TOO_BLURRED)
DESCRIPTIONS = {LOW_SCORE: "face detection too uncertain", TOO_SMALL: "face too small",
                TOO_BLURRED: "face too blurred"}


@dataclass(frozen=True)
class QualityPolicy:
    min_detection_score: float = 0.6
    min_face_px: float = 40.0          # shorter side of the detection box, in frame pixels
    min_eye_distance_px: float = 15.0  # the crop puts the eyes ~32 px apart; far below that is upscaled mush
    min_blur: float = 25.0             # variance of the Laplacian of the aligned crop

    def face_problem(self, face: Face) -> str | None:
        """Why a detected face should be skipped before aligning it, or None."""
        if face.score < self.min_detection_score:
            return LOW_SCORE
        if min(face.width, face.height) < self.min_face_px or face.eye_distance < self.min_eye_distance_px:
            return TOO_SMALL
        return None

    def crop_problem(self, crop: np.ndarray) -> str | None:
        """Why an aligned crop should not be embedded, or None."""
        return TOO_BLURRED if blur_score(crop) < self.min_blur else None
