"""Siamese binary-classification head: "same person?" from two embeddings.

Taigman, Yang, Ranzato, Wolf, "DeepFace: Closing the Gap to Human-Level
Performance in Face Verification", CVPR 2014, section 4.2 (also the face
verification-as-binary-classification lesson of Ng's Deep Learning course):

    p(same | i, j) = σ(Σ_k w_k · φ_k(f_i, f_j) + b)

with φ_k = |f_i,k − f_j,k| (weighted L1), or the weighted χ² similarity
φ_k = (f_i,k − f_j,k)² / (f_i,k + f_j,k).

DeepFace's χ² assumes non-negative (post-ReLU) features. Our embeddings are
L2-normalised and can be negative, so f_i,k + f_j,k can vanish or flip sign;
we divide by |f_i,k| + |f_j,k| + ε instead, which equals the original for
non-negative features (up to ε) and is always positive.

Training the head
-----------------
Keras 3 losses do not track variables, so `model.compile(loss=BinaryPairLoss(
head))` alone would never update the head. Either:

* in a custom ``train_step`` / GradientTape loop, differentiate
  `pairwise_binary_loss(labels, embeddings, loss.head)` w.r.t.
  ``model.trainable_variables + loss.head.trainable_variables``; or
* for functional / subclassed models, assign ``model.pair_head = loss.head``
  before `compile`: Keras then tracks the head as a sub-layer, so `fit`
  trains (and checkpoints) it. Sequential models ignore such attributes.

Build the head before tracing (pass `embedding_dim`, or call it once
eagerly), and create it inside the distribution strategy scope, so its
variables are not created inside a `tf.function` or outside the strategy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from model_build.losses.base import MetricLoss

from model_build.losses.distances import (
    as_float_embeddings,
    flat_labels,
    same_label_mask,
    upper_triangle_mask,
)


@keras.saving.register_keras_serializable(package="facegate")
class PairClassifierHead(keras.layers.Layer):
    """Logistic regression on |f_i − f_j| (or χ² features) of an embedding pair.

    Call it on a tuple ``(f_i, f_j)`` of (..., D) tensors; returns p(same) of
    shape (...). `pair_logits` gives the pre-sigmoid score, which the loss uses
    for a numerically stable cross-entropy.
    """

    def __init__(
        self,
        chi_squared=False,
        embedding_dim=None,
        epsilon=1e-6,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.chi_squared = chi_squared
        self.embedding_dim = embedding_dim
        self.epsilon = epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if embedding_dim is not None:
            self.build((None, embedding_dim))

    def build(self, input_shape):
        # Called with either one shape or the (shape_i, shape_j) pair of `call`.
        if isinstance(input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        dim = int(input_shape[-1])
        self.embedding_dim = dim
        self.kernel = self.add_weight(
            name="kernel", shape=(dim,), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")
        self.built = True

    def pair_features(self, f_i, f_j):
        """φ(f_i, f_j): |f_i − f_j|, or the sign-safe χ² (f_i − f_j)² / (|f_i| + |f_j| + ε)."""
        f_i = as_float_embeddings(f_i)
        f_j = as_float_embeddings(f_j)
        if self.chi_squared:
            return tf.square(f_i - f_j) / (tf.abs(f_i) + tf.abs(f_j) + self.epsilon)
        return tf.abs(f_i - f_j)

    def pair_logits(self, f_i, f_j):
        """Σ_k w_k φ_k + b over the last axis (inputs broadcast against each other)."""
        if not self.built:
            self.build(tuple(f_i.shape))
        features = self.pair_features(f_i, f_j)
        kernel = tf.cast(self.kernel, features.dtype)
        bias = tf.cast(self.bias, features.dtype)
        return tf.reduce_sum(features * kernel, axis=-1) + bias

    def call(self, inputs):
        f_i, f_j = inputs
        return tf.sigmoid(self.pair_logits(f_i, f_j))

    def get_config(self):
        return {
            **super().get_config(),
            "chi_squared": self.chi_squared,
            "embedding_dim": self.embedding_dim,
            "epsilon": self.epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def pairwise_binary_loss(labels, embeddings, head):
    """Mean binary cross-entropy of `head` over all pairs i < j of the batch.

    Target is 1 for same-label pairs. Pure TF, so it can be called inside a
    GradientTape to get gradients for both the encoder and ``head``.
    Memory is O(B²·D): pair features are formed by broadcasting.

    Returns:
        Scalar tensor; 0 for a batch with fewer than two samples.
    """
    labels = flat_labels(labels)
    f = as_float_embeddings(embeddings)
    logits = head.pair_logits(f[:, None, :], f[None, :, :])  # (B, B)
    targets = tf.cast(same_label_mask(labels), logits.dtype)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    pairs = upper_triangle_mask(tf.shape(logits)[0])
    total = tf.reduce_sum(tf.where(pairs, bce, tf.zeros_like(bce)))
    return tf.math.divide_no_nan(total, tf.reduce_sum(tf.cast(pairs, bce.dtype)))


@keras.saving.register_keras_serializable(package="facegate")
class BinaryPairLoss(MetricLoss):
    """`pairwise_binary_loss` as a Keras loss, holding the head as ``.head``.

    See the module docstring for how the head's weights get trained. Without
    `head`, one is created from `chi_squared` / `embedding_dim`.
    """

    def __init__(self, head=None, *, chi_squared=False, embedding_dim=None, name="binary_pair_loss", **kwargs):
        head = head or PairClassifierHead(chi_squared=chi_squared, embedding_dim=embedding_dim)
        super().__init__(pairwise_binary_loss, name=name, head=head, **kwargs)
        self.head = head

    def get_config(self):
        # Only the head's hyper-parameters: its weights live with the model
        # (when attached) or in the training checkpoint.
        config = {k: v for k, v in super().get_config().items() if k != "head"}
        return {**config, "chi_squared": self.head.chi_squared, "embedding_dim": self.head.embedding_dim}
