"""Training loop: P x K batches -> encoder -> metric loss (+ optional distillation).

Runs under a ``tf.distribute`` strategy (the default strategy on CPU, a
MirroredStrategy over several GPUs, or a MultiWorkerMirroredStrategy from
TF_CONFIG), feeds it with ``tf.data``, and checkpoints so an interrupted run
resumes where it stopped with the same batches.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

import keras
from model_build.data.augment import AugmentConfig, augment_batch
from model_build.data.datasets import FaceDataset
from model_build.data.sampler import pk_batches
from model_build.losses import get_loss
from model_build.models.encoder import build_encoder

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that decides what a training run produces (saved with the run)."""

    input_size: int = 112
    embedding_size: int = 128
    width: float = 1.0
    loss: str = "triplet-semi-hard"
    margin: float = 0.2
    identities_per_batch: int = 32      # P
    images_per_identity: int = 4        # K
    steps: int = 4000
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    distill_weight: float = 0.0         # > 0 adds ||f(x) - teacher(x)||^2 on unit vectors
    seed: int = 0
    checkpoint_every: int = 250
    augment: dict = field(default_factory=lambda: asdict(AugmentConfig()))

    @property
    def batch_size(self) -> int:
        return self.identities_per_batch * self.images_per_identity


def choose_strategy() -> tf.distribute.Strategy:
    """Several GPUs -> MirroredStrategy; TF_CONFIG -> multi-worker; else the default."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def make_dataset(data: FaceDataset, teacher: np.ndarray | None, cfg: TrainConfig,
                 start_step: int) -> tf.data.Dataset:
    """Infinite dataset of (images, labels, teacher, has_teacher) batches from start_step."""
    crops = tf.constant(data.crops)
    labels = tf.constant(data.labels.astype(np.int32))
    if teacher is None:
        teacher = np.full((len(data), cfg.embedding_size), np.nan, np.float32)
    has_teacher = tf.constant(np.isfinite(teacher).all(axis=1).astype(np.float32))
    teacher = tf.constant(np.nan_to_num(teacher).astype(np.float32))
    aug = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()})

    def batches():
        yield from pk_batches(data.labels, cfg.identities_per_batch, cfg.images_per_identity,
                              cfg.seed, start_batch=start_step)

    def build(step, index):
        x = (tf.cast(tf.gather(crops, index), tf.float32)[..., None] - 127.5) / 127.5
        x = augment_batch(x, tf.stack([tf.cast(cfg.seed, tf.int64), step]), aug)
        return x, tf.gather(labels, index), tf.gather(teacher, index), tf.gather(has_teacher, index)

    ds = tf.data.Dataset.from_generator(
        batches, output_signature=tf.TensorSpec([cfg.batch_size], tf.int64))
    return ds.enumerate(start_step).map(build, num_parallel_calls=2).prefetch(2)


def _lr_schedule(cfg: TrainConfig):
    decay = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate * 0.1, max(cfg.steps - cfg.warmup_steps, 1), alpha=0.02,
        warmup_target=cfg.learning_rate, warmup_steps=cfg.warmup_steps)
    return decay


def train(data: FaceDataset, cfg: TrainConfig, run_dir: str | Path,
          teacher: np.ndarray | None = None, progress: bool = True,
          on_eval=None, eval_every: int = 0) -> keras.Model:
    """Train (or resume) an encoder in run_dir; returns the model with final weights.

    on_eval(model, step) -> dict is called every eval_every steps for monitoring.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(cfg.seed)
    strategy = choose_strategy()
    with strategy.scope():
        model = build_encoder(cfg.input_size, cfg.embedding_size, cfg.width)
        loss_kwargs = {"margin": cfg.margin} if cfg.loss.startswith(("triplet", "contrastive")) else {}
        if cfg.loss.startswith("binary-head"):
            loss_kwargs = {"embedding_dim": cfg.embedding_size}
        loss_fn = get_loss(cfg.loss, **loss_kwargs)
        head = getattr(loss_fn, "head", None)  # the binary head's weights train too
        if head is not None and not head.built:
            head.build((None, cfg.embedding_size))
        variables = model.trainable_variables + (head.trainable_variables if head else [])
        optimizer = keras.optimizers.AdamW(_lr_schedule(cfg), weight_decay=cfg.weight_decay)
        optimizer.build(variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var,
                                   **({"head": head} if head else {}))
    manager = tf.train.CheckpointManager(ckpt, run_dir / "checkpoints", max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log.info("resumed from %s at step %d", manager.latest_checkpoint, int(step_var))
    (run_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    start = int(step_var)
    if start >= cfg.steps:
        return model

    dist_ds = strategy.experimental_distribute_dataset(make_dataset(data, teacher, cfg, start))

    def step_fn(x, y, t, has_t):
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            metric = loss_fn(y, emb)
            sq = tf.reduce_sum(tf.square(emb - t), axis=1)
            distill = tf.reduce_sum(sq * has_t) / tf.maximum(tf.reduce_sum(has_t), 1.0)
            total = metric + cfg.distill_weight * distill
            scaled = total / strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return total, metric, distill

    @tf.function
    def train_step(batch):
        out = strategy.run(step_fn, args=batch)
        return [strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for v in out]

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", mininterval=5.0)
    history_path = run_dir / "history.jsonl"
    t0, ema = time.time(), None
    iterator = iter(dist_ds)
    for step in range(start, cfg.steps):
        total, metric, distill = (float(v) for v in train_step(next(iterator)))
        if not np.isfinite(total):
            raise FloatingPointError(f"loss became {total} at step {step}; lower the learning rate")
        ema = total if ema is None else 0.98 * ema + 0.02 * total
        step_var.assign(step + 1)
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.4f}", metric=f"{metric:.4f}", distill=f"{distill:.4f}",
                            refresh=False)
        done = step + 1
        record = None
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            manager.save(checkpoint_number=done)
            record = {"step": done, "loss": ema, "metric": metric, "distill": distill,
                      "elapsed_s": round(time.time() - t0, 1)}
        if on_eval and eval_every and (done % eval_every == 0 or done == cfg.steps):
            record = {**(record or {"step": done, "loss": ema}), **on_eval(model, done)}
            log.info("step %d: %s", done, record)
        if record:
            with history_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
    if bar:
        bar.close()
    model.save(run_dir / "encoder.keras")
    return model


def load_trained(run_dir: str | Path) -> keras.Model:
    """The final Keras encoder of a run (falls back to its latest checkpoint)."""
    run_dir = Path(run_dir)
    final = run_dir / "encoder.keras"
    if final.is_file():
        return keras.models.load_model(final)
    cfg_file = run_dir / "train_config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run (no train_config.json)")
    cfg = json.loads(cfg_file.read_text())
    model = build_encoder(cfg["input_size"], cfg["embedding_size"], cfg["width"])
    latest = tf.train.latest_checkpoint(run_dir / "checkpoints")
    if not latest:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model


def embed_crops(model: keras.Model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """Embeddings of uint8 crops (N, S, S) with a Keras encoder in inference mode."""
    out = []
    for i in range(0, len(crops), batch):
        x = (crops[i:i + batch].astype(np.float32)[..., None] - 127.5) / 127.5
        out.append(model(x, training=False).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)
