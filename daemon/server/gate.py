"""The enrollment photo gate: is this photo good enough to enroll someone from?

Stricter than the door's per-frame gate (daemon/quality.py): a frame that fails is just
skipped, but an enrollment photo becomes the reference every later frame is compared
with. Each rejection carries a stable reason code and a sentence a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from daemon.quality import LOW_SCORE, TOO_BLURRED, TOO_SMALL  # the door's gate uses the same words

if TYPE_CHECKING:  # the command line builds its parser from PhotoGate's defaults: no cv2 for that
    from daemon.faces.detect import Face

UNREADABLE = "unreadable"
NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
DUPLICATE = "duplicate"
INCONSISTENT = "inconsistent"


@dataclass(frozen=True)
class PhotoGate:
    """Thresholds for enrollment photos (in the photo's own pixels)."""

    min_detection_score: float = 0.75
    min_face_px: float = 80.0          # shorter side of the face box
    min_eye_distance_px: float = 30.0
    min_blur: float = 40.0             # variance of the Laplacian of the aligned crop
    # Another face counts (and the photo is refused) from this fraction of min_face_px up;
    # smaller ones are faces on a poster or far in the background.
    other_face_fraction: float = 0.5
    # A photo farther than this from the median of the person's other photos is taken for
    # someone else's (see find_outliers). Not the match threshold: that is calibrated for a
    # 0.1 % false accept rate, and many genuine photos of a person are farther apart than it.
    # It depends on the model's distances (`python -m bench consistency`): with the shipped
    # v2 encoder (stage 22), on 80 held-out LFW people with four photos each, 1.2 refused
    # 1.6 % of genuine photos and caught 79 of the 80 of someone else's; 1.25 refused 1.2 % and
    # let 3 through; 1.15 caught all for 2.8 % (stage 17: 1.9 % / 100 % at 1.2; stage 13:
    # 1.6 % / 100 % at 1.2); 1.0 refused 12 % of genuine ones (docs/security.md).
    consistency_threshold: float = 1.2

    def faces_problem(self, faces: list[Face]) -> tuple[str, str] | None:
        """(reason, explanation) if the detections rule the photo out, else None.
        ``faces`` must be sorted largest first."""
        if not faces:
            return NO_FACE, "no face found"
        others = [f for f in faces[1:] if min(f.width, f.height) >= self.other_face_fraction * self.min_face_px]
        if others:
            return SEVERAL_FACES, (f"{1 + len(others)} faces found; an enrollment photo must show exactly "
                                   "one person (crop it to one face)")
        face = faces[0]
        if face.score < self.min_detection_score:
            return LOW_SCORE, (f"face detection too uncertain: score {face.score:.2f} (at least "
                               f"{self.min_detection_score:.2f}; use a frontal, well-lit photo)")
        side = min(face.width, face.height)
        if side < self.min_face_px:
            return TOO_SMALL, f"face too small: {side:.0f} px (at least {self.min_face_px:.0f} px)"
        if face.eye_distance < self.min_eye_distance_px:
            return TOO_SMALL, (f"face too small or turned away: eyes {face.eye_distance:.0f} px apart "
                               f"(at least {self.min_eye_distance_px:.0f} px)")
        return None

    def crop_problem(self, crop: np.ndarray) -> tuple[str, str] | None:
        from daemon.faces.align import blur_score
        sharpness = blur_score(crop)
        if sharpness < self.min_blur:
            return TOO_BLURRED, f"face too blurred: sharpness {sharpness:.0f} (at least {self.min_blur:.0f})"
        return None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def find_outliers(embeddings: np.ndarray, threshold: float) -> dict[int, float]:
    """Photos that do not look like the person's other photos: index -> distance.

    With three or more photos, a photo is an outlier when its embedding is farther than
    ``threshold`` from the element-wise median of the *others*: one photo of someone else among several of the person is caught, and the
    median is not dragged by the outlier itself. With two photos there is no majority:
    if they are farther apart than the threshold, both are reported.
    """
    e = np.asarray(embeddings, np.float64)
    if len(e) < 2:
        return {}
    if len(e) == 2:
        d = float(np.linalg.norm(e[0] - e[1]))
        return {0: d, 1: d} if d > threshold else {}
    outliers = {}
    for i in range(len(e)):
        median = _unit(np.median(np.delete(e, i, axis=0), axis=0))
        d = float(np.linalg.norm(e[i] - median))
        if d > threshold:
            outliers[i] = d
    return outliers
