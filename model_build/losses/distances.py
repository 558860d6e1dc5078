"""Pairwise distances and label masks shared by the metric-learning losses.

All functions take a whole batch and return dense (B, B) matrices built from
TF ops only, so they trace under `tf.function` and run per replica under a
`tf.distribute` strategy.
"""

from __future__ import annotations

import tensorflow as tf

# Squared distances below this count as coincident points: their sqrt gradient
# (1 / 2d) would otherwise blow up.
_ZERO_SQUARED_DISTANCE = 1e-12


def as_float_embeddings(embeddings) -> tf.Tensor:
    """Embeddings as a float tensor, upcasting half precision.

    Loss arithmetic (differences of squared norms) loses too much precision in
    float16/bfloat16, so mixed-precision models still get a float32 loss.
    """
    embeddings = tf.convert_to_tensor(embeddings)
    if embeddings.dtype not in (tf.float32, tf.float64):
        embeddings = tf.cast(embeddings, tf.float32)
    return embeddings


def flat_labels(labels) -> tf.Tensor:
    """Labels of shape (B,) or (B, 1) as a (B,) tensor."""
    return tf.reshape(tf.convert_to_tensor(labels), [-1])


def pairwise_squared_distances(embeddings) -> tf.Tensor:
    """Squared Euclidean distances ‖x_i − x_j‖² between all rows, shape (B, B).

    Uses the Gram expansion ‖x‖² − 2x·y + ‖y‖² (O(B²) memory instead of the
    O(B²·D) of explicit differences); cancellation can make it slightly
    negative, so it is clipped at 0, and the diagonal is forced to exactly 0.
    """
    x = as_float_embeddings(embeddings)
    sq_norms = tf.reduce_sum(tf.square(x), axis=1)
    gram = tf.matmul(x, x, transpose_b=True)
    d2 = sq_norms[:, None] - 2.0 * gram + sq_norms[None, :]
    d2 = tf.maximum(d2, 0.0)
    off_diagonal = 1.0 - tf.eye(tf.shape(x)[0], dtype=x.dtype)
    return d2 * off_diagonal


def pairwise_distances(embeddings) -> tf.Tensor:
    """Euclidean distances ‖x_i − x_j‖ between all rows, shape (B, B).

    sqrt has an infinite derivative at 0 (the diagonal, duplicate embeddings),
    so zero entries go through the double-`where` trick: sqrt sees 1 there and
    the result is replaced by 0, which keeps both value and gradient finite.
    """
    d2 = pairwise_squared_distances(embeddings)
    is_zero = d2 <= _ZERO_SQUARED_DISTANCE
    safe = tf.sqrt(tf.where(is_zero, tf.ones_like(d2), d2))
    return tf.where(is_zero, tf.zeros_like(safe), safe)


def same_label_mask(labels) -> tf.Tensor:
    """(B, B) bool: labels[i] == labels[j] (diagonal included)."""
    labels = flat_labels(labels)
    return tf.equal(labels[:, None], labels[None, :])


def positive_pair_mask(labels) -> tf.Tensor:
    """(B, B) bool: i != j with the same label (anchor-positive pairs)."""
    same = same_label_mask(labels)
    not_self = tf.logical_not(tf.eye(tf.shape(same)[0], dtype=tf.bool))
    return tf.logical_and(same, not_self)


def negative_pair_mask(labels) -> tf.Tensor:
    """(B, B) bool: different labels (anchor-negative pairs)."""
    return tf.logical_not(same_label_mask(labels))


def upper_triangle_mask(batch_size) -> tf.Tensor:
    """(B, B) bool, True for i < j: each unordered pair counted once."""
    index = tf.range(batch_size)
    return index[:, None] < index[None, :]
