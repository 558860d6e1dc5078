"""The one Keras wrapper under every metric loss (after tensorflow-similarity's
``MetricLoss``): a pure function ``fn(labels, embeddings, **options)`` plus its options."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="facegate")
class MetricLoss(keras.losses.Loss):
    """y_true = integer labels (B,) or (B, 1), y_pred = embeddings (B, D).

    The loss is a batch mean already, so ``sample_weight`` has no per-sample meaning.
    dtype defaults to float32 because Keras casts y_true to the loss dtype: float16
    would merge identity labels above 2048. Subclasses pass their function and
    options; ``get_config`` returns the options, so ``from_config`` rebuilds the loss.
    """

    def __init__(self, fn, *, name: str, dtype="float32", reduction="sum_over_batch_size", **options):
        super().__init__(name=name, dtype=dtype, reduction=reduction)
        self.fn = fn
        self.options = options

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.options)

    def get_config(self):
        return {**super().get_config(), **self.options}
