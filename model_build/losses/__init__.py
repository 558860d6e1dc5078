"""Metric-learning losses for the face encoder.

Pure functions ``fn(labels, embeddings, ...) -> scalar`` with thin
`keras.losses.Loss` wrappers (y_true = integer labels (B,) or (B, 1),
y_pred = embeddings (B, D)), in the style of tensorflow-similarity.
`get_loss(name, **kwargs)` builds a wrapper from a config string.
"""

from __future__ import annotations

from model_build.losses.binary_head import (
    BinaryPairLoss,
    PairClassifierHead,
    pairwise_binary_loss,
)
from model_build.losses.contrastive import ContrastiveLoss, contrastive_loss
from model_build.losses.distances import (
    pairwise_distances,
    pairwise_squared_distances,
)
from model_build.losses.triplet import (
    MINING_MODES,
    MarginLoss,
    TripletLoss,
    distance_weighted_log_weights,
    margin_loss,
    sample_distance_weighted_negatives,
    triplet_hinge,
    triplet_loss,
)

_FACTORIES = {
    "triplet-semi-hard": lambda **kw: TripletLoss(mining="semi-hard", **kw),
    "triplet-batch-hard": lambda **kw: TripletLoss(mining="batch-hard", **kw),
    "triplet-batch-all": lambda **kw: TripletLoss(mining="batch-all", **kw),
    "triplet-distance-weighted": lambda **kw: TripletLoss(mining="distance-weighted", **kw),
    "margin": lambda **kw: MarginLoss(**kw),
    "contrastive": lambda **kw: ContrastiveLoss(**kw),
    "binary-head": lambda **kw: BinaryPairLoss(chi_squared=False, **kw),
    "binary-head-chi2": lambda **kw: BinaryPairLoss(chi_squared=True, **kw),
}

from model_build.loss_names import LOSS_NAMES  # noqa: E402

assert set(LOSS_NAMES) == set(_FACTORIES), "keep model_build/loss_names.py in step with the factories"


def get_loss(name: str, **kwargs):
    """Keras loss for a config name; kwargs go to the wrapper's constructor.

    e.g. ``get_loss("triplet-semi-hard", margin=0.3)`` or
    ``get_loss("binary-head", embedding_dim=128)``.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"Unknown loss {name!r}; valid names: " + ", ".join(LOSS_NAMES)
        ) from None
    return factory(**kwargs)


__all__ = [
    "BinaryPairLoss",
    "ContrastiveLoss",
    "LOSS_NAMES",
    "MINING_MODES",
    "MarginLoss",
    "PairClassifierHead",
    "TripletLoss",
    "contrastive_loss",
    "distance_weighted_log_weights",
    "get_loss",
    "margin_loss",
    "pairwise_binary_loss",
    "pairwise_distances",
    "pairwise_squared_distances",
    "sample_distance_weighted_negatives",
    "triplet_hinge",
    "triplet_loss",
]
