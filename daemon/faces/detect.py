"""Face detection: BlazeFace (short range) run with LiteRT, decoded in numpy.

The model is MediaPipe's ``face_detection_short_range.tflite`` (Apache-2.0, shipped
in the ``mediapipe`` wheel and copied into ``daemon/models``). It finds faces that
fill roughly 10-75 % of the (letterboxed) frame, which suits a door camera at
0.3-2 m, and it returns six landmarks per face that the aligner uses.

Reference: V. Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection
on Mobile GPUs", CVPR Workshops 2019.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from daemon.runtime import load_interpreter

DETECTOR_PATH = Path(__file__).resolve().parent.parent / "models" / "face_detector.tflite"
INPUT_SIZE = 128
# Landmark order produced by BlazeFace. "right"/"left" are the subject's own sides,
# so the subject's right eye appears on the image's left.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (6, 2) x, y in LANDMARK_NAMES order

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": {n: [round(float(x), 1), round(float(y), 1)]
                          for n, (x, y) in zip(LANDMARK_NAMES, self.landmarks)},
        }


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    """SSD anchor centres of the short-range model (896, 2), in [0, 1].

    MediaPipe's calculator options: 4 layers, strides (8, 16, 16, 16), fixed anchor
    size, two anchors per layer and cell; layers with the same stride share a grid.
    """
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = INPUT_SIZE // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grid = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def _letterbox(image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Pad to a square (keeping the aspect ratio) and resize to the model input."""
    h, w = image.shape[:2]
    side = max(h, w)
    pad_y, pad_x = (side - h) // 2, (side - w) // 2
    square = cv2.copyMakeBorder(image, pad_y, side - h - pad_y, pad_x, side - w - pad_x,
                                cv2.BORDER_CONSTANT, value=0)
    interp = cv2.INTER_AREA if side > INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=interp), side, pad_x, pad_y


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(boxes, keypoints, scores, iou_threshold):
    """MediaPipe's weighted NMS: overlapping detections are averaged by score,
    which steadies the landmarks the aligner depends on."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    kept = []
    remaining = np.ones(len(scores), dtype=bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = remaining & (_iou(boxes[i], boxes) >= iou_threshold)
        w = scores[overlap][:, None]
        kept.append((
            (boxes[overlap] * w).sum(0) / w.sum(),
            (keypoints[overlap] * w[:, :, None]).sum(0) / w.sum(),
            float(scores[i]),
        ))
        remaining &= ~overlap
    return kept


class FaceDetector:
    """BlazeFace short-range detector. Thread-unsafe: one instance per thread."""

    def __init__(self, model_path: str | Path = DETECTOR_PATH, min_score: float = 0.5,
                 iou_threshold: float = 0.3, num_threads: int = 1):
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self._interpreter = load_interpreter(model_path, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {o["name"]: o["index"] for o in self._interpreter.get_output_details()}
        self._regressors = outputs["regressors"]
        self._scores = outputs["classificators"]

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a grayscale (H, W) or BGR (H, W, 3) uint8 image, best first."""
        image = as_bgr(image)
        small, side, pad_x, pad_y = _letterbox(image)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32)
        self._interpreter.set_tensor(self._input, (rgb / 127.5 - 1.0)[None])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._regressors)[0]
        logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without overflow
        hit = scores >= self.min_score
        if not hit.any():
            return []
        raw, scores, anchors = raw[hit] / INPUT_SIZE, scores[hit], _anchors()[hit]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        faces = []
        for box, kps, score in _weighted_nms(boxes, keypoints, scores, self.iou_threshold):
            box = box * side - np.array([pad_x, pad_y, pad_x, pad_y])
            kps = kps * side - np.array([pad_x, pad_y])
            faces.append(Face(tuple(float(v) for v in box), score, kps.astype(np.float32)))
        return faces


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept grayscale, BGR or BGRA uint8 images; return 3-channel BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a grayscale or BGR image, got shape {image.shape}")
