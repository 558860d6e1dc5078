"""Losses for the face encoder.

Metric losses are pure functions ``fn(labels, embeddings, ...) -> scalar`` under one
thin wrapper, :class:`MetricLoss` (y_true = integer labels (B,) or (B, 1), y_pred =
embeddings (B, D)), in the style of tensorflow-similarity; ``get_loss(name, **options)``
builds one from its config name. Distillation losses (distillation.py) compare the
student with the teacher; combine.py mixes both kinds for a run.
"""

from __future__ import annotations

import importlib

from model_build.losses.names import DISTILL_LOSS_NAMES, LOSS_NAMES, METRIC_LOSS_NAMES

# Public name -> its module. Loaded on first use (PEP 562), so importing the names above
# does not start TensorFlow.
_LAZY = {
    "MetricLoss": "base",
    "BinaryPairLoss": "binary_head", "PairClassifierHead": "binary_head", "pairwise_binary_loss": "binary_head",
    "ContrastiveLoss": "contrastive", "contrastive_loss": "contrastive",
    "pairwise_distances": "distances", "pairwise_squared_distances": "distances",
    "MINING_MODES": "triplet", "MarginLoss": "triplet", "TripletLoss": "triplet",
    "distance_weighted_log_weights": "triplet", "margin_loss": "triplet",
    "sample_distance_weighted_negatives": "triplet", "triplet_hinge": "triplet", "triplet_loss": "triplet",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _factories() -> dict:
    """name -> (wrapper factory, the run options it takes). The one place that knows which
    option goes to which loss: get_loss passes each loss only its own."""
    from model_build.losses.binary_head import BinaryPairLoss
    from model_build.losses.contrastive import ContrastiveLoss
    from model_build.losses.triplet import MarginLoss, TripletLoss
    factories = {
        "triplet-semi-hard": (lambda **kw: TripletLoss(mining="semi-hard", **kw), ("margin",)),
        "triplet-batch-hard": (lambda **kw: TripletLoss(mining="batch-hard", **kw), ("margin",)),
        "triplet-batch-all": (lambda **kw: TripletLoss(mining="batch-all", **kw), ("margin",)),
        "triplet-distance-weighted": (lambda **kw: TripletLoss(mining="distance-weighted", **kw), ("margin",)),
        "margin": (lambda **kw: MarginLoss(**kw), ("margin",)),
        "contrastive": (lambda **kw: ContrastiveLoss(**kw), ("margin",)),
        "binary-head": (lambda **kw: BinaryPairLoss(chi_squared=False, **kw), ("embedding_dim",)),
        "binary-head-chi2": (lambda **kw: BinaryPairLoss(chi_squared=True, **kw), ("embedding_dim",)),
    }
    assert set(factories) == set(METRIC_LOSS_NAMES), "keep losses/names.py in step with the factories"
    return factories


def get_loss(name: str, **options):
    """Keras metric loss for a config name, given the run's options; each loss takes
    the ones it knows (see _factories) and ignores the rest.

    e.g. ``get_loss("triplet-semi-hard", margin=0.3, embedding_dim=128)``.
    """
    try:
        factory, takes = _factories()[name]
    except KeyError:
        raise ValueError(
            f"Unknown loss {name!r}; valid names: " + ", ".join(METRIC_LOSS_NAMES)
        ) from None
    return factory(**{k: v for k, v in options.items() if k in takes})


__all__ = [
    "DISTILL_LOSS_NAMES",
    "METRIC_LOSS_NAMES",
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
