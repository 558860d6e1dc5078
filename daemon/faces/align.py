"""Face alignment: the one path from an image to aligned crops.

:func:`prepare_faces` is the only function that turns an image or a frame into
aligned crops, the choice and order of faces included. The door loop, ``daemon.api``,
gallery seeding, the enrollment tool, training, evaluation and the benchmarks all call
it, so a training crop and a door crop of the same image are identical byte for byte.
If they drifted, accuracy would drop without any error.

Faces are warped onto the ArcFace 112x112 five-point template (Deng et al., "ArcFace:
Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019), the crop the
distillation teachers were trained on, so teacher and student see the same pixels.

Crops are **grayscale**: LFW is grayscale, IR door cameras give grayscale frames at
night, and one channel costs a third of the input compute. Colour images are converted
with OpenCV's BT.601 luma weights before alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from daemon.faces.detect import Face, FaceDetector

CROP_SIZE = 112
# Right eye, left eye, nose tip, right and left mouth corner (subject's sides) in a
# 112x112 crop: the template of InsightFace's and OpenCV SFace's alignment.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)
# Bump when anything here, or the detector, changes a crop: a model trained on other
# crops refuses to load (daemon.embeddings.base) instead of silently losing accuracy.
PREPROCESSING_VERSION = "yunet-arcface5-gray-v2"


@dataclass(frozen=True)
class AlignedFace:
    """A detected face and its aligned grayscale crop (size x size, uint8)."""

    face: Face
    crop: np.ndarray


class QualityGate(Protocol):
    """Rules a face out before (face_problem) or after (crop_problem) alignment."""

    def face_problem(self, face: Face) -> str | None: ...

    def crop_problem(self, crop: np.ndarray) -> str | None: ...


@dataclass
class PreparedFaces:
    """What prepare_faces found in one image."""

    detected: list[Face] = field(default_factory=list)          # every face, most prominent first
    aligned: list[AlignedFace] = field(default_factory=list)     # the ones that passed, in that order
    rejected: list[tuple[Face, str]] = field(default_factory=list)  # (face, quality reason code)

    @property
    def crops(self) -> list[np.ndarray]:
        return [a.crop for a in self.aligned]


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
    point patterns", TPAMI 1991 (what InsightFace's ``norm_crop`` computes through
    scikit-image). Pure numpy so the result is deterministic.
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


def alignment_matrix(face: Face, size: int = CROP_SIZE) -> np.ndarray:
    """The 2x3 transform that puts a face's five landmarks on the template."""
    return similarity_transform(face.landmarks, ARCFACE_TEMPLATE * (size / 112.0))


def align_face(gray: np.ndarray, face: Face, size: int = CROP_SIZE,
               matrix: np.ndarray | None = None) -> np.ndarray:
    """Warp a face onto the template in a size x size crop (matrix: a perturbed
    alignment_matrix, for training views)."""
    matrix = alignment_matrix(face, size) if matrix is None else matrix
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def prominence(face: Face, image_size: tuple[int, int]) -> float:
    """Box area, discounted by the distance of the face from the image centre (1 at the
    centre, 0 at a corner): the person at the door, not a larger face at the edge."""
    h, w = image_size
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    off = np.hypot(cx - w / 2, cy - h / 2) / max(np.hypot(w / 2, h / 2), 1e-9)
    return face.area * max(0.0, 1.0 - off)


def face_order(faces: list[Face], image_size: tuple[int, int]) -> list[Face]:
    """Most prominent face first (see prominence), then the more certain one."""
    return sorted(faces, key=lambda f: (-prominence(f, image_size), -f.score))


def prepare_faces(image: np.ndarray, detector: FaceDetector, size: int = CROP_SIZE,
                  max_faces: int | None = None, quality: QualityGate | None = None,
                  region: tuple[int, int, int, int] | None = None) -> PreparedFaces:
    """Detect the faces of an image and align the ``max_faces`` most prominent into crops.

    With a quality gate, faces it rules out are listed in ``rejected`` with its reason
    instead of being aligned. ``region`` (x0, y0, x1, y1) limits the search to a part of
    the image (a camera's tracked faces, daemon.faces.track); order and crops stay in
    image coordinates.
    """
    faces = detector.detect(image, region) if region else detector.detect(image)
    found = PreparedFaces(detected=face_order(faces, image.shape[:2]))
    gray = None
    for face in found.detected[:max_faces]:
        problem = quality.face_problem(face) if quality else None
        if problem is None:
            gray = to_gray(image) if gray is None else gray
            crop = align_face(gray, face, size)
            problem = quality.crop_problem(crop) if quality else None
        if problem is None:
            found.aligned.append(AlignedFace(face, crop))
        else:
            found.rejected.append((face, problem))
    return found


def prepare_face(image: np.ndarray, detector: FaceDetector, size: int = CROP_SIZE) -> AlignedFace | None:
    """The chosen (most prominent) face of an image, aligned; None when there is no face."""
    aligned = prepare_faces(image, detector, size, max_faces=1).aligned
    return aligned[0] if aligned else None


def normalize_crop(crop: np.ndarray) -> np.ndarray:
    """uint8 crop(s) (..., H, W) to the encoder's float input (..., H, W, 1) in [-1, 1].

    The one definition of the encoder's input scaling: training, export and runtime use it."""
    return (crop.astype(np.float32)[..., None] - 127.5) / 127.5


def blur_score(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a crop: low means blurred or featureless."""
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())
