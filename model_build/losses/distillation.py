"""Distillation losses: the student learns the teacher's embedding of each view.

* :func:`embedding_regression`: mean ‖f(x) − t(x)‖² between the student's and the
  teacher's unit vectors (feature-based distillation; Romero et al., "FitNets: Hints
  for Thin Deep Nets", ICLR 2015). A teacher wider than the student is first reduced
  by PCA (:class:`TargetSpace`), so the student reproduces the teacher's geometry
  in its own 128 dimensions rather than through a learned map it leaves behind.
* :func:`relational_cosine`: mean squared difference between the batch's pairwise
  cosine matrices, student vs teacher (similarity-preserving distillation; Tung &
  Mori, ICCV 2019; Park et al., "Relational Knowledge Distillation", CVPR 2019). It
  asks only for the teacher's *relations*, which a small student can match more
  easily than the teacher's absolute coordinates.
* the ``centre`` loss: :func:`embedding_regression` of a labelled row to its person's
  centre, :func:`identity_centres`, the mean of the teacher's vectors over every view of
  every photo of that person (the centre loss of Wen et al., "A Discriminative Feature
  Learning Approach for Deep Face Recognition", ECCV 2016, with centres the teacher fixes
  instead of learned ones). Regression to each view copies the teacher's spread between
  two photos of one person, and adds the student's own error on each; the centre asks
  for what the photos share.

They are pure functions ``fn(targets, embeddings) -> scalar`` like the metric losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


def embedding_regression(targets, embeddings):
    """Mean squared Euclidean distance between rows of two (B, D) unit-vector batches."""
    targets = tf.cast(targets, embeddings.dtype)
    return tf.reduce_mean(tf.reduce_sum(tf.square(embeddings - targets), axis=1))


def relational_cosine(teacher, embeddings):
    """Mean squared difference of the off-diagonal cosine similarities, (B, Dt) vs (B, Ds)."""
    teacher = tf.math.l2_normalize(tf.cast(teacher, embeddings.dtype), axis=1)
    student = tf.math.l2_normalize(embeddings, axis=1)
    diff = tf.matmul(student, student, transpose_b=True) - tf.matmul(teacher, teacher, transpose_b=True)
    n = tf.cast(tf.shape(diff)[0], diff.dtype)
    return tf.reduce_sum(tf.square(diff)) / tf.maximum(n * (n - 1), 1.0)  # the diagonal is 0 - 0


def identity_centres(targets: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C, D) unit centres of people 0..C-1: the normalised mean of their rows of
    targets (N, V, D), every view of every image; labels (N,), -1 for no person."""
    targets = np.asarray(targets, np.float32)
    labels = np.asarray(labels)
    keep = labels >= 0
    count = int(labels[keep].max()) + 1 if keep.any() else 0
    sums = np.zeros((count, targets.shape[-1]), np.float64)
    np.add.at(sums, labels[keep], targets[keep].sum(axis=1))
    return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class TargetSpace:
    """Teacher vectors -> the student's regression targets: centred, reduced by PCA to
    the student's dimension, re-normalised.

    Centring removes a direction all of a teacher's vectors share (dlib's sit in a
    narrow cone; a student that outputs the cone's axis scores well and learns
    nothing). PCA keeps the directions that separate faces.
    """

    mean: np.ndarray       # (Dt,)
    basis: np.ndarray      # (Dt, Ds)

    @classmethod
    def fit(cls, teacher: np.ndarray, dim: int, max_rows: int = 60000, seed: int = 0) -> "TargetSpace":
        t = np.asarray(teacher, np.float64).reshape(-1, teacher.shape[-1])
        t = t[np.isfinite(t).all(axis=1)]
        if len(t) > max_rows:
            t = t[np.random.default_rng(seed).choice(len(t), max_rows, replace=False)]
        mean = t.mean(axis=0)
        if t.shape[1] < dim:
            raise ValueError(f"teacher has {t.shape[1]} dimensions, fewer than the student's {dim}")
        if t.shape[1] == dim:  # nothing to reduce: keep the teacher's own axes
            return cls(mean.astype(np.float32), np.eye(dim, dtype=np.float32))
        # full_matrices: a full basis even when there are fewer rows than dimensions
        _, _, vt = np.linalg.svd(t - mean, full_matrices=True)
        return cls(mean.astype(np.float32), vt[:dim].T.astype(np.float32))

    def __call__(self, teacher: np.ndarray) -> np.ndarray:
        z = (np.asarray(teacher, np.float32) - self.mean) @ self.basis
        return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)

    def save(self, path) -> None:
        np.savez(path, mean=self.mean, basis=self.basis)
