"""Face detection: YuNet run with LiteRT, decoded in numpy.

YuNet (Wu, Feng, Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine
Intelligence Research 2023; MIT, OpenCV model zoo ``face_detection_yunet_2023mar``)
finds faces from about 10 px up and gives five landmarks per face: both eyes, the
nose tip and both mouth corners, the points of the ArcFace alignment template.

OpenCV's ``cv2.FaceDetectorYN`` runs the same weights, but at 640x480 it takes about
twice as long on one core as LiteRT's XNNPACK, so ``model-build convert-detector``
rebuilds the ONNX graph in Keras and ships it as ``face_detector.tflite``. The
decoding below follows OpenCV's ``FaceDetectorYN::postProcess`` and is tested
against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.runtime import ModelError, load_interpreter

DETECTOR_PATH = Path(__file__).resolve().parent.parent / "models" / "face_detector.tflite"
# Subject's own sides: the subject's right eye is on the image's left.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth")
STRIDES = (8, 16, 32)
# Larger images are shrunk for detection (landmarks are mapped back, and alignment
# samples the full-resolution image). A 640x480 door frame is searched at 480x360, 0.56x
# the pixels: a 40 px face becomes 30 px, which YuNet still finds 92 % of the time (all
# from 60 px; bench detectors).
# Every training image is smaller than this, so training crops take the same single pass.
# The shrink is bilinear: INTER_AREA took 2.0 ms of a 640x480 frame on one core, bilinear
# 0.4 ms, and found as many 40 px faces (landmarks moved 0.2 % of the face width).
MAX_DETECT_SIDE = 480
# A tracked face's region (FaceTracker) is searched at this size: 192x192 is a fifth of the
# 480x384 a 640x480 frame is padded to.
REGION_SIDE = 192
# A door frame with nobody tracked is first glanced at this size (FaceTracker), 320x256
# padded: 0.44x the pixels of the whole-frame search, 1.7 vs 3.7 ms a 640x480 frame on one
# core. It finds as many faces as the whole-frame search from 100 px, 94 % of 60 px ones
# and 35 % of 40 px ones (bench detectors); the faces it finds are then searched for in
# their region, so their crops come from the same searches as a tracked face's.
GLANCE_SIDE = 320
MAX_INTERPRETERS = 4  # padded input sizes kept loaded (frame, glance, region, one more); then the oldest is resized


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (5, 2) x, y in LANDMARK_NAMES order

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return self.width * self.height

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


def decode(outputs: dict[str, np.ndarray], min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YuNet's per-stride maps -> (boxes x0,y0,x1,y1 (N,4), scores (N,), landmarks (N,5,2)).

    Anchor-free: every cell of the stride-s grid predicts a face centred at
    (col + dx, row + dy) * s of size exp(dw, dh) * s, and landmarks at (col + kx, row + ky) * s.
    """
    boxes, scores, points = [], [], []
    for s in STRIDES:
        cls, obj = outputs[f"cls_{s}"][0, ..., 0], outputs[f"obj_{s}"][0, ..., 0]
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        rows, cols = np.nonzero(score >= min_score)
        if not len(rows):
            continue
        grid = np.stack([cols, rows], axis=1).astype(np.float32)
        bbox = outputs[f"bbox_{s}"][0, rows, cols]
        centre = (grid + bbox[:, :2]) * s
        half = np.exp(bbox[:, 2:]) * s / 2
        boxes.append(np.concatenate([centre - half, centre + half], axis=1))
        points.append((outputs[f"kps_{s}"][0, rows, cols].reshape(-1, 5, 2) + grid[:, None]) * s)
        scores.append(score[rows, cols])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression (as OpenCV's NMSBoxes): indices kept, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    while order:
        i = order.pop(0)
        kept.append(i)
        if not order:
            break
        rest = np.asarray(order)
        x0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = [j for j, o in zip(order, iou) if o <= iou_threshold]
    return kept


class FaceDetector:
    """YuNet face detector. Thread-unsafe: one instance per thread.

    The model takes any input size that is a multiple of 32. Each padded size gets its own
    interpreter, kept for the next image of that size (a camera's frames and its tracked
    region: two), as resizing one interpreter back and forth reallocates it every time.
    """

    def __init__(self, model_path: str | Path = DETECTOR_PATH, min_score: float = 0.6,
                 iou_threshold: float = 0.3, num_threads: int = 1):
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self._model_path, self._num_threads = model_path, num_threads
        self._runners: dict[tuple[int, ...], tuple] = {}
        self._spare = None  # an interpreter to resize for the next new size, before loading one
        # Loaded and checked now, so a missing or broken model fails at start; the first
        # image's size then reuses it.
        self._spare = self._runner((1, 320, 320, 3))[0]
        self._runners.clear()

    def _runner(self, shape: tuple[int, ...]) -> tuple:
        """(interpreter, input index, {output name: index}) for one padded input shape."""
        runner = self._runners.pop(shape, None)
        if runner is None:
            if self._spare is None and len(self._runners) >= MAX_INTERPRETERS:
                self._spare = self._runners.pop(next(iter(self._runners)))[0]  # photos of many sizes: the oldest
            if self._spare is not None:
                it, self._spare = self._spare, None
                it.resize_tensor_input(it.get_input_details()[0]["index"], shape)
                it.allocate_tensors()
            else:
                it = load_interpreter(self._model_path, num_threads=self._num_threads, input_shape=shape)
            outputs = {name: d["index"] for name, d in it.get_signature_runner().get_output_details().items()}
            missing = {f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES} - set(outputs)
            if missing:
                raise ModelError(f"face detector model lacks outputs {sorted(missing)}")
            runner = (it, it.get_input_details()[0]["index"], outputs)
        self._runners[shape] = runner  # most recently used last
        return runner

    def detect(self, image: np.ndarray, region: tuple[int, int, int, int] | None = None,
               max_side: int = MAX_DETECT_SIDE) -> list[Face]:
        """Faces in a grayscale (H, W) or BGR (H, W, 3) uint8 image, best score first.

        ``region`` (x0, y0, x1, y1): search only there (a tracked face; see FaceTracker),
        at most REGION_SIDE pixels a side; faces come back in image coordinates.
        ``max_side``: a larger image is shrunk to this for the search (GLANCE_SIDE: a
        cheap look at a door frame whose faces are then searched in their region)."""
        if region is None:
            return self._search(as_bgr(image), max_side, None)
        x0, y0, x1, y1 = region
        h, w = image.shape[:2]
        faces = self._search(as_bgr(image[y0:y1, x0:x1]), REGION_SIDE, REGION_SIDE)
        offset = np.array([x0, y0], np.float32)
        faces = [Face((f.box[0] + x0, f.box[1] + y0, f.box[2] + x0, f.box[3] + y0), f.score,
                      f.landmarks + offset) for f in faces]

        def clear_of_the_cut(f: Face) -> bool:
            # The region's edge cuts through whatever lies across it, and YuNet can take a
            # cut object for a face; a face across the edge is left to the whole-frame search.
            return ((x0 == 0 or f.box[0] > x0 + 1) and (y0 == 0 or f.box[1] > y0 + 1)
                    and (x1 == w or f.box[2] < x1 - 1) and (y1 == h or f.box[3] < y1 - 1))
        return [f for f in faces if clear_of_the_cut(f)]

    def _search(self, image: np.ndarray, max_side: int, pad_to: int | None) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale < 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
        sh, sw = image.shape[:2]
        shape = (1, pad_to, pad_to, 3) if pad_to else (1, -(-sh // 32) * 32, -(-sw // 32) * 32, 3)
        it, index, output_index = self._runner(shape)
        # Written straight into the interpreter's input (set_tensor's copy cost 0.4 ms a
        # frame); the view must be gone before invoke. YuNet takes BGR 0..255, zero-padded
        # right and bottom; the padding is cleared every time, as the memory is reused.
        x = it.tensor(index)()
        x[0, :sh, :sw] = image
        x[0, sh:], x[0, :sh, sw:] = 0, 0
        del x
        it.invoke()
        outputs = {name: it.get_tensor(i) for name, i in output_index.items()}
        boxes, scores, points = decode(outputs, self.min_score)
        faces = []
        for i in nms(boxes, scores, self.iou_threshold):
            faces.append(Face(tuple(float(v) for v in boxes[i] / scale), float(scores[i]),
                              (points[i] / scale).astype(np.float32)))
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
