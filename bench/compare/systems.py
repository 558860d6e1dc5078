"""The systems under test behind one small interface.

Each system embeds the chosen face of an image for the accuracy run (``embed_image``),
and runs one camera frame through its whole pipeline for the speed run (``run_frame``),
timing each stage. ``dim`` is its embedding size and ``files`` the model files it loads.
The optional YuNet peers live in bench/compare/peers.py.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.config import QualityConfig
from daemon.embeddings import load_encoder, load_model_info
from daemon.embeddings.litert import LiteRtEncoder, open_encoder
from daemon.faces.align import prepare_face, prepare_faces
from daemon.faces.detect import DETECTOR_PATH, FaceDetector
from daemon.faces.track import FaceTracker
from daemon.matching import GalleryIndex, Matcher
from daemon.protocol.person import PersonRecord
from daemon.quality import QualityPolicy

FACE_RECOGNITION = "face_recognition"


@dataclass
class FrameTiming:
    """Seconds spent per stage on one frame (stages not reached are absent)."""

    stages: dict[str, float]
    total: float
    found: bool


def float_model_path(int8_path: Path) -> Path:
    """The float export sits next to the int8 model."""
    return Path(int8_path).with_name("encoder_float.tflite")


def load_float_encoder(int8_path: Path, num_threads: int = 1) -> LiteRtEncoder:
    """The float model run like the int8 one, described by the int8 model's metadata."""
    path = float_model_path(int8_path)
    info = dataclasses.replace(load_model_info(int8_path), path=path)
    return open_encoder(path, info, num_threads=num_threads)


def random_unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def facegate_matcher(gallery: np.ndarray, threshold: float, margin: float = 0.05) -> Matcher:
    """The daemon's matcher over a gallery of one encoding per person (built through the
    daemon's own records and index, so the benchmark follows its memory layout)."""
    gallery = np.asarray(gallery, np.float32)
    records = [PersonRecord(f"p{i}", 1, "bench", encodings=gallery[i:i + 1]) for i in range(len(gallery))]
    return Matcher(GalleryIndex.build(records, "bench", gallery.shape[1]), threshold, margin)


class FacegateSystem:
    """The door's own path: ``prepare_faces`` (YuNet TFLite, prominence order, the
    daemon's default quality gate, ArcFace five-point alignment to a grayscale crop),
    then the LiteRT encoder (crop and mirror when model.json says ``flip_average``),
    then the daemon's Matcher; all on one thread.

    Stages: ``faces`` = detect + quality + align, ``embed``, ``match``."""

    stages = ("faces", "embed", "match")

    def __init__(self, name: str, encoder, detector: FaceDetector, files: dict[str, Path] | None = None,
                 quality: QualityPolicy | None = None):
        self.name, self.encoder, self.detector = name, encoder, detector
        self.size, self.dim = encoder.info.input_size, encoder.info.embedding_size
        self.files = files or {}
        self.quality = QualityPolicy.from_config(QualityConfig()) if quality is None else quality

    @classmethod
    def load(cls, name: str, model_path: Path, use_float: bool = False) -> "FacegateSystem":
        encoder = load_float_encoder(model_path) if use_float else load_encoder(model_path, num_threads=1)
        files = {"encoder": float_model_path(model_path) if use_float else Path(model_path),
                 "detector": DETECTOR_PATH}
        return cls(name, encoder, FaceDetector(DETECTOR_PATH, num_threads=1), files)

    def embed_image(self, image: np.ndarray) -> np.ndarray | None:
        """The most prominent face, no quality gate (as evaluation and enrolment photos)."""
        aligned = prepare_face(image, self.detector, self.size)
        return None if aligned is None else self.encoder.embed(aligned.crop)[0]

    def matcher(self, gallery: np.ndarray) -> Matcher:
        return facegate_matcher(gallery, self.encoder.info.threshold)

    def run_frame(self, frame: np.ndarray, matcher: Matcher, tracker: FaceTracker | None = None) -> FrameTiming:
        """One frame, searched whole, or as ``tracker`` says (see DoorFacegate)."""
        t0 = time.perf_counter()
        prepare = prepare_faces if tracker is None else tracker.prepare
        found = prepare(frame, self.detector, size=self.size, max_faces=1, quality=self.quality)
        t1 = time.perf_counter()
        if not found.aligned:
            return FrameTiming({"faces": t1 - t0}, t1 - t0, False)
        embedding = self.encoder.embed(found.aligned[0].crop)[0]
        t2 = time.perf_counter()
        matcher.match(embedding)
        t3 = time.perf_counter()
        return FrameTiming({"faces": t1 - t0, "embed": t2 - t1, "match": t3 - t2}, t3 - t0, True)


class DoorFacegate:
    """facegate's speed as the door searches its frames (daemon.faces.track). Speed only:
    the crops and accuracy are the base system's.

    - ``first``: the door's first sight of a face (a fresh tracker: a glance at the whole
      frame shrunk to 320 px, then a search around the faces it shows);
    - ``tracking``: the face was in the previous frame, so only its region is searched
      (each frame is first run untimed as "the previous frame");
    - ``whole``: the whole frame searched, as a photo is (and the door every 10th frame)."""

    SUFFIX = {"first": "", "tracking": ", tracking", "whole": ", whole frame"}

    def __init__(self, base: FacegateSystem, mode: str = "first"):
        self.base, self.mode = base, mode
        self.name, self.stages, self.dim = base.name + self.SUFFIX[mode], base.stages, base.dim

    def matcher(self, gallery: np.ndarray) -> Matcher:
        return self.base.matcher(gallery)

    def run_frame(self, frame: np.ndarray, matcher: Matcher) -> FrameTiming:
        if self.mode == "whole":
            return self.base.run_frame(frame, matcher)
        tracker = FaceTracker()
        if self.mode == "tracking":
            self.base.run_frame(frame, matcher, tracker)
        return self.base.run_frame(frame, matcher, tracker)


def import_face_recognition():
    """``(module, None)`` or ``(None, reason)``: face_recognition is an optional peer."""
    try:
        import face_recognition_models  # noqa: F401  (face_recognition quit()s without it)
        import face_recognition
    except (ImportError, SystemExit) as exc:
        return None, (f"face_recognition is not importable ({exc!r}); install it with "
                      "`pip install dlib-bin face-recognition-models` and "
                      "`pip install --no-deps face_recognition`")
    return face_recognition, None


def largest_location(locations: list[tuple[int, int, int, int]]):
    """The largest (top, right, bottom, left) box: the same choice as facegate's."""
    return max(locations, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))


def to_rgb(image: np.ndarray) -> np.ndarray:
    """RGB from grayscale or BGR (face_recognition expects RGB arrays)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FaceRecognitionSystem:
    """ageitgey's face_recognition with its defaults: HOG detector (upsampled once),
    5-point landmarks + chip alignment, dlib ResNet (99.38 % on LFW), distance 0.6."""

    stages = ("detect", "encode", "match")
    tolerance = 0.6
    dim = 128

    def __init__(self, module, upsample: int = 1, name: str = FACE_RECOGNITION):
        self.fr, self.upsample, self.name = module, upsample, name
        import face_recognition_models as frm

        self.files = {"encoder": Path(frm.face_recognition_model_location()),
                      "landmarks": Path(frm.pose_predictor_five_point_model_location())}

    def embed_image(self, image: np.ndarray) -> np.ndarray | None:
        rgb = to_rgb(image)
        locations = self.fr.face_locations(rgb, number_of_times_to_upsample=self.upsample)
        if not locations:
            return None
        return self.fr.face_encodings(rgb, [largest_location(locations)])[0]

    def matcher(self, gallery: np.ndarray) -> np.ndarray:
        # face_recognition users keep lists of float64 encodings; np.array makes them (N, 128).
        return np.asarray(gallery, np.float64)

    def match(self, gallery: np.ndarray, encoding: np.ndarray) -> tuple[int, bool]:
        distances = self.fr.face_distance(gallery, encoding)
        best = int(np.argmin(distances))
        return best, bool(distances[best] <= self.tolerance)

    def run_frame(self, frame: np.ndarray, gallery: np.ndarray) -> FrameTiming:
        t0 = time.perf_counter()
        rgb = to_rgb(frame)
        locations = self.fr.face_locations(rgb, number_of_times_to_upsample=self.upsample)
        t1 = time.perf_counter()
        if not locations:
            return FrameTiming({"detect": t1 - t0}, t1 - t0, False)
        # face_encodings with a known box = 5-point landmarks + aligned chip + ResNet.
        encoding = self.fr.face_encodings(rgb, [largest_location(locations)])[0]
        t2 = time.perf_counter()
        self.match(gallery, encoding)
        t3 = time.perf_counter()
        return FrameTiming({"detect": t1 - t0, "encode": t2 - t1, "match": t3 - t2}, t3 - t0, True)
