"""Training and int8 export of the passive PAD network.

Plain binary cross-entropy on face-with-context crops, classes balanced by sample
weight, with augmentations that a door camera produces anyway (framing, exposure,
colour, mirror) and grayscale frames (IR cameras at night) mixed in. Short by design:
on 7 + 8 people, longer training only fits the people and the rooms better.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

import keras
from daemon.liveness.passive import PREPROCESSING, PadInfo, PadModel, normalize_pad_crops
from model_build.export.tflite import EDGETPU_OPS, ExportError, convert, model_ops, tensor_quantization
from model_build.liveness.model import build_pad_net

log = logging.getLogger(__name__)
MODEL_NAME = "liveness_pad"
MAX_INT8_PROBABILITY_GAP = 0.05  # mean |P_int8 - P_keras| the export accepts


@dataclass
class PadTrainConfig:
    input_size: int = 128
    width: float = 1.0
    epochs: int = 12
    min_steps: int = 300         # a tiny training set (MSU: 32 frames) gets more epochs, not fewer updates
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    min_zoom: float = 0.85       # random crops keep at least this share of the side
    grayscale_p: float = 0.25    # share of training crops turned gray (IR cameras)
    seed: int = 0


def _augment(cfg: PadTrainConfig):
    size = cfg.input_size

    def fn(image, label, weight):
        image = tf.cast(image, tf.float32) / 255.0
        side = tf.random.uniform([], cfg.min_zoom, 1.0)
        y0 = tf.random.uniform([], 0.0, 1.0 - side)
        x0 = tf.random.uniform([], 0.0, 1.0 - side)
        image = tf.image.crop_and_resize(image[None], [[y0, x0, y0 + side, x0 + side]], [0], [size, size])[0]
        image = tf.image.random_flip_left_right(image)
        image = tf.image.random_brightness(image, 0.15)
        image = tf.image.random_contrast(image, 0.75, 1.25)
        image = tf.image.random_saturation(image, 0.7, 1.3)
        gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
        image = tf.where(tf.random.uniform([]) < cfg.grayscale_p, gray, image)
        image = tf.clip_by_value(image, 0.0, 1.0) * 2.0 - 1.0  # = normalize_pad_crops on uint8
        return image, label, weight
    return fn


def class_weights(live: np.ndarray) -> np.ndarray:
    """Per-sample weights that give bona fide and attack samples equal total weight."""
    live = np.asarray(live, bool)
    w = np.where(live, 0.5 / max(live.sum(), 1), 0.5 / max((~live).sum(), 1))
    return (w * len(live)).astype(np.float32)


def train_pad(crops: np.ndarray, live: np.ndarray, cfg: PadTrainConfig, verbose: int = 2) -> keras.Model:
    """Train the PAD network on uint8 RGB crops (N, S, S, 3) and bona fide labels."""
    if len(np.unique(live)) < 2:
        raise ValueError("training needs both bona fide and attack samples")
    keras.utils.set_random_seed(cfg.seed)
    model = build_pad_net(cfg.input_size, cfg.width)
    data = (tf.data.Dataset.from_tensor_slices((crops, live.astype(np.float32)[:, None], class_weights(live)))
            .shuffle(len(crops), seed=cfg.seed, reshuffle_each_iteration=True)
            .map(_augment(cfg), num_parallel_calls=2)
            .batch(cfg.batch_size).prefetch(2))
    batches = int(np.ceil(len(crops) / cfg.batch_size))
    epochs = max(cfg.epochs, int(np.ceil(cfg.min_steps / batches)))
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, epochs * batches)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                  loss=keras.losses.BinaryCrossentropy(), weighted_metrics=["accuracy"])
    model.fit(data, epochs=epochs, verbose=verbose, shuffle=False)  # the dataset shuffles
    return model


def keras_probabilities(model: keras.Model, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    out = [model(normalize_pad_crops(crops[i:i + batch]), training=False).numpy().ravel()
           for i in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def export_pad(model: keras.Model, out_dir: str | Path, representative: np.ndarray, check: np.ndarray,
               threshold: float, extra: dict | None = None) -> dict:
    """Write liveness_pad.tflite (full int8) and liveness_pad.json into out_dir, checked: only
    Edge TPU builtins, and int8 probabilities within 0.05 of Keras on ``check`` crops."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = convert(model, representative, int8=True, normalize=normalize_pad_crops)
    path = out_dir / f"{MODEL_NAME}.tflite"
    path.write_bytes(data)
    foreign = model_ops(path) - {"DELEGATE"} - EDGETPU_OPS
    if foreign:
        raise ExportError(f"int8 PAD model contains ops the Edge TPU cannot run: {sorted(foreign)}")
    size = int(model.input_shape[1])
    model_id = "pad-" + hashlib.sha256(data).hexdigest()[:16]
    lite = PadModel(path, info=PadInfo(model_id, size, threshold)).score_crops(check)
    gap = float(np.mean(np.abs(lite - keras_probabilities(model, check))))
    meta = {
        "format": "facegate-pad/1", "model_id": model_id,
        "input": {"size": size, "channels": 3, "layout": "NHWC", "batch": 1, "preprocessing": PREPROCESSING,
                  "normalization": "(rgb_pixel - 127.5) / 127.5, then int8 quantised with input scale/zero_point",
                  "color": "RGB; grayscale frames as three equal channels"},
        "output": "probability that the face is live (bona fide), 0..1",
        "threshold": float(threshold),
        "quantization": tensor_quantization(path),
        "file": {"path": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "parameters": int(model.count_params()),
        "export_check": {"mean_abs_probability_gap": round(gap, 5), "n": int(len(check))},
        **(extra or {}),
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    if gap > MAX_INT8_PROBABILITY_GAP:
        raise ExportError(f"int8 PAD probabilities differ from Keras by {gap:.3f} on average "
                          f"(> {MAX_INT8_PROBABILITY_GAP})")
    return meta


def config_dict(cfg: PadTrainConfig) -> dict:
    return asdict(cfg)
