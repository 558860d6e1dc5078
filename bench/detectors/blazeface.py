"""MediaPipe BlazeFace (short- and full-range) decoded in numpy, for the detector bench.

Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs",
CVPR Workshops 2019. The models ship in the ``mediapipe`` wheel
(``mediapipe/modules/face_detection/``, Apache-2.0). The anchor layouts are
MediaPipe's SsdAnchorsCalculator options for each graph:

- short-range: 128x128 input, 4 SSD layers with strides 8, 16, 16, 16 and two anchors
  per layer and cell (layers of one stride share a grid): 16*16*2 + 8*8*6 = 896 anchors;
- full-range: 192x192 input, one layer of stride 4, one anchor per cell: 48*48 = 2304.

Both regress (dx, dy, w, h) and six keypoints in input pixels relative to the anchor
centre, and merge overlapping detections with MediaPipe's weighted NMS. Both keep
detections scoring >= 0.5, the MediaPipe solution's default ``min_detection_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.faces.detect import as_bgr
from daemon.runtime import ModelError, load_interpreter


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: model file name, input side, SSD layers, score threshold."""

    name: str
    filename: str
    input_size: int
    layers: tuple[tuple[int, int], ...]  # (stride, anchors per cell), grids of equal stride merged
    min_score: float


SHORT_RANGE = BlazeFaceSpec("short-range", "face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), 0.5)
FULL_RANGE = BlazeFaceSpec("full-range", "face_detection_full_range_sparse.tflite", 192, ((4, 1),), 0.5)
IOU_THRESHOLD = 0.3


def anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the order of the model's outputs."""
    centres = []
    for stride, per_cell in spec.layers:
        n = spec.input_size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grid = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = IOU_THRESHOLD):
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their
    score-weighted mean, with the cluster's best score. Returns (boxes (K, 4), scores (K,))."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    remaining = np.ones(len(scores), bool)
    kept_boxes, kept_scores = [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (iou(boxes[i], boxes) >= iou_threshold)
        w = scores[cluster][:, None]
        kept_boxes.append((boxes[cluster] * w).sum(0) / w.sum())
        kept_scores.append(scores[i])
        remaining &= ~cluster
    return np.array(kept_boxes, np.float32).reshape(-1, 4), np.array(kept_scores, np.float32)


def decode(raw: np.ndarray, logits: np.ndarray, anchor_centres: np.ndarray, input_size: int,
           min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs (N, 16) and logits (N,) -> boxes (K, 4) x0,y0,x1,y1 in [0, 1] and scores."""
    scores = 0.5 * (1.0 + np.tanh(0.5 * np.clip(logits, -100, 100)))  # sigmoid without overflow
    hit = scores >= min_score
    if not hit.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    reg = raw[hit, :4] / input_size
    centre = reg[:, :2] + anchor_centres[hit]
    half = reg[:, 2:4] / 2
    return weighted_nms(np.concatenate([centre - half, centre + half], axis=1), scores[hit])


class BlazeFaceDetector:
    """A BlazeFace .tflite on a letterboxed (padded to square) image; boxes in image pixels."""

    def __init__(self, model_path: Path, spec: BlazeFaceSpec, num_threads: int = 1):
        self.spec = spec
        self._it = load_interpreter(model_path, num_threads=num_threads)
        self._it.allocate_tensors()
        inp = self._it.get_input_details()[0]
        if tuple(inp["shape"][1:3]) != (spec.input_size, spec.input_size):
            raise ModelError(f"{model_path}: input {tuple(inp['shape'])} is not {spec.name}'s "
                             f"{spec.input_size}x{spec.input_size}")
        self._input = inp["index"]
        outputs = sorted(self._it.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores, self._regressors = outputs[0]["index"], outputs[1]["index"]  # (1,N,1), (1,N,16)
        self._anchors = anchors(spec)
        n = int(outputs[0]["shape"][1])
        if n != len(self._anchors):
            raise ModelError(f"{model_path}: {n} outputs but {spec.name} has {len(self._anchors)} anchors")

    def detect(self, image: np.ndarray) -> np.ndarray:
        bgr = as_bgr(image)
        h, w = bgr.shape[:2]
        side = max(h, w)
        pad_y, pad_x = (side - h) // 2, (side - w) // 2
        square = cv2.copyMakeBorder(bgr, pad_y, side - h - pad_y, pad_x, side - w - pad_x,
                                    cv2.BORDER_CONSTANT, value=0)
        size = self.spec.input_size
        small = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32)
        self._it.set_tensor(self._input, (rgb / 127.5 - 1.0)[None])
        self._it.invoke()
        boxes, _ = decode(self._it.get_tensor(self._regressors)[0], self._it.get_tensor(self._scores)[0, :, 0],
                          self._anchors, size, self.spec.min_score)
        return boxes * side - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)
