"""Face alignment and crop normalisation: the one preprocessing path.

Training (``model_build``) and the runtime both call :func:`prepare_faces`, so a
training crop and a runtime crop of the same image are identical byte for byte.
If they drifted, accuracy would drop without any error.

Crops are **grayscale**: the LFW training set is grayscale, IR door cameras give
grayscale frames at night, and one channel costs a third of the input compute.
Colour frames are converted with OpenCV's BT.601 luma weights before alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from daemon.faces.detect import Face, FaceDetector

# Where the subject's right eye, left eye, nose tip and mouth centre land in the crop,
# as fractions of the crop side. Derived from the ArcFace 112x112 five-point template
# (mouth corners averaged into a centre) and then zoomed out by ZOOM so the crop keeps
# the whole jaw and brow, which BlazeFace's coarse landmarks need as slack.
_ARCFACE_112 = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [56.14, 92.28]]) / 112.0
ZOOM = 0.9
TEMPLATE = (_ARCFACE_112 - 0.5) * ZOOM + 0.5
PREPROCESSING_VERSION = "blazeface-sim4-gray-v1"


@dataclass(frozen=True)
class AlignedFace:
    """A detected face and its aligned grayscale crop (size x size, uint8)."""

    face: Face
    crop: np.ndarray


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale from a grayscale, BGR or BGRA image."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a grayscale or BGR image, got shape {image.shape}")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping src to dst (2x3).

    Umeyama, "Least-squares estimation of transformation parameters between two
    point patterns", TPAMI 1991. Pure numpy so the result is deterministic.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / max(s.var(0).sum(), 1e-12)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_face(gray: np.ndarray, face: Face, size: int) -> np.ndarray:
    """Warp a face so its eyes, nose and mouth sit on TEMPLATE in a size x size crop."""
    matrix = similarity_transform(face.landmarks[:4], TEMPLATE * size)
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def choose_face(faces: list[Face]) -> Face | None:
    """The face to use when an image holds several: the largest, i.e. the closest
    to the camera (and, in LFW, the subject in the centre)."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.width * f.height, f.score))


def prepare_faces(image: np.ndarray, detector: FaceDetector, size: int) -> list[AlignedFace]:
    """Detect every face in an image and align each into a crop; largest first."""
    gray = to_gray(image)
    faces = sorted(detector.detect(image), key=lambda f: -(f.width * f.height))
    return [AlignedFace(f, align_face(gray, f, size)) for f in faces]


def prepare_face(image: np.ndarray, detector: FaceDetector, size: int) -> AlignedFace | None:
    """The chosen face of an image, aligned; None when there is no face."""
    faces = prepare_faces(image, detector, size)
    return faces[0] if faces else None


def normalize_crop(crop: np.ndarray) -> np.ndarray:
    """uint8 crop(s) (..., H, W) to the encoder's float input (..., H, W, 1) in [-1, 1]."""
    return (crop.astype(np.float32)[..., None] - 127.5) / 127.5


def blur_score(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a crop: low means blurred or featureless."""
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())
