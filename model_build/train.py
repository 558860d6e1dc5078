"""Training: distillation set -> P x K batches of cached views -> encoder -> losses.

The data flow of a run, top to bottom:

1. ``TrainingSet``: every aligned face of the ``--data`` folders (single-image people
   included), its augmented views and the teacher's vector of each view
   (model_build.data.distill). People of held-out folds are removed here.
2. ``batches``: P identities x K images with two or more images (for the metric loss),
   then U images drawn from everyone; each row is one random view of its image.
3. the encoder (model_build.models.encoder);
4. the losses, weighted (model_build.losses.combine): regression to the teacher's
   vector in the student's PCA target space, the relational (cosine-matrix) loss, and
   on the labelled rows regression to the person's teacher centre and a metric loss
   (FaceNet's semi-hard triplet by default).

With ``ema_decay`` the run also keeps a moving average of the weights
(model_build.models.ema); its ``encoder.keras`` is then the average, and
``encoder_last.keras`` the last step's weights.

Runs under a ``tf.distribute`` strategy (the default one on a CPU, MirroredStrategy over
several GPUs), and checkpoints so an interrupted run resumes with the same batches.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

import keras
from daemon.faces.align import normalize_crop
from model_build.data.datasets import DatasetError
from model_build.data.distill import DistillSet
from model_build.losses.combine import LossMix, parse_losses
from model_build.losses.distillation import TargetSpace, identity_centres
from model_build.models.ema import WeightEMA
from model_build.models.encoder import GDC_BN_EPSILON, PRE_STAGE10_GDC_BN_EPSILON, build_encoder
from model_build.train_config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Views (N, V, S, S), teacher vectors (N, V, D) and labels (N,): -1 for people with
    a single image, who teach through the teacher only."""

    views: np.ndarray
    teacher: np.ndarray
    labels: np.ndarray
    summary: dict

    @classmethod
    def from_parts(cls, parts: list[DistillSet], exclude: set[str], min_identities: int = 0) -> "TrainingSet":
        """Merge datasets without the excluded people. min_identities: how many people
        with two or more images the metric loss needs (a DatasetError if fewer)."""
        views, teacher, labels, summary, next_label = [], [], [], {}, 0
        for part in parts:
            names = np.asarray(part.data.names)[part.data.labels]
            keep = ~np.isin(names, list(exclude))
            part = part.take(keep)
            counts = np.bincount(part.data.labels, minlength=part.data.num_identities)
            multi = np.flatnonzero(counts >= 2)
            remap = np.full(part.data.num_identities, -1, np.int64)
            remap[multi] = np.arange(next_label, next_label + len(multi))
            next_label += len(multi)
            views.append(np.asarray(part.views))
            teacher.append(np.asarray(part.targets))
            labels.append(remap[part.data.labels])
            summary[Path(part.data.source).name] = {
                "images": int(len(part.data)), "people": int((counts > 0).sum()),
                "people_with_2plus": int(len(multi)), "excluded_images": int((~keep).sum())}
        labels = np.concatenate(labels)
        if not len(labels):
            raise DatasetError("no training images left (every face was excluded or none was found)")
        if next_label < min_identities:
            raise DatasetError(f"the metric loss needs at least {min_identities} people with two or more "
                               f"images, the data has {next_label}; lower --p or train with "
                               "distillation losses only (--losses distill=1,relational=1)")
        summary["total"] = {"images": int(len(labels)), "labelled_images": int((labels >= 0).sum()),
                            "identities_with_2plus": int(next_label)}
        return cls(np.concatenate(views), np.concatenate(teacher), labels, summary)


def batches(labels: np.ndarray, views_per_image: int, cfg: TrainConfig, start_step: int = 0,
            labelled: bool = True):
    """Yield (image indices, view indices) forever, deterministic in (seed, step).

    With ``labelled`` (a metric loss is trained), the first P*K rows are P identities x
    K of their images (repeats when an identity has fewer than K) and the last U rows
    are any images; without, every row is any image.
    """
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels[labels >= 0])]
    p, k = (cfg.identities_per_batch, cfg.images_per_identity) if labelled else (0, 0)
    if p and len(groups) < p:
        raise ValueError(f"need at least P={p} people with 2+ images, have {len(groups)}")
    step = start_step
    while True:
        rng = np.random.default_rng([cfg.seed, step])
        rows = [rng.choice(groups[g], size=k, replace=len(groups[g]) < k)
                for g in (rng.choice(len(groups), size=p, replace=False) if p else [])]
        rows.append(rng.integers(0, len(labels), cfg.batch_size - p * k))
        images = np.concatenate(rows)
        plain = rng.random(len(images)) < cfg.plain_view_share
        yield images, np.where(plain, 0, rng.integers(1, max(views_per_image, 2), len(images)) % views_per_image)
        step += 1


def make_dataset(data: TrainingSet, space: TargetSpace, cfg: TrainConfig, start_step: int,
                 labelled: bool) -> tf.data.Dataset:
    """(inputs, regression targets, teacher vectors, labels) batches from start_step."""
    def gen():
        for images, views in batches(data.labels, data.views.shape[1], cfg, start_step, labelled):
            teacher = data.teacher[images, views]
            yield (normalize_crop(data.views[images, views]), space(teacher), teacher,
                   data.labels[images].astype(np.int32))

    size, dim_t = cfg.input_size, data.teacher.shape[-1]
    spec = (tf.TensorSpec([cfg.batch_size, size, size, 1], tf.float32),
            tf.TensorSpec([cfg.batch_size, cfg.embedding_size], tf.float32),
            tf.TensorSpec([cfg.batch_size, dim_t], tf.float32),
            tf.TensorSpec([cfg.batch_size], tf.int32))
    return tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(4)


def choose_strategy() -> tf.distribute.Strategy:
    """Several GPUs -> MirroredStrategy; TF_CONFIG -> multi-worker; else the default."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _lr_schedule(cfg: TrainConfig):
    return keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate * 0.1, max(cfg.steps - cfg.warmup_steps, 1), alpha=0.01,
        warmup_target=cfg.learning_rate, warmup_steps=cfg.warmup_steps)


def train(data: TrainingSet, cfg: TrainConfig, run_dir: str | Path, progress: bool = True,
          on_eval=None, eval_every: int = 0, init_from: str | Path | None = None) -> keras.Model:
    """Train (or resume) an encoder in run_dir; returns the model with its final weights.

    on_eval(model, step) -> dict is called every eval_every steps for monitoring.
    init_from: a Keras encoder whose weights start a new run (warm start).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved_cfg = run_dir / "train_config.json"
    if tf.train.latest_checkpoint(run_dir / "checkpoints"):  # resuming: the network it trained
        saved = json.loads(saved_cfg.read_text()) if saved_cfg.is_file() else {}
        cfg = replace(cfg, gdc_bn_epsilon=built_gdc_bn_epsilon(saved))
    elif cfg.gdc_bn_epsilon is None:
        cfg = replace(cfg, gdc_bn_epsilon=GDC_BN_EPSILON)
    keras.utils.set_random_seed(cfg.seed)
    space = TargetSpace.fit(data.teacher, cfg.embedding_size, seed=cfg.seed)
    space.save(run_dir / "target_space.npz")
    mix = parse_losses(cfg.losses, margin=cfg.margin, embedding_size=cfg.embedding_size)
    if "centre" in mix.weights:
        mix.centres = tf.constant(identity_centres(space(data.teacher), data.labels))
    strategy = choose_strategy()
    with strategy.scope():
        model = build_encoder(cfg.input_size, cfg.embedding_size, cfg.width,
                              gdc_bn_epsilon=cfg.gdc_bn_epsilon)
        if init_from:
            model.set_weights(keras.models.load_model(init_from).get_weights())
            log.info("initialised from %s", init_from)
        variables = model.trainable_variables + mix.trainable_variables()
        optimizer = keras.optimizers.AdamW(_lr_schedule(cfg), weight_decay=cfg.weight_decay)
        optimizer.build(variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay else None
        ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var, **mix.checkpointables(),
                                   **({"ema": ema} if ema is not None else {}))
    manager = tf.train.CheckpointManager(ckpt, run_dir / "checkpoints", max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log.info("resumed from %s at step %d", manager.latest_checkpoint, int(step_var))
    saved_cfg.write_text(json.dumps(asdict(cfg), indent=2))
    start = int(step_var)
    if start >= cfg.steps:
        return model

    dist_ds = strategy.experimental_distribute_dataset(
        make_dataset(data, space, cfg, start, labelled=mix.needs_labels))

    def step_fn(x, target, teacher, labels):
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            terms = mix(emb, target, teacher, labels, cfg.labelled_rows)
            total = tf.add_n([mix.weights[n] * v for n, v in terms.items()])
            scaled = total / strategy.num_replicas_in_sync  # inside the tape, or it has no gradient
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return total, terms

    @tf.function
    def train_step(batch):
        total, terms = strategy.run(step_fn, args=batch)
        if ema is not None:
            ema.update(step_var)
        reduce = lambda v: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)  # noqa: E731
        return reduce(total), {n: reduce(v) for n, v in terms.items()}

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", mininterval=10.0)
    history_path = run_dir / "history.jsonl"
    t0, smooth = time.time(), None
    iterator = iter(dist_ds)
    for step in range(start, cfg.steps):
        total, terms = train_step(next(iterator))
        total = float(total)
        if not np.isfinite(total):
            raise FloatingPointError(f"loss became {total} at step {step}; lower the learning rate")
        smooth = total if smooth is None else 0.98 * smooth + 0.02 * total
        step_var.assign(step + 1)
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)
        done = step + 1
        record = None
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            manager.save(checkpoint_number=done)
            record = {"step": done, "loss": round(smooth, 5), **{n: round(float(v), 5) for n, v in terms.items()},
                      "elapsed_s": round(time.time() - t0, 1)}
        if on_eval and eval_every and (done % eval_every == 0 or done == cfg.steps):
            record = {**(record or {"step": done, "loss": round(smooth, 5)}), **_evaluate(on_eval, model, ema, done)}
            log.info("step %d: %s", done, record)
        if record:
            with history_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
    if bar:
        bar.close()
    if ema is not None:
        model.save(run_dir / "encoder_last.keras")
        ema.copy_to_model()
    model.save(run_dir / "encoder.keras")
    return model


def _evaluate(on_eval, model: keras.Model, ema: WeightEMA | None, step: int) -> dict:
    """on_eval's figures of the weights the run will save; with an average, of both."""
    if ema is None:
        return on_eval(model, step)
    last = {f"last_{k}": v for k, v in on_eval(model, step).items()}
    with ema.applied() as averaged:
        return {**on_eval(averaged, step), **last}


def built_gdc_bn_epsilon(saved_cfg: dict) -> float:
    """The global depthwise batch-norm epsilon a run was built with, from its saved config."""
    return saved_cfg.get("gdc_bn_epsilon") or PRE_STAGE10_GDC_BN_EPSILON


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
    model = build_encoder(cfg["input_size"], cfg["embedding_size"], cfg["width"],
                          gdc_bn_epsilon=built_gdc_bn_epsilon(cfg))
    latest = tf.train.latest_checkpoint(run_dir / "checkpoints")
    if not latest:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    ema = WeightEMA(model, cfg["ema_decay"]) if cfg.get("ema_decay") else None
    tf.train.Checkpoint(model=model, **({"ema": ema} if ema is not None else {})).restore(latest).expect_partial()
    if ema is not None:  # what the finished run would have saved as encoder.keras
        ema.copy_to_model()
    return model


def embed_crops(model: keras.Model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """Embeddings of uint8 crops (N, S, S) with a Keras encoder in inference mode."""
    out = [model(normalize_crop(crops[i:i + batch]), training=False).numpy()
           for i in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)
