"""Training-time augmentation of aligned crops, reproducible from a seed.

The list follows what survives alignment at the door: mirroring, a small random
shift/zoom (detector jitter), a small rotation (landmark noise, head roll), and
brightness/contrast (lighting, IR exposure). Randomness is stateless and keyed by
(seed, batch number), so a run -- or a resumed run -- sees the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    mirror: bool = True
    max_shift: float = 0.06         # fraction of the crop side
    max_zoom: float = 0.08          # relative scale change
    max_rotation_deg: float = 8.0
    max_brightness: float = 0.15    # added to pixels in [-1, 1]
    contrast_range: tuple[float, float] = (0.7, 1.3)


def _transforms(u, size, cfg: AugmentConfig):
    """Projective-transform rows (B, 8) mapping output pixels to input pixels:
    rotation and zoom about the crop centre, then a shift."""
    angle = u[:, 0] * cfg.max_rotation_deg * math.pi / 180.0
    scale = 1.0 + u[:, 1] * cfg.max_zoom
    tx, ty = u[:, 2] * cfg.max_shift * size, u[:, 3] * cfg.max_shift * size
    c = (size - 1.0) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, -sin, c - cos * c + sin * c + tx,
                     sin, cos, c - sin * c - cos * c + ty, zeros, zeros], axis=1)


def augment_batch(images, seed, cfg: AugmentConfig = AugmentConfig()):
    """Augment normalised crops (B, S, S, 1) in [-1, 1]; seed is a (2,) int tensor."""
    batch = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    u = tf.random.stateless_uniform([batch, 7], seed, -1.0, 1.0)
    if cfg.mirror:
        flip = (u[:, 4] > 0)[:, None, None, None]
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=_transforms(u, size, cfg), output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")
    lo, hi = cfg.contrast_range
    contrast = (lo + (u[:, 5] + 1.0) / 2.0 * (hi - lo))[:, None, None, None]
    brightness = (u[:, 6] * cfg.max_brightness)[:, None, None, None]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value((images - mean) * contrast + mean + brightness, -1.0, 1.0)
