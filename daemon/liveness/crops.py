"""Square, rotated crops around a face or an eye, and mapping points back.

Every liveness model looks at a square region whose horizontal axis follows the line
between the eyes (MediaPipe's convention, which its face-mesh and iris models were
trained with). The region is described only by a centre, a side and an angle, so
any detector that gives a box and the two eye points can feed it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Region:
    """A square region of an image: centre (x, y), side in pixels, and the angle (radians)
    of its horizontal axis in the image."""

    center: tuple[float, float]
    side: float
    angle: float

    def matrix(self, size: int) -> np.ndarray:
        """2x3 affine that maps image pixels into a size x size crop of this region."""
        scale = size / max(self.side, 1e-6)
        c, s = np.cos(self.angle) * scale, np.sin(self.angle) * scale
        a = np.array([[c, s], [-s, c]])  # rotation by -angle, then scale
        t = np.array([size / 2.0, size / 2.0]) - a @ np.asarray(self.center, np.float64)
        return np.hstack([a, t[:, None]])


def eye_angle(right_eye, left_eye) -> float:
    """Angle of the line from the subject's right eye (image left) to the left eye."""
    d = np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64)
    return float(np.arctan2(d[1], d[0]))


def face_region(box, right_eye, left_eye, scale: float) -> Region:
    """The face box's centre, its longer side times ``scale``, turned so the eyes are level
    (MediaPipe's FaceDetectionFrontDetectionToRoi uses scale 1.5)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * scale
    return Region(((x0 + x1) / 2, (y0 + y1) / 2), side, eye_angle(right_eye, left_eye))


def crop(image: np.ndarray, region: Region, size: int) -> np.ndarray:
    """The region resampled to size x size; outside the frame the border is replicated,
    as MediaPipe's ImageCroppingCalculator does."""
    return cv2.warpAffine(image, region.matrix(size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def to_image(points: np.ndarray, region: Region, size: int) -> np.ndarray:
    """Points (N, 2) in crop pixels back to image pixels."""
    inverse = cv2.invertAffineTransform(region.matrix(size))
    pts = np.asarray(points, np.float64)[:, :2]
    return pts @ inverse[:, :2].T + inverse[:, 2]
