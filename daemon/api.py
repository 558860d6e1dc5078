"""The face API in a handful of plain functions, in the order data flows:

    image -> face_locations -> face_crops -> face_encodings -> face_distance

Models load lazily on first use (never at import) and are cached per process.
Images are numpy uint8 arrays, grayscale (H, W) or BGR (H, W, 3) as OpenCV reads
them, or paths to image files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from daemon.embeddings import Encoder, load_encoder
from daemon.faces.align import AlignedFace, prepare_faces
from daemon.faces.detect import Face, FaceDetector
from daemon.images import load_image


@lru_cache(maxsize=1)
def default_detector() -> FaceDetector:
    return FaceDetector()


@lru_cache(maxsize=4)
def default_encoder(model_path: str | None = None, backend: str = "cpu") -> Encoder:
    return load_encoder(model_path, backend)


def _as_image(image) -> np.ndarray:
    return load_image(image) if isinstance(image, (str, Path)) else image


def face_locations(image, detector: FaceDetector | None = None) -> list[Face]:
    """Faces in an image (boxes, scores, landmarks), in the detector's order."""
    return (detector or default_detector()).detect(_as_image(image))


def face_crops(image, size: int | None = None, encoder: Encoder | None = None,
               detector: FaceDetector | None = None) -> list[AlignedFace]:
    """Every face aligned into the encoder's input crop, most prominent face first."""
    size = size or (encoder or default_encoder()).info.input_size
    return prepare_faces(_as_image(image), detector or default_detector(), size).aligned


def face_encodings(image, encoder: Encoder | None = None,
                   detector: FaceDetector | None = None) -> list[np.ndarray]:
    """One unit embedding per face, most prominent face first."""
    encoder = encoder or default_encoder()
    crops = face_crops(image, encoder.info.input_size, encoder, detector)
    return list(encoder.embed(np.stack([c.crop for c in crops]))) if crops else []


def face_distance(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Euclidean distances (N,) between known embeddings (N, D) and one query (D,)."""
    known = np.asarray(known, np.float32).reshape(-1, np.shape(query)[-1])
    return np.linalg.norm(known - np.asarray(query, np.float32), axis=1)


@dataclass
class ImageEmbedding:
    """Every face found in an image and the embedding of the chosen (most prominent) one."""

    faces: list[Face]
    embedding: np.ndarray | None  # None when there is no face

    def to_dict(self) -> dict:
        return {"faces": [f.to_dict() for f in self.faces], "chosen": 0 if self.faces else None,
                "embedding": None if self.embedding is None
                else [round(float(v), 6) for v in self.embedding]}


def embed_image(image, encoder: Encoder | None = None,
                detector: FaceDetector | None = None) -> ImageEmbedding:
    """Detect all faces in an image and embed the chosen one (the most prominent)."""
    encoder = encoder or default_encoder()
    crops = face_crops(image, encoder.info.input_size, encoder, detector)
    if not crops:
        return ImageEmbedding([], None)
    return ImageEmbedding([c.face for c in crops], encoder.embed(crops[0].crop)[0])
