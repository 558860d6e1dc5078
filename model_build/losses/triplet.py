"""Triplet loss with online mining, and the margin loss of "Sampling Matters".

Per triplet (anchor a, positive p, negative n) the loss is the FaceNet hinge on
SQUARED Euclidean distances (Schroff, Kalenichenko, Philbin, "FaceNet: A
Unified Embedding for Face Recognition and Clustering", CVPR 2015):

    L(a, p, n) = max(‖f(a) − f(p)‖² − ‖f(a) − f(n)‖² + α, 0)

Triplets are mined inside the batch, so batches should hold several images
per identity (P identities × K images). Mining modes:

* ``"semi-hard"`` (default) — TF-Addons ``triplet_semihard_loss`` semantics,
  on squared distances: for every anchor-positive pair, the negative with the
  smallest d_an that is still > d_ap; if no negative is farther than the
  positive, the negative with the LARGEST d_an (the least-hard of the hard
  ones, which avoids collapsing onto outliers early in training). The loss is
  the mean over all anchor-positive pairs, zero-loss pairs included.
* ``"batch-hard"`` — Hermans, Beyer, Leibe, "In Defense of the Triplet Loss
  for Person Re-Identification", arXiv:1703.07737, 2017: per anchor, the
  farthest positive and the nearest negative; mean over anchors. (Hermans et
  al. use non-squared distances; here squared ones, as in FaceNet, so the
  margin means the same thing in every mode.)
* ``"batch-all"`` — same paper: every valid triplet, averaged over the
  triplets whose loss is > 0 (averaging over all would let the many easy
  triplets wash the gradient out).
* ``"distance-weighted"`` — Wu, Manmatha, Smola, Krähenbühl, "Sampling
  Matters in Deep Embedding Learning", ICCV 2017: for each anchor-positive
  pair one negative is drawn with probability ∝ min(λ, q(d_an)⁻¹), q being
  the density of distances between uniform points on the unit hypersphere;
  mean over anchor-positive pairs.

Anchors without a positive (or without a negative) in the batch contribute
nothing, and a batch without any valid triplet yields 0, not NaN. Memory is
O(B³) for "semi-hard" and "batch-all" (fine for the B ≤ ~256 we train with).
"""

from __future__ import annotations

import math
import numbers

import keras
import tensorflow as tf

from model_build.losses.base import MetricLoss

from model_build.losses.distances import (
    as_float_embeddings,
    flat_labels,
    negative_pair_mask,
    pairwise_distances,
    pairwise_squared_distances,
    positive_pair_mask,
)

MINING_MODES = ("semi-hard", "batch-hard", "batch-all", "distance-weighted")

# Hermans et al. count a triplet as "active" above this loss; exact 0 would
# also count float noise from the Gram-expansion distances.
_ACTIVE_LOSS = 1e-16
# Keeps log(1 − d²/4) finite for antipodal (d = 2) or non-normalised pairs.
_LOG_EPS = 1e-8


# ----------------------------------------------------------------------------
# Small masked reductions
# ----------------------------------------------------------------------------


def _masked_min(values, mask, axis):
    """Min over `mask`ed entries and whether any exists; 0 where none does."""
    big = tf.constant(float("inf"), values.dtype)
    reduced = tf.reduce_min(tf.where(mask, values, big), axis=axis)
    any_ = tf.reduce_any(mask, axis=axis)
    # The ±inf of empty rows must never reach arithmetic (0·inf = NaN).
    return tf.where(any_, reduced, tf.zeros_like(reduced)), any_


def _masked_max(values, mask, axis):
    """Max over `mask`ed entries and whether any exists; 0 where none does."""
    small = tf.constant(float("-inf"), values.dtype)
    reduced = tf.reduce_max(tf.where(mask, values, small), axis=axis)
    any_ = tf.reduce_any(mask, axis=axis)
    return tf.where(any_, reduced, tf.zeros_like(reduced)), any_


def _masked_mean(values, mask):
    """Mean of `values` where `mask`; 0 (not NaN) when the mask is empty."""
    total = tf.reduce_sum(tf.where(mask, values, tf.zeros_like(values)))
    count = tf.reduce_sum(tf.cast(mask, values.dtype))
    return tf.math.divide_no_nan(total, count)


def triplet_hinge(d_ap, d_an, margin):
    """FaceNet per-triplet loss max(d_ap − d_an + α, 0) on given distances."""
    return tf.nn.relu(d_ap - d_an + margin)


def _check_mining(mining: str) -> None:
    if mining not in MINING_MODES:
        raise ValueError(
            f"Unknown triplet mining {mining!r}; valid choices: "
            + ", ".join(repr(m) for m in MINING_MODES)
        )


# ----------------------------------------------------------------------------
# Mining strategies: each maps (labels, squared distances, margin) -> scalar
# ----------------------------------------------------------------------------


def _semi_hard(labels, d2, margin):
    pos = positive_pair_mask(labels)
    neg = negative_pair_mask(labels)
    d_ap = d2[:, :, None]  # [a, p, ·]
    d_an = d2[:, None, :]  # [a, ·, n]
    farther = tf.logical_and(neg[:, None, :], d_an > d_ap)
    nearest_farther, has_farther = _masked_min(d_an, farther, axis=2)
    farthest_negative, has_negative = _masked_max(d2, neg, axis=1)
    chosen = tf.where(has_farther, nearest_farther, farthest_negative[:, None])
    valid = tf.logical_and(pos, has_negative[:, None])
    return _masked_mean(triplet_hinge(d2, chosen, margin), valid)


def _batch_hard(labels, d2, margin):
    hardest_pos, has_pos = _masked_max(d2, positive_pair_mask(labels), axis=1)
    hardest_neg, has_neg = _masked_min(d2, negative_pair_mask(labels), axis=1)
    losses = triplet_hinge(hardest_pos, hardest_neg, margin)
    return _masked_mean(losses, tf.logical_and(has_pos, has_neg))


def _batch_all(labels, d2, margin):
    losses = triplet_hinge(d2[:, :, None], d2[:, None, :], margin)
    valid = tf.logical_and(
        positive_pair_mask(labels)[:, :, None], negative_pair_mask(labels)[:, None, :]
    )
    active = tf.logical_and(valid, losses > _ACTIVE_LOSS)
    return _masked_mean(losses, active)


# ----------------------------------------------------------------------------
# Distance-weighted sampling (Wu et al., ICCV 2017)
# ----------------------------------------------------------------------------


def distance_weighted_log_weights(distances, dim, cutoff=0.5, weight_cap=None):
    """log min(λ, q(d)⁻¹) for Euclidean distances on the unit sphere S^(dim−1).

    q(d) = d^(n−2) · (1 − d²/4)^((n−3)/2) / B(½, (n−1)/2) is the normalised
    density of the distance between two uniform points in R^n (Wu et al.,
    eq. 1). Working in log space matters: for n = 128, q(0.5) ≈ e^-90.
    d is clipped below at `cutoff` because q⁻¹ explodes for near neighbours,
    which are mostly label noise. `weight_cap` is λ in the same (normalised)
    units; None means no cap beyond the cutoff's.
    """
    distances = tf.convert_to_tensor(distances)
    n = tf.cast(dim, distances.dtype)
    d = tf.maximum(distances, tf.cast(cutoff, distances.dtype))
    log_norm = tf.math.lgamma(0.5 * (n - 1.0)) + tf.math.lgamma(
        tf.constant(0.5, distances.dtype)
    ) - tf.math.lgamma(0.5 * n)
    log_q = (
        (n - 2.0) * tf.math.log(d)
        + 0.5 * (n - 3.0) * tf.math.log(tf.maximum(1.0 - 0.25 * tf.square(d), _LOG_EPS))
        - log_norm
    )
    log_w = -log_q
    if weight_cap is not None:
        log_w = tf.minimum(log_w, tf.cast(math.log(weight_cap), distances.dtype))
    return log_w


def _batch_fingerprint(labels, embeddings):
    """Deterministic int32 summary of a batch, used to vary stateless seeds."""
    bits = tf.bitcast(tf.cast(tf.stop_gradient(embeddings), tf.float32), tf.int32)
    positions = tf.range(1, tf.shape(labels)[0] + 1, dtype=tf.int64)
    total = tf.reduce_sum(tf.cast(bits, tf.int64)) + tf.reduce_sum(
        tf.cast(labels, tf.int64) * positions
    )
    return tf.cast(total, tf.int32)  # wraps; only determinism matters


def _categorical(logits, num_samples, seed, labels, embeddings):
    if seed is None:
        return tf.random.categorical(logits, num_samples, dtype=tf.int32)
    if isinstance(seed, numbers.Integral):
        # A fixed stateless seed would replay the same noise every step;
        # folding in a batch fingerprint gives fresh draws per batch while
        # staying reproducible and stateless (nothing to sync across replicas).
        seed = tf.stack(
            [tf.cast(tf.constant(seed, tf.int64), tf.int32), _batch_fingerprint(labels, embeddings)]
        )
    # XLA (Keras' default jit on GPU) only has StatelessMultinomial for int32 seeds.
    seed = tf.cast(seed, tf.int32)
    return tf.random.stateless_categorical(logits, num_samples, seed, dtype=tf.int32)


def sample_distance_weighted_negatives(
    labels, embeddings, cutoff=0.5, weight_cap=None, seed=None
):
    """Draw one negative per anchor-positive pair (Wu et al., ICCV 2017).

    Args:
        labels: (B,) or (B, 1) identity labels.
        embeddings: (B, D) embeddings, assumed (close to) unit-norm.
        cutoff: lower clip of d in the weights.
        weight_cap: λ, upper bound of the weights (None: no cap).
        seed: None (stateful, unseeded draw); a Python int (stateless draw,
            reproducible for the same seed and batch, different per batch);
            or a shape-[2] integer tensor used as the stateless seed (cast
            to int32), e.g. ``[seed, step]`` from a custom training loop.
            Draws are reproducible within one execution mode; XLA-compiled
            and plain graphs use different generators.

    Returns:
        (negatives, valid): int32 (B, B) where ``negatives[a, p]`` is the index
        of the negative drawn for pair (a, p), and the bool (B, B) mask of
        pairs that are real anchor-positive pairs with a negative available.
        Entries outside `valid` are arbitrary.
    """
    labels = flat_labels(labels)
    embeddings = tf.stop_gradient(as_float_embeddings(embeddings))
    neg = negative_pair_mask(labels)
    has_negative = tf.reduce_any(neg, axis=1)
    log_w = distance_weighted_log_weights(
        pairwise_distances(embeddings), tf.shape(embeddings)[1], cutoff, weight_cap
    )
    logits = tf.where(neg, log_w, tf.constant(float("-inf"), log_w.dtype))
    # All -inf rows are undefined for categorical; they are masked out anyway.
    logits = tf.where(has_negative[:, None], logits, tf.zeros_like(logits))
    batch = tf.shape(labels)[0]
    negatives = _categorical(logits, batch, seed, labels, embeddings)
    valid = tf.logical_and(positive_pair_mask(labels), has_negative[:, None])
    return negatives, valid


def _distance_weighted(labels, d2, margin, embeddings, cutoff, weight_cap, seed):
    negatives, valid = sample_distance_weighted_negatives(
        labels, embeddings, cutoff, weight_cap, seed
    )
    d_an = tf.gather(d2, negatives, batch_dims=1)  # d2[a, negatives[a, p]]
    return _masked_mean(triplet_hinge(d2, d_an, margin), valid)


# ----------------------------------------------------------------------------
# Public pure functions
# ----------------------------------------------------------------------------


def triplet_loss(
    labels,
    embeddings,
    margin=0.2,
    mining="semi-hard",
    *,
    seed=None,
    cutoff=0.5,
    weight_cap=None,
):
    """Batch triplet loss on squared Euclidean distances (FaceNet).

    Args:
        labels: (B,) or (B, 1) identity labels (int or integral float).
        embeddings: (B, D) embeddings.
        margin: α of the hinge, in squared-distance units.
        mining: one of MINING_MODES (see the module docstring).
        seed, cutoff, weight_cap: only for ``mining="distance-weighted"``;
            see `sample_distance_weighted_negatives`.

    Returns:
        Scalar loss tensor.
    """
    _check_mining(mining)
    labels = flat_labels(labels)
    embeddings = as_float_embeddings(embeddings)
    d2 = pairwise_squared_distances(embeddings)
    margin = tf.cast(margin, d2.dtype)
    if mining == "semi-hard":
        return _semi_hard(labels, d2, margin)
    if mining == "batch-hard":
        return _batch_hard(labels, d2, margin)
    if mining == "batch-all":
        return _batch_all(labels, d2, margin)
    return _distance_weighted(labels, d2, margin, embeddings, cutoff, weight_cap, seed)


def margin_loss(
    labels,
    embeddings,
    beta=1.2,
    margin=0.2,
    *,
    seed=None,
    cutoff=0.5,
    weight_cap=None,
):
    """Margin-based loss with distance-weighted sampling (Wu et al., ICCV 2017).

    For every anchor-positive pair (a, p) and its sampled negative n, on
    (non-squared) Euclidean distances:

        max(α + d_ap − β, 0) + max(α + β − d_an, 0)

    normalised by the number of pair terms that are > 0, as in the authors'
    implementation. `beta` may be a `tf.Variable` to learn the boundary β
    (train it with the model variables; the paper's ν-regulariser on β is
    left to the caller).
    """
    labels = flat_labels(labels)
    embeddings = as_float_embeddings(embeddings)
    d = pairwise_distances(embeddings)
    beta = tf.cast(beta, d.dtype)
    margin = tf.cast(margin, d.dtype)
    negatives, valid = sample_distance_weighted_negatives(
        labels, embeddings, cutoff, weight_cap, seed
    )
    d_an = tf.gather(d, negatives, batch_dims=1)
    zeros = tf.zeros_like(d)
    pos_loss = tf.where(valid, tf.nn.relu(margin + d - beta), zeros)
    neg_loss = tf.where(valid, tf.nn.relu(margin + beta - d_an), zeros)
    active = tf.reduce_sum(tf.cast(pos_loss > 0, d.dtype)) + tf.reduce_sum(
        tf.cast(neg_loss > 0, d.dtype)
    )
    return tf.math.divide_no_nan(tf.reduce_sum(pos_loss + neg_loss), active)


# ----------------------------------------------------------------------------
# Keras wrappers
# ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="facegate")
class TripletLoss(MetricLoss):
    """`triplet_loss` as a Keras loss (see the module docstring for the mining modes)."""

    def __init__(self, margin=0.2, mining="semi-hard", *, seed=None, cutoff=0.5, weight_cap=None,
                 name="triplet_loss", **kwargs):
        _check_mining(mining)  # fail at construction, not at first trace
        super().__init__(triplet_loss, name=name, margin=margin, mining=mining, seed=seed, cutoff=cutoff,
                         weight_cap=weight_cap, **kwargs)


@keras.saving.register_keras_serializable(package="facegate")
class MarginLoss(MetricLoss):
    """`margin_loss` as a Keras loss (fixed β; see its docstring)."""

    def __init__(self, beta=1.2, margin=0.2, *, seed=None, cutoff=0.5, weight_cap=None,
                 name="margin_loss", **kwargs):
        super().__init__(margin_loss, name=name, beta=beta, margin=margin, seed=seed, cutoff=cutoff,
                         weight_cap=weight_cap, **kwargs)
