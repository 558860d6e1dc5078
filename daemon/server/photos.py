"""Enrollment photos -> encodings, through the same detector, aligner and encoder as
the doors (daemon.api.face_crops), with the photo gate and the consistency check."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daemon.api import face_crops
from daemon.embeddings import Encoder
from daemon.faces.detect import Face, FaceDetector
from daemon.images import ImageError, decode_image, declared_size, read_image_bytes
from daemon.server.gate import DUPLICATE, INCONSISTENT, UNREADABLE, PhotoGate, find_outliers


@dataclass
class PhotoResult:
    """One photo's verdict. ``reason`` is None when the photo was accepted."""

    path: str
    reason: str | None = None
    detail: str = ""
    sha256: str = ""
    kind: str = ""                         # image format, e.g. "JPEG"
    face: Face | None = None
    embedding: np.ndarray | None = None
    data: bytes = field(default=b"", repr=False)  # the bytes that were checked (kept with --keep-photos)

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def reject(self, reason: str, detail: str) -> "PhotoResult":
        self.reason, self.detail, self.embedding = reason, detail, None
        return self


def examine_photo(path: str | Path, encoder: Encoder, detector: FaceDetector, gate: PhotoGate) -> PhotoResult:
    """Read, detect, gate, align and embed one photo; never raises for a bad photo."""
    result = PhotoResult(str(path))
    try:
        data = read_image_bytes(path)
        image = decode_image(data, str(path))
    except ImageError as exc:
        return result.reject(UNREADABLE, str(exc).removeprefix(f"{path}: "))
    result.data, result.sha256 = data, hashlib.sha256(data).hexdigest()
    result.kind = declared_size(data)[0]
    aligned = face_crops(image, encoder=encoder, detector=detector)  # largest face first
    problem = gate.faces_problem([a.face for a in aligned])
    if problem is None:
        result.face = aligned[0].face
        problem = gate.crop_problem(aligned[0].crop)
    if problem is not None:
        return result.reject(*problem)
    result.embedding = np.asarray(encoder.embed(aligned[0].crop)[0], np.float32)
    face = result.face
    result.detail = f"face {min(face.width, face.height):.0f} px, detection score {face.score:.2f}"
    return result


def examine_photos(paths: Sequence[str | Path], encoder: Encoder, detector: FaceDetector, gate: PhotoGate,
                   consistency: bool = True) -> list[PhotoResult]:
    """Every photo's verdict, in order. A photo given twice counts once; with
    ``consistency``, photos that do not look like the others are rejected (see
    find_outliers and PhotoGate.consistency_threshold)."""
    results, seen = [], {}
    for path in paths:
        result = examine_photo(path, encoder, detector, gate)
        if result.sha256 and result.sha256 in seen:
            result.reject(DUPLICATE, f"the same image as {seen[result.sha256]}")
        elif result.sha256:
            seen[result.sha256] = result.path
        results.append(result)
    if consistency:
        accepted = [r for r in results if r.accepted]
        limit = gate.consistency_threshold
        outliers = find_outliers(np.stack([r.embedding for r in accepted]) if accepted else np.zeros((0, 1)), limit)
        for i, distance in outliers.items():
            others = "the other photo" if len(accepted) == 2 else "the median of the person's other photos"
            accepted[i].reject(INCONSISTENT, f"does not look like the same person: distance {distance:.2f} from "
                                             f"{others}, above the consistency threshold {limit:.2f}")
    return results
