"""The detectors under test behind one interface: ``detect(image) -> boxes (N, 4)``
x0, y0, x1, y1 in the image's pixels, for a grayscale or BGR uint8 image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from bench.detectors.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFaceDetector
from bench.model_files import BLAZEFACE_DIR, YUNET_ONNX, Located, locate
from daemon.faces.detect import GLANCE_SIDE, MAX_DETECT_SIDE, FaceDetector, as_bgr

# The daemon's thresholds (daemon.faces.detect.FaceDetector), used for every YuNet
# runtime so that only the runtime and the input resolution differ.
YUNET_SCORE, YUNET_NMS = 0.6, 0.3


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> np.ndarray: ...


@dataclass
class Candidate:
    """A named detector, or why it is skipped."""

    name: str
    description: str
    model: Located
    detector: Detector | None = None
    skipped: str | None = None


class YunetTflite:
    """The door's detector: YuNet rebuilt as TFLite, run by LiteRT (daemon.faces.detect),
    on the image shrunk to at most ``max_side`` (GLANCE_SIDE: the door's glance)."""

    def __init__(self, path: Path, max_side: int = MAX_DETECT_SIDE):
        self.max_side = max_side
        self._det = FaceDetector(path, min_score=YUNET_SCORE, iou_threshold=YUNET_NMS, num_threads=1)

    def detect(self, image: np.ndarray) -> np.ndarray:
        faces = self._det.detect(image, max_side=self.max_side)
        return np.array([f.box for f in faces], np.float32).reshape(-1, 4)


class YunetOpenCV:
    """``cv2.FaceDetectorYN`` on the ONNX weights, on the image scaled by ``scale``
    (0.5: a 640x480 frame is detected at 320x240; the resize is part of the time)."""

    def __init__(self, path: Path, scale: float = 1.0):
        self.scale = scale
        self._det = cv2.FaceDetectorYN.create(str(path), "", (320, 320), YUNET_SCORE, YUNET_NMS, 5000)
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> np.ndarray:
        bgr = as_bgr(image)
        if self.scale != 1.0:
            bgr = cv2.resize(bgr, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._det.setInputSize(size)
            self._size = size
        _, faces = self._det.detect(bgr)
        if faces is None:
            return np.zeros((0, 4), np.float32)
        xywh = faces[:, :4] / self.scale
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:4]], axis=1).astype(np.float32)


def _candidate(name: str, description: str, model: Located, make: Callable[[Path], Detector]) -> Candidate:
    if model.path is None:
        return Candidate(name, description, model, skipped=model.source)
    try:
        return Candidate(name, description, model, make(model.path))
    except Exception as exc:  # noqa: BLE001  (any loader failure skips that candidate, with its reason)
        return Candidate(name, description, model, skipped=f"{model.path}: cannot load ({exc})")


def build_candidates(yunet_tflite: Path, yunet_onnx: Path | None, mediapipe: Path | None,
                     blazeface_short: Path | None = None, blazeface_full: Path | None = None) -> list[Candidate]:
    """Every candidate; one whose model file is not given or found is marked skipped."""
    onnx = locate(yunet_onnx, YUNET_ONNX, "--yunet-onnx")
    short = locate(blazeface_short or mediapipe, f"{BLAZEFACE_DIR}/{SHORT_RANGE.filename}",
                   "--blazeface-short" if blazeface_short else "--mediapipe")
    full = locate(blazeface_full or mediapipe, f"{BLAZEFACE_DIR}/{FULL_RANGE.filename}",
                  "--blazeface-full" if blazeface_full else "--mediapipe")
    tflite = Located(yunet_tflite, str(yunet_tflite)) if Path(yunet_tflite).is_file() else \
        Located(None, f"--yunet-tflite {yunet_tflite}: no such file")
    return [
        _candidate("YuNet TFLite (facegate)", f"LiteRT/XNNPACK, whole frame at {MAX_DETECT_SIDE} px", tflite,
                   YunetTflite),
        _candidate("YuNet TFLite glance (facegate)", f"the door's glance: the frame at {GLANCE_SIDE} px",
                   tflite, lambda p: YunetTflite(p, GLANCE_SIDE)),
        _candidate("YuNet cv2 640×480", "cv2.FaceDetectorYN, full frame", onnx, YunetOpenCV),
        _candidate("YuNet cv2 320×240", "cv2.FaceDetectorYN, frame downscaled ½ first", onnx,
                   lambda p: YunetOpenCV(p, 0.5)),
        _candidate("BlazeFace short-range", "LiteRT, 128×128 letterbox", short,
                   lambda p: BlazeFaceDetector(p, SHORT_RANGE)),
        _candidate("BlazeFace full-range", "LiteRT, 192×192 letterbox", full,
                   lambda p: BlazeFaceDetector(p, FULL_RANGE)),
    ]
