"""Quantisation-aware fine-tuning towards the float model the run ended with.

The target is the float encoder itself (self-distillation), not the teacher: the aim is
an int8 model that agrees with a float model already validated, so no labels, no view
labelling and no new data choices are needed, and the held-out folds stay untouched.
Batch norms stay frozen (folded into the kernels) as in the last phase of Jacob et al.
(CVPR 2018); activation ranges are recalibrated as the weights move, because the
converter will calibrate the result again on its own crops.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tensorflow as tf

import keras
from daemon.faces.align import normalize_crop
from model_build.quantization.config import FinetuneConfig
from model_build.quantization.fake_quant import calibrate, copy_weights, quantization_aware
from model_build.export.fold import fold_batch_norms

log = logging.getLogger(__name__)


def agreement_loss(q: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean (1 - cosine) between the simulated-int8 and the float embeddings."""
    return tf.reduce_mean(1.0 - tf.reduce_sum(tf.math.l2_normalize(q, -1) * tf.math.l2_normalize(target, -1), -1))


def _batch(crops: np.ndarray, views: np.ndarray | None, rng: np.random.Generator, n: int) -> np.ndarray:
    """Half plain crops (the evaluation's case), half augmented views when given; mirrored at random."""
    plain = n if views is None else n // 2
    out = [crops[np.sort(rng.choice(len(crops), plain, replace=False))]]
    if views is not None:
        idx = np.sort(rng.choice(len(views), n - plain, replace=False))
        out.append(views[idx, rng.integers(0, views.shape[1], len(idx))])
    x = np.concatenate(out)
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, :, ::-1]
    return x


def finetune(model: keras.Model, crops: np.ndarray, views: np.ndarray | None, cfg: FinetuneConfig,
             run_dir: str | Path | None = None) -> keras.Model:
    """The encoder after quantisation-aware fine-tuning: same architecture as ``model``,
    batch norms folded (so the converter rounds what training saw).

    ``crops``: (N, S, S) uint8 training crops; ``views``: optional (N, V, S, S) augmented views.
    Writes history.jsonl to ``run_dir`` when given.
    """
    rng = np.random.default_rng(cfg.seed)
    calib = normalize_crop(crops[rng.choice(len(crops), min(cfg.calibration_crops, len(crops)), replace=False)])
    folded = fold_batch_norms(model)
    qat = quantization_aware(folded)
    calibrate(qat, folded, calib)
    # Kernels and biases move; batch-norm gains stay 1 so the kernel rounded is the kernel run.
    variables = [v for v in qat.trainable_variables if not v.path.endswith("gamma")]
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(variables)

    @tf.function(jit_compile=False)
    def step(x):
        target = model(x, training=False)
        with tf.GradientTape() as tape:
            loss = agreement_loss(qat(x, training=False), target)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    history = Path(run_dir) / "history.jsonl" if run_dir else None
    losses, t0 = [], time.time()
    for i in range(1, cfg.steps + 1):
        losses.append(float(step(tf.constant(normalize_crop(_batch(crops, views, rng, cfg.batch))))))
        if i % cfg.recalibrate_every == 0 or i == cfg.steps:
            calibrate(qat, folded, calib)
            row = {"step": i, "agreement_loss": round(float(np.mean(losses)), 6),
                   "seconds": round(time.time() - t0, 1)}
            losses = []
            log.info("qat step %d: 1 - cos %.5f (%.1f s)", i, row["agreement_loss"], row["seconds"])
            if history:
                with history.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    copy_weights(qat, folded)
    return folded


def config_dict(cfg: FinetuneConfig) -> dict:
    return asdict(cfg)
