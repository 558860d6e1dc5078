"""Speed: per-stage latency on 640x480 frames, frames per second, matching vs gallery size."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import cv2
import numpy as np

from bench.compare.systems import FacegateSystem, FaceRecognitionSystem, random_unit_vectors

# Every stage but these is the work from a frame to one face's embedding: detect + align
# + embed (facegate: faces + embed; face_recognition: detect + encode).
NOT_PER_FACE = ("match",)

FRAME_SIZE = (640, 480)  # width, height: a common door-camera mode
GALLERY_SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)


def make_frame(face_image: np.ndarray, rng: np.random.Generator,
               size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A BGR frame with the face image pasted at a random spot on a smooth random background.

    The image keeps its own scale (an LFW 250x250 image gives a face ~110 px wide,
    a person at about a metre from a door camera); larger images are shrunk to fit.
    """
    width, height = size
    coarse = rng.integers(40, 200, size=(6, 8, 3), dtype=np.uint8)
    frame = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, frame.shape)
    frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
    face = face_image if face_image.ndim == 3 else cv2.cvtColor(face_image, cv2.COLOR_GRAY2BGR)
    scale = min(1.0, 0.95 * height / face.shape[0], 0.95 * width / face.shape[1])
    if scale < 1.0:
        face = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = face.shape[:2]
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    frame[y:y + h, x:x + w] = face
    return frame


def latency_stats(seconds: Sequence[float]) -> dict:
    """Median, p95 and mean in milliseconds."""
    ms = np.asarray(seconds, np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0, "median_ms": None, "p95_ms": None, "mean_ms": None}
    return {"n": int(ms.size), "median_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean())}


def per_face_seconds(stages: dict[str, float]) -> float:
    """Detect + align + embed of one frame's face: every stage except matching."""
    return sum(v for k, v in stages.items() if k not in NOT_PER_FACE)


def summarise(system, timings: list) -> dict:
    """Per-stage, per-face and end-to-end latency of one system's frames.

    ``per_face`` is detect + align + embed on the frames where a face was embedded (the
    mirror inference included for facegate when its model flip-averages);
    ``end_to_end`` is the whole frame including colour conversion and matching;
    fps = 1 / its mean.
    """
    found = [t for t in timings if t.found]
    totals = [t.total for t in timings]
    return {
        "n_frames": len(timings),
        "faces_found": len(found),
        "stages": {s: latency_stats([t.stages[s] for t in timings if s in t.stages]) for s in system.stages},
        "per_face": latency_stats([per_face_seconds(t.stages) for t in found]),
        "end_to_end": latency_stats(totals),
        "fps": float(len(totals) / np.sum(totals)) if totals else None,
    }


def time_systems(systems: list, frames: list[np.ndarray], galleries: dict[str, np.ndarray],
                 warmup: int = 3) -> dict[str, dict]:
    """Run every frame through every system once, interleaved frame by frame (so a
    change in the machine's load hits every system alike: the ratios stay fair), after
    a few warm-up frames each. ``galleries``: the gallery each system matches against."""
    matchers = {s.name: s.matcher(galleries[s.name]) for s in systems}
    for system in systems:
        for frame in frames[:warmup]:
            system.run_frame(frame, matchers[system.name])
    timings = {s.name: [] for s in systems}
    for frame in frames:
        for system in systems:
            timings[system.name].append(system.run_frame(frame, matchers[system.name]))
    return {s.name: summarise(s, timings[s.name]) for s in systems}


def median_call_time(call: Callable[[], object], min_seconds: float = 0.3,
                     min_calls: int = 5, max_calls: int = 200) -> float:
    """Median seconds of repeated calls (repeated until min_seconds have passed)."""
    call()  # warm caches and lazy allocations
    times, start = [], time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < min_seconds):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def time_matching(facegate: FacegateSystem, peer: FaceRecognitionSystem | None,
                  sizes: Sequence[int], rng: np.random.Generator, dim: int = 128) -> list[dict]:
    """Time to identify one embedding against galleries of growing size.

    facegate: the daemon's Matcher (one float32 matrix-vector product + ambiguity check).
    face_recognition: its face_distance (numpy norm over float64 rows) + argmin.
    The query is a near-copy of one gallery entry, so the match path is the real one.
    """
    rows = []
    for n in sizes:
        gallery = random_unit_vectors(n, dim, rng)
        query = gallery[n // 2] + 0.02 * rng.standard_normal(dim, dtype=np.float32)
        query /= np.linalg.norm(query)
        matcher = facegate.matcher(gallery)
        row = {"gallery_size": int(n),
               "facegate_ms": 1e3 * median_call_time(lambda: matcher.match(query))}
        del matcher
        if peer is not None:
            gallery64, query64 = peer.matcher(gallery), query.astype(np.float64)
            row["face_recognition_ms"] = 1e3 * median_call_time(lambda: peer.match(gallery64, query64))
            del gallery64
        rows.append(row)
    return rows
