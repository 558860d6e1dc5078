"""An exponential moving average of a model's weights, kept beside the training weights.

The average of the weights along the last few thousand steps generalises a little better
than the last step's weights (Polyak & Juditsky 1992; Izmailov et al., "Averaging Weights
Leads to Wider Optima", UAI 2018), and costs one multiply-add per weight and step.
Every weight is averaged, batch-norm statistics included, so the averaged model is one
whole network, as averaging two stages' weights by hand was ("Stage 20", docs/model.md).
"""

from __future__ import annotations

from contextlib import contextmanager

import tensorflow as tf

import keras


class WeightEMA(tf.Module):
    """shadow ← d·shadow + (1 − d)·weight after every step, d = min(decay, (1+n)/(10+n)).

    The (1+n)/(10+n) ramp (as ``tf.train.ExponentialMovingAverage``'s num_updates) lets
    the shadow of a model trained from scratch leave its random start quickly; a warm
    start begins the shadow at the loaded weights.
    """

    def __init__(self, model: keras.Model, decay: float):
        super().__init__(name="weight_ema")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must be in (0, 1), not {decay}")
        self.model, self.decay = model, decay
        self.shadow = [tf.Variable(tf.convert_to_tensor(w), trainable=False, name=f"ema_{i}") for i, w in enumerate(model.weights)]

    def update(self, steps_done: tf.Tensor) -> None:
        """Fold the current weights into the average (call after the optimizer's step)."""
        n = tf.cast(steps_done, tf.float32)
        d = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
        for s, w in zip(self.shadow, self.model.weights):
            s.assign(d * s + (1.0 - d) * tf.cast(w, s.dtype))

    def copy_to_model(self) -> None:
        """Replace the model's weights by the average."""
        for s, w in zip(self.shadow, self.model.weights):
            w.assign(s)

    @contextmanager
    def applied(self):
        """The model with the averaged weights inside the block, its own after."""
        saved = [w.numpy() for w in self.model.weights]
        self.copy_to_model()
        try:
            yield self.model
        finally:
            for w, v in zip(self.model.weights, saved):
                w.assign(v)
