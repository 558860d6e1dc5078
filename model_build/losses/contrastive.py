"""Contrastive loss over all pairs of a batch.

Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant
Mapping", CVPR 2006. For a pair with Euclidean distance d and y = 1 when the
labels match:

    L = y · d² + (1 − y) · max(m − d, 0)²

(the paper's ½ factors are dropped; they only rescale the learning rate).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from model_build.losses.base import MetricLoss

from model_build.losses.distances import (
    flat_labels,
    pairwise_distances,
    same_label_mask,
    upper_triangle_mask,
)


def contrastive_loss(labels, embeddings, margin=1.0):
    """Mean contrastive loss over all pairs i < j of the batch.

    Args:
        labels: (B,) or (B, 1) identity labels.
        embeddings: (B, D) embeddings.
        margin: m, the distance beyond which negatives stop contributing.

    Returns:
        Scalar tensor; 0 for a batch with fewer than two samples.
    """
    labels = flat_labels(labels)
    d = pairwise_distances(embeddings)
    margin = tf.cast(margin, d.dtype)
    y = tf.cast(same_label_mask(labels), d.dtype)
    per_pair = y * tf.square(d) + (1.0 - y) * tf.square(tf.nn.relu(margin - d))
    pairs = upper_triangle_mask(tf.shape(d)[0])
    total = tf.reduce_sum(tf.where(pairs, per_pair, tf.zeros_like(per_pair)))
    return tf.math.divide_no_nan(total, tf.reduce_sum(tf.cast(pairs, d.dtype)))


@keras.saving.register_keras_serializable(package="facegate")
class ContrastiveLoss(MetricLoss):
    """`contrastive_loss` as a Keras loss."""

    def __init__(self, margin=1.0, *, name="contrastive_loss", **kwargs):
        super().__init__(contrastive_loss, name=name, margin=margin, **kwargs)
