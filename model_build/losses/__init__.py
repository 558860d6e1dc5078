"""Losses for the face encoder.

Metric losses are pure functions ``fn(labels, embeddings, ...) -> scalar`` under one
thin wrapper, :class:`MetricLoss` (y_true = integer labels (B,) or (B, 1), y_pred =
embeddings (B, D)), in the style of tensorflow-similarity; ``get_loss(name, **options)``
builds one from its config name. Distillation losses (distillation.py) compare the
student with the teacher; combine.py mixes both kinds for a run.
"""

from __future__ import annotations

from model_build.losses.base import MetricLoss
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

# name -> (wrapper factory, the run options it takes). The one place that knows which
# option goes to which loss: get_loss passes each loss only its own.
_FACTORIES = {
    "triplet-semi-hard": (lambda **kw: TripletLoss(mining="semi-hard", **kw), ("margin",)),
    "triplet-batch-hard": (lambda **kw: TripletLoss(mining="batch-hard", **kw), ("margin",)),
    "triplet-batch-all": (lambda **kw: TripletLoss(mining="batch-all", **kw), ("margin",)),
    "triplet-distance-weighted": (lambda **kw: TripletLoss(mining="distance-weighted", **kw), ("margin",)),
    "margin": (lambda **kw: MarginLoss(**kw), ("margin",)),
    "contrastive": (lambda **kw: ContrastiveLoss(**kw), ("margin",)),
    "binary-head": (lambda **kw: BinaryPairLoss(chi_squared=False, **kw), ("embedding_dim",)),
    "binary-head-chi2": (lambda **kw: BinaryPairLoss(chi_squared=True, **kw), ("embedding_dim",)),
}

from model_build.loss_names import METRIC_LOSS_NAMES  # noqa: E402

assert set(METRIC_LOSS_NAMES) == set(_FACTORIES), "keep model_build/loss_names.py in step with the factories"
LOSS_NAMES = METRIC_LOSS_NAMES


def get_loss(name: str, **options):
    """Keras metric loss for a config name, given the run's options; each loss takes
    the ones it knows (see _FACTORIES) and ignores the rest.

    e.g. ``get_loss("triplet-semi-hard", margin=0.3, embedding_dim=128)``.
    """
    try:
        factory, takes = _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"Unknown loss {name!r}; valid names: " + ", ".join(METRIC_LOSS_NAMES)
        ) from None
    return factory(**{k: v for k, v in options.items() if k in takes})


__all__ = [
    "BinaryPairLoss",
    "ContrastiveLoss",
    "LOSS_NAMES",
    "MINING_MODES",
    "MarginLoss",
    "MetricLoss",
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
