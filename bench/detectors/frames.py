"""Synthetic door-camera frames: one LFW face of a known size pasted at a random spot of
a 640x480 background, and the rules that say whether a detector found it.

LFW images are 250x250 with the face centred at a fixed scale (Viola-Jones box grown
2.2x), so one box, LFW_FACE_BOX, fits the face of every LFW image: it is the median of
YuNet's (97x129 px) and BlazeFace's (110-115 px square) boxes over 100 LFW images,
rounded, so that each detector's own box style passes the matching rule below.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FRAME_SIZE = (640, 480)  # width, height
FACE_SIZES = (40, 60, 100, 200, 300)  # face box width in frame pixels: ~3 m to ~0.4 m
BACKGROUNDS = ("smooth", "gradient", "clutter", "texture")
# x0, y0, x1, y1 of the face (brow to chin, ear to ear) in a 250x250 LFW image.
LFW_FACE_BOX = (74.0, 70.0, 178.0, 194.0)
CONTEXT = 1.8  # pasted region side / face box width: hair, neck and some of the photo's background


@dataclass(frozen=True)
class DoorFrame:
    image: np.ndarray                               # (480, 640, 3) BGR uint8
    face_box: tuple[float, float, float, float]     # ground truth x0, y0, x1, y1
    face_px: int
    background: str


def background(kind: str, rng: np.random.Generator, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A seeded BGR background: smooth blobs, a gradient, clutter (shapes) or a texture."""
    w, h = size
    if kind == "smooth":
        coarse = rng.integers(30, 220, size=(6, 8, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    elif kind == "gradient":
        a, b = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        ramp = a + (b - a) * t[:, None]
        img = np.broadcast_to(ramp[None] if len(t) == w else ramp[:, None], (h, w, 3)).astype(np.float32)
    elif kind == "clutter":
        img = np.full((h, w, 3), rng.uniform(40, 200, 3), np.float32)
        for _ in range(40):
            colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            s = int(rng.integers(10, 160))
            shape = rng.integers(0, 3)
            if shape == 0:
                cv2.rectangle(img, (x, y), (x + s, y + int(rng.integers(10, 160))), colour, -1)
            elif shape == 1:
                cv2.circle(img, (x, y), s // 2, colour, -1)
            else:
                cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), colour,
                         int(rng.integers(1, 8)))
    elif kind == "texture":
        noise = rng.normal(0, 1, (h, w)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(1.5, 6)))
        noise = (noise - noise.mean()) / (noise.std() + 1e-6)
        img = rng.uniform(60, 190, 3) + 35 * noise[..., None]
    else:
        raise ValueError(f"unknown background {kind!r}; choose one of {BACKGROUNDS}")
    img = img + rng.normal(0, 4, img.shape)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def feather_mask(side: int, ramp: float = 0.12) -> np.ndarray:
    """(side, side) alpha: 1 inside, fading to 0 over the outer ``ramp`` of each edge,
    so the paste has no hard square edge for a detector to latch onto."""
    d = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32)
    edge = np.clip(d / max(ramp * side, 1.0), 0, 1)
    return np.minimum(edge[:, None], edge[None, :])


def paste_face(frame: np.ndarray, face_image: np.ndarray, face_px: int,
               rng: np.random.Generator, source_box=LFW_FACE_BOX) -> tuple[float, float, float, float]:
    """Paste the face of ``face_image`` (its box ``source_box``) scaled to ``face_px`` wide
    at a random spot fully inside ``frame`` (in place). Returns the pasted face box."""
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = source_box
    scale = face_px / (x1 - x0)
    context = min(CONTEXT, 0.95 * min(fh, fw) / face_px)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, context * (x1 - x0) / 2
    # The region around the face, resampled straight to its size in the frame.
    side = max(int(round(2 * half * scale)), 2)
    m = np.array([[scale, 0, side / 2 - cx * scale], [0, scale, side / 2 - cy * scale]], np.float32)
    face = face_image if face_image.ndim == 3 else cv2.cvtColor(face_image, cv2.COLOR_GRAY2BGR)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.warpAffine(face, m, (side, side), flags=interp, borderMode=cv2.BORDER_REFLECT)
    px, py = int(rng.integers(0, fw - side + 1)), int(rng.integers(0, fh - side + 1))
    alpha = feather_mask(side)[..., None]
    region = frame[py:py + side, px:px + side].astype(np.float32)
    frame[py:py + side, px:px + side] = np.round(alpha * patch + (1 - alpha) * region).astype(np.uint8)
    ox, oy = px + side / 2 - cx * scale, py + side / 2 - cy * scale  # where source (0, 0) lands
    return (ox + x0 * scale, oy + y0 * scale, ox + x1 * scale, oy + y1 * scale)


def door_frames(faces: list[np.ndarray], sizes=FACE_SIZES, per_size: int = 100,
                seed: int = 0) -> list[DoorFrame]:
    """``per_size`` frames for each face size, faces and backgrounds drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    frames = []
    for px in sizes:
        for k in range(per_size):
            kind = BACKGROUNDS[k % len(BACKGROUNDS)]
            image = background(kind, rng)
            box = paste_face(image, faces[int(rng.integers(len(faces)))], px, rng)
            frames.append(DoorFrame(image, box, px, kind))
    return frames


def box_centres(boxes: np.ndarray) -> np.ndarray:
    return (np.asarray(boxes, np.float32).reshape(-1, 4)[:, :2] + np.asarray(boxes, np.float32).reshape(-1, 4)[:, 2:]) / 2


def matches_truth(boxes: np.ndarray, truth, size_range: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    """Per detection: its centre lies in the true face box and its width is within
    ``size_range`` of the true width (detectors draw boxes of different tightness)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = truth
    c = box_centres(boxes)
    inside = (c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)
    ratio = (boxes[:, 2] - boxes[:, 0]) / (x1 - x0)
    return inside & (ratio >= size_range[0]) & (ratio <= size_range[1])


def has_central_face(boxes: np.ndarray, shape: tuple[int, ...], margin: float = 0.3) -> bool:
    """A detection centred in the middle of the image (LFW's subject is centred; other
    faces in the photo do not count)."""
    h, w = shape[:2]
    c = box_centres(boxes)
    inside = ((c[:, 0] >= margin * w) & (c[:, 0] <= (1 - margin) * w)
              & (c[:, 1] >= margin * h) & (c[:, 1] <= (1 - margin) * h))
    return bool(inside.any())
