"""A weighted mix of losses for one training run, from a spec like
``"distill=1,relational=1,triplet-semi-hard=0.5"``.

``distill`` and ``relational`` (losses/distillation.py) use every row of a batch and the
teacher's vectors; ``centre`` and a metric loss (any of METRIC_LOSS_NAMES,
losses/__init__.py) use only the first ``labelled`` rows, the P x K rows whose labels
name people.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_build.losses.names import DISTILL_LOSS_NAMES, LOSS_NAMES


@dataclass
class LossMix:
    weights: dict[str, float]
    metric: object = None           # a keras Loss on (labels, embeddings), or None
    metric_name: str = ""
    _head: object = field(default=None, repr=False)
    # (people, D) the teacher's centre of each person in the target space, for ``centre``;
    # set by the training run once it knows the data (distillation.identity_centres).
    centres: object = field(default=None, repr=False)

    @property
    def needs_labels(self) -> bool:
        """Whether batches must start with the labelled P x K rows."""
        return self.metric is not None or "centre" in self.weights

    def __call__(self, emb, target, teacher, labels, labelled: int) -> dict:
        import tensorflow as tf

        from model_build.losses.distillation import embedding_regression, relational_cosine
        terms = {}
        if "distill" in self.weights:
            terms["distill"] = embedding_regression(target, emb)
        if "relational" in self.weights:
            terms["relational"] = relational_cosine(teacher, emb)
        if "centre" in self.weights:
            if self.centres is None:
                raise ValueError("the centre loss needs the people's centres (LossMix.centres)")
            terms["centre"] = embedding_regression(tf.gather(self.centres, labels[:labelled]), emb[:labelled])
        if self.metric is not None:
            terms[self.metric_name] = self.metric(labels[:labelled], emb[:labelled])
        return terms

    def trainable_variables(self) -> list:
        return list(self._head.trainable_variables) if self._head is not None else []

    def checkpointables(self) -> dict:
        return {"head": self._head} if self._head is not None else {}


def parse_spec(spec: str) -> dict[str, float]:
    """'distill=1,triplet-semi-hard=0.5' -> {name: weight}; a bare name weighs 1.
    Raises ValueError naming the bad part."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {name!r} in {spec!r}; choose from {', '.join(LOSS_NAMES)}")
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"loss weight {weight!r} for {name} is not a number") from None
        if weights[name] < 0:
            raise ValueError(f"loss weight for {name} must be >= 0")
    weights = {n: w for n, w in weights.items() if w > 0}
    metric = [n for n in weights if n not in DISTILL_LOSS_NAMES]
    if len(metric) > 1:
        raise ValueError(f"at most one metric loss per run, got {', '.join(metric)}")
    if not weights:
        raise ValueError(f"no loss with a positive weight in {spec!r}")
    return weights


def parse_losses(spec: str, margin: float, embedding_size: int) -> LossMix:
    """The LossMix for a spec; margin and embedding_size go to the metric loss that takes them."""
    from model_build.losses import get_loss
    weights = parse_spec(spec)
    metric_names = [n for n in weights if n not in DISTILL_LOSS_NAMES]
    if not metric_names:
        return LossMix(weights)
    name = metric_names[0]
    metric = get_loss(name, margin=margin, embedding_dim=embedding_size)
    head = getattr(metric, "head", None)
    if head is not None and not head.built:
        head.build((None, embedding_size))
    return LossMix(weights, metric, name, head)
