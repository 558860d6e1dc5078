"""Fold batch norms into the preceding kernel before conversion, keeping the architecture.

Left to itself, the TFLite converter moved the global depthwise conv's batch-norm gain into
the next layer (the embedding's FULLY_CONNECTED): the 512 channels between them were rounded
to int8 *before* a gain of up to 10x, and stage 22's int8 embeddings agreed with Keras at
cosine 0.988. Folded here, the gain sits in the depthwise kernel (rounded per channel) and
the rounded tensor is the one the network computes: 0.997 (docs/model.md, "Folding").

The kernel takes gamma / sqrt(var + eps); the batch norm is left as a pure bias (gamma 1,
mean 0, var 1 - eps), so the result computes the same function and loads as the same encoder.
"""

from __future__ import annotations

import numpy as np

import keras

FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def producer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The layer whose output is ``layer``'s (first) input."""
    return layer._inbound_nodes[0].input_tensors[0]._keras_history.operation  # noqa: SLF001


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """A copy of ``model`` in which every batch norm after a bias-free kernel is folded in."""
    folded = keras.models.clone_model(model)
    folded.set_weights(model.get_weights())
    for bn in folded.layers:
        if not isinstance(bn, keras.layers.BatchNormalization):
            continue
        source = producer(bn)
        if not isinstance(source, FOLDABLE) or source.use_bias or len(source._outbound_nodes) != 1:  # noqa: SLF001
            raise ValueError(f"cannot fold {bn.name}: it must follow one bias-free kernel layer")
        gamma, beta, mean, var = (np.asarray(w) for w in bn.get_weights())
        k = gamma / np.sqrt(var + bn.epsilon)
        kernel = np.asarray(source.get_weights()[0])
        if isinstance(source, keras.layers.DepthwiseConv2D):  # (kh, kw, in, multiplier)
            kernel = kernel * k.reshape(kernel.shape[2:])
        else:
            kernel = kernel * k
        source.set_weights([kernel.astype(np.float32)])
        bn.set_weights([np.ones_like(gamma), (beta - mean * k).astype(np.float32),
                        np.zeros_like(mean), np.full_like(var, 1.0 - bn.epsilon)])
    return folded
