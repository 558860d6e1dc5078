"""Augmented views of each training face, rendered once and labelled by the teacher.

A view is a deterministic function of (seed, image, view index): its random draws come
from ``numpy.random.default_rng([seed, crc32(path), view])``. The teacher embeds every
view once (cached on disk) and the student trains on exactly those pixels, so the
distillation target always describes the input the student sees. View 0 is the plain
aligned crop (the door's crop); the others imitate what a door camera does to a face:

- **alignment jitter**: shift, scale and roll of the landmark fit, re-warped from the
  source image (no black borders), because detector landmarks wobble frame to frame;
- **distance**: the face rendered at 24-112 px and scaled back up, as a face 1-3 m from
  a 640x480 camera is;
- **light**: brightness, contrast, gamma; IR-like low contrast; backlight (the face
  darker than its surroundings);
- **sensor and codec**: blur, noise, JPEG;
- **occlusion**: a band or block over part of the face (hand, scarf, glasses frame);
- **mirror**;
- **blend** (off unless ``ViewConfig.blend`` is set): the face mixed with another aligned
  face of its dataset. No door shows that; it trains the student to match the teacher's
  function *between* the faces too, which makes a small dataset teach more (Beyer et al.,
  "Knowledge distillation: A good teacher is patient and consistent", CVPR 2022).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.faces.align import CROP_SIZE, align_face, similarity_transform, to_gray, ARCFACE_TEMPLATE
from daemon.images import load_image


@dataclass(frozen=True)
class ViewConfig:
    """How views are drawn (saved with a run; part of the view cache key)."""

    views: int = 6
    mirror: float = 0.5               # probability
    max_shift: float = 0.05           # of the crop side
    max_scale: float = 0.10           # log-uniform zoom in [1/(1+s), 1+s]
    max_roll_deg: float = 12.0
    low_res: float = 0.35             # probability of rendering at 24..80 px
    brightness: float = 0.2           # +-, of full range
    contrast: tuple[float, float] = (0.7, 1.3)
    gamma: tuple[float, float] = (0.7, 1.4)
    ir_low_contrast: float = 0.1      # probability
    backlight: float = 0.1
    blur: float = 0.2
    noise: float = 0.25
    jpeg: float = 0.3
    occlusion: float = 0.12
    blend: float = 0.0                # probability of mixing in another face
    blend_weight: tuple[float, float] = (0.1, 0.5)  # the other face's share

    def key(self) -> str:
        items = asdict(self)
        if not self.blend:  # so the cache keys of views made before blending existed still hold
            del items["blend"], items["blend_weight"]
        return zlib.crc32(repr(sorted(items.items())).encode()).to_bytes(4, "big").hex()


def view_rng(seed: int, path: str, view: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(path.encode()), view])


def _jittered_matrix(landmarks: np.ndarray, rng: np.random.Generator, cfg: ViewConfig,
                     size: int) -> np.ndarray:
    """The alignment with a random similarity applied about the crop centre."""
    template = ARCFACE_TEMPLATE * (size / 112.0)
    centre = np.array([size / 2, size / 2])
    angle = np.deg2rad(rng.uniform(-cfg.max_roll_deg, cfg.max_roll_deg))
    scale = np.exp(rng.uniform(-np.log1p(cfg.max_scale), np.log1p(cfg.max_scale)))
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, 2) * size
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (template - centre) @ rot.T + centre + shift
    return similarity_transform(landmarks, moved)


def _photometric(crop: np.ndarray, rng: np.random.Generator, cfg: ViewConfig) -> np.ndarray:
    x = crop.astype(np.float32) / 255.0
    size = x.shape[0]
    if rng.random() < cfg.backlight:
        # A bright window behind the person: the face darkens, the edges brighten.
        yy, xx = np.mgrid[:size, :size] / (size - 1) - 0.5
        edge = np.clip(np.sqrt(xx ** 2 + yy ** 2) * 2, 0, 1)
        x = x * rng.uniform(0.35, 0.7) + edge * rng.uniform(0.2, 0.5)
    x = (x - 0.5) * rng.uniform(*cfg.contrast) + 0.5 + rng.uniform(-cfg.brightness, cfg.brightness)
    x = np.clip(x, 0, 1) ** rng.uniform(*cfg.gamma)
    if rng.random() < cfg.ir_low_contrast:
        x = 0.5 + (x - x.mean()) * rng.uniform(0.35, 0.6)
    if rng.random() < cfg.occlusion:
        x = _occlude(x, rng)
    if rng.random() < cfg.blur:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.6, 1.8))
    if rng.random() < cfg.noise:
        x = x + rng.normal(0, rng.uniform(0.01, 0.05), x.shape).astype(np.float32)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


def _occlude(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = x.shape[0]
    x = x.copy()
    fill = rng.uniform(0, 1)
    if rng.random() < 0.5:  # a horizontal band: scarf over the mouth, or a hand
        top = int(rng.uniform(0.62, 0.8) * size)
        x[top:top + int(rng.uniform(0.15, 0.35) * size)] = fill
    else:  # a block from one side
        w, h = (int(rng.uniform(0.2, 0.4) * size) for _ in range(2))
        x0, y0 = int(rng.uniform(0, size - w)), int(rng.uniform(0.2, 0.8) * (size - h))
        x[y0:y0 + h, x0:x0 + w] = fill
    return x


def render_view(gray: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, cfg: ViewConfig,
                size: int = CROP_SIZE, partners: np.ndarray | None = None) -> np.ndarray:
    """One augmented crop of a face in a grayscale source image.

    partners: (M, size, size) uint8 aligned crops a blended view may mix in.
    """
    low = rng.random() < cfg.low_res
    render = int(rng.integers(24, 81)) if low else size
    crop = cv2.warpAffine(gray, _jittered_matrix(landmarks, rng, cfg, render), (render, render),
                          flags=cv2.INTER_AREA if low else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if low:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    if cfg.blend and partners is not None and len(partners) and rng.random() < cfg.blend:
        # Before the light and sensor changes, which then act on the mix as on one face.
        other = partners[rng.integers(len(partners))].astype(np.float32)
        w = rng.uniform(*cfg.blend_weight)
        crop = np.clip((1 - w) * crop + w * other + 0.5, 0, 255).astype(np.uint8)
    crop = _photometric(crop, rng, cfg)
    return crop[:, ::-1].copy() if rng.random() < cfg.mirror else crop


def render_views(file: Path, key: str, landmarks: np.ndarray, plain: np.ndarray, cfg: ViewConfig,
                 seed: int, size: int = CROP_SIZE, partners: np.ndarray | None = None) -> np.ndarray:
    """(views, size, size) uint8 for one image: view 0 is ``plain`` (the door's crop).

    key: the image's stable name (its dataset-relative path), so views do not depend on
    where the data folder lives. partners: the crops a blended view may mix in.
    """
    out = np.empty((cfg.views, size, size), np.uint8)
    out[0] = plain
    if cfg.views > 1:
        gray = to_gray(load_image(file))
        for v in range(1, cfg.views):
            out[v] = render_view(gray, landmarks, view_rng(seed, key, v), cfg, size, partners)
    return out


def plain_crop(file: Path, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The unaugmented crop, re-rendered from the source (equals the dataset's crop)."""
    from daemon.faces.detect import Face
    face = Face((0.0, 0.0, 1.0, 1.0), 1.0, np.asarray(landmarks, np.float32))
    return align_face(to_gray(load_image(file)), face, size)
