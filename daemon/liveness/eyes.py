"""Eye openness from MediaPipe's face mesh refined by its iris model.

Pipeline (MediaPipe's iris-tracking graph, re-done in numpy + LiteRT):

1. ``face_landmark.tflite``: a 192x192 RGB crop in [0, 1] of the face box enlarged 1.5x
   and turned so the eyes are level -> 468 mesh points and a face-presence logit.
2. ``iris_landmark.tflite``, once per eye: a 64x64 RGB crop in [0, 1] centred between the
   eye's mesh corners (33/133 and 362/263), 2.3x their distance wide; the model knows
   only the image-left eye, so the other eye is mirrored -> 71 eye-contour points (the
   first 16 are the eyelids) and 5 iris points.
3. The eye aspect ratio of the refined eyelids.

Only the frame, the face box and the two eye points of the detector are used.

References: Y. Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video
on Mobile GPUs", CVPR Workshops 2019 (face mesh); A. Ablavatski et al., "Real-time
Pupil Tracking from Monocular Video for Digital Puppetry", 2020 (iris model);
T. Soukupová and J. Čech, "Real-Time Eye Blink Detection using Facial Landmarks",
CVWW 2016 (eye aspect ratio).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.faces.detect import as_bgr
from daemon.liveness.crops import Region, crop, eye_angle, face_region, to_image
from daemon.runtime import load_interpreter

MODELS = Path(__file__).resolve().parent.parent / "models"
MESH_PATH = MODELS / "face_landmark.tflite"
IRIS_PATH = MODELS / "iris_landmark.tflite"
MESH_SIZE, IRIS_SIZE = 192, 64
FACE_SCALE = 1.5   # MediaPipe FaceDetectionFrontDetectionToRoi
EYE_SCALE = 2.3    # MediaPipe IrisLandmarkLandmarksToRoi
# Mesh eye corners as (image-left corner, image-right corner): the subject's right eye
# (outer 33, inner 133) and left eye (inner 362, outer 263).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
# In the iris model's 71 contour points: 0 and 8 are the corners, 1-7 the lower lid and
# 9-15 the upper lid, both from the outer to the inner corner (MediaPipe's
# UpdateFaceLandmarksCalculator index table), so lower[i] faces upper[i].
CORNERS = (0, 8)
LOWER_LID = np.arange(1, 8)
UPPER_LID = np.arange(9, 16)
EAR_PAIRS = slice(1, 6)  # the five middle pairs; the two nearest the corners add only noise


def eye_aspect_ratio(contour: np.ndarray) -> float:
    """Mean eyelid gap over the corner-to-corner width, from the iris model's 71 contour
    points (x, y). Soukupová & Čech's EAR uses two lid pairs; the iris model's denser
    contour lets us average five."""
    contour = np.asarray(contour, np.float64)[:, :2]
    width = np.linalg.norm(contour[CORNERS[0]] - contour[CORNERS[1]])
    gaps = np.linalg.norm(contour[UPPER_LID[EAR_PAIRS]] - contour[LOWER_LID[EAR_PAIRS]], axis=1)
    return float(gaps.mean() / max(width, 1e-6))


def _sigmoid(x: float) -> float:
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))


@dataclass(frozen=True)
class EyeReading:
    """Eye openness of one face in one frame."""

    ear: float            # mean of both eyes
    ear_right: float      # the subject's right eye (image left)
    ear_left: float
    presence: float       # face mesh's face-presence probability
    mesh: np.ndarray      # (468, 2) mesh points in image pixels (for geometric cues)
    eyes: tuple[np.ndarray, np.ndarray]  # (71, 2) iris-model eye contours in image pixels, right then left


class EyeLandmarker:
    """Face mesh + iris models. Thread-unsafe: one instance per thread."""

    def __init__(self, mesh_path: str | Path = MESH_PATH, iris_path: str | Path = IRIS_PATH,
                 num_threads: int = 1):
        self._mesh = _Model(mesh_path, num_threads)
        self._iris = _Model(iris_path, num_threads)

    def read(self, image: np.ndarray, box, right_eye, left_eye) -> EyeReading:
        """Eye openness of the face in ``box`` whose detector eye points are given."""
        rgb = cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2RGB)
        region = face_region(box, right_eye, left_eye, FACE_SCALE)
        mesh_out, flag = self._mesh.run(_unit(crop(rgb, region, MESH_SIZE)))
        mesh = to_image(mesh_out.reshape(468, 3), region, MESH_SIZE)
        eyes = [self._eye_contour(rgb, mesh, corners, mirrored)
                for corners, mirrored in ((RIGHT_EYE_CORNERS, False), (LEFT_EYE_CORNERS, True))]
        ears = [eye_aspect_ratio(e) for e in eyes]
        return EyeReading(ear=float(np.mean(ears)), ear_right=ears[0], ear_left=ears[1],
                          presence=_sigmoid(float(flag.ravel()[0])), mesh=mesh.astype(np.float32),
                          eyes=(eyes[0].astype(np.float32), eyes[1].astype(np.float32)))

    def _eye_contour(self, rgb: np.ndarray, mesh: np.ndarray, corners, mirrored: bool) -> np.ndarray:
        """The iris model's 71 contour points of one eye, in image pixels."""
        a, b = mesh[corners[0]], mesh[corners[1]]
        region = Region(tuple((a + b) / 2), float(np.linalg.norm(b - a)) * EYE_SCALE, eye_angle(a, b))
        patch = crop(rgb, region, IRIS_SIZE)
        if mirrored:
            patch = patch[:, ::-1]
        contour, _iris = self._iris.run(_unit(patch))
        contour = contour.reshape(71, 3)[:, :2].astype(np.float64)
        if mirrored:  # back to the unmirrored crop (MediaPipe's FLIP_HORIZONTALLY on the landmarks)
            contour[:, 0] = IRIS_SIZE - contour[:, 0]
        return to_image(contour, region, IRIS_SIZE)


def _unit(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 [0, 1] batch of one (both models' input convention)."""
    return (np.ascontiguousarray(rgb, np.float32) / 255.0)[None]


class _Model:
    """One float TFLite model with one input and its outputs in model order."""

    def __init__(self, path: str | Path, num_threads: int):
        self._it = load_interpreter(path, num_threads=num_threads)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        self._outputs = [o["index"] for o in self._it.get_output_details()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self._it.set_tensor(self._input, x)
        self._it.invoke()
        return [self._it.get_tensor(i) for i in self._outputs]
