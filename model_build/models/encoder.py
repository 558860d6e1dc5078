"""MobileNet-style face encoder: grayscale crop -> 128-d unit embedding.

The body follows MobileFaceNet (Chen et al., "MobileFaceNets: Efficient CNNs for
Accurate Real-Time Face Verification on Mobile Devices", 2018): a strided stem,
MobileNetV2 inverted-residual blocks (Sandler et al., CVPR 2018), and a global
depthwise convolution instead of average pooling, because face embeddings need
to know *where* a feature is, not only that it is present.

It keeps MobileFaceNet's size (about 1 M parameters, near 1 MB in int8) but moves
the compute to where faces are told apart: the stem reaches 28x28 with a strided
depthwise convolution, so the 56x56 and 28x28 stages that dominate MobileFaceNet's
cost are cheap, and the width sits at 14x14 and 7x7. That makes it about 3x cheaper
to run and to train on a CPU than MobileFaceNet (docs/model.md has the figures).

Every op maps to an int8 TFLite builtin that the Edge TPU compiler supports
(CONV_2D, DEPTHWISE_CONV_2D, ADD, RELU6 fused, FULLY_CONNECTED, L2_NORMALIZATION).
"""

from __future__ import annotations

import tensorflow as tf

import keras  # Keras 3 (tf.keras in TF 2.21 is the same package)

STEM = 32
# (expansion, output channels, repeats, first stride), after the stem's 112 -> 28
BLOCKS = (
    (2, 48, 2, 1),    # 28
    (2, 96, 3, 2),    # 28 -> 14
    (2, 128, 3, 1),   # 14
    (3, 160, 2, 2),   # 14 -> 7
)
HEAD = 512
BN_MOMENTUM = 0.9  # short runs: a slower average leaves inference-mode embeddings collapsed
# The global depthwise conv's batch norm multiplies each channel by gamma / sqrt(var + eps).
# Training drives a few channels' variance to ~4e-4; with Keras's eps of 1e-3 that gain
# reached 41-46, and it multiplies the int8 rounding of those channels' 7x7 input, which
# pulled stage 9's int8 model 0.5 points under its float one (docs/model.md, "Stage 9").
# A larger eps bounds the gain (about 10 * |gamma|) and quietens only near-dead channels.
GDC_BN_EPSILON = 1e-2
# What runs saved before stage 10 were built with; their train_config.json has no
# "gdc_bn_epsilon", and resuming or reloading them must rebuild the same network.
PRE_STAGE10_GDC_BN_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="facegate")
class L2Normalize(keras.layers.Layer):
    """tf.math.l2_normalize, which converts to the int8 L2_NORMALIZATION op
    (keras.layers.UnitNormalization would leave float ops in the int8 graph)."""

    def call(self, inputs):
        return tf.math.l2_normalize(inputs, axis=-1)


def _conv_bn(x, filters, kernel, stride, name, activation=True):
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if activation else x


def _depthwise_bn(x, stride, name, kernel=3, padding="same", epsilon=1e-3):
    x = keras.layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False,
                                     name=f"{name}_dw")(x)
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=epsilon, name=f"{name}_dwbn")(x)


def _inverted_residual(x, expansion, filters, stride, name):
    inputs = x
    x = _conv_bn(x, x.shape[-1] * expansion, 1, 1, f"{name}_expand")
    x = keras.layers.ReLU(6.0, name=f"{name}_dwrelu")(_depthwise_bn(x, stride, name))
    x = _conv_bn(x, filters, 1, 1, f"{name}_project", activation=False)
    if stride == 1 and inputs.shape[-1] == filters:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def build_encoder(input_size: int = 112, embedding_size: int = 128, width: float = 1.0,
                  dropout: float = 0.0, blocks=BLOCKS,
                  gdc_bn_epsilon: float = GDC_BN_EPSILON) -> keras.Model:
    """The encoder: (input_size, input_size, 1) floats in [-1, 1] -> unit embeddings."""
    def w(c):
        return max(8, int(round(c * width / 8)) * 8)

    inputs = keras.Input((input_size, input_size, 1), name="crop")
    x = _conv_bn(inputs, w(STEM), 3, 2, "stem")
    x = keras.layers.ReLU(6.0, name="stem_dwrelu")(_depthwise_bn(x, 2, "stem"))
    x = _conv_bn(x, w(STEM), 1, 1, "stem_pw")
    for b, (expansion, filters, repeats, stride) in enumerate(blocks):
        for r in range(repeats):
            x = _inverted_residual(x, expansion, w(filters), stride if r == 0 else 1,
                                   f"block{b}_{r}")
    x = _conv_bn(x, w(HEAD), 1, 1, "head")
    # Global depthwise conv: a learned per-position weighting of the final 7x7 map.
    x = _depthwise_bn(x, 1, "gdc", kernel=x.shape[1], padding="valid", epsilon=gdc_bn_epsilon)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(embedding_size, use_bias=False, name="embedding_dense")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="embedding_bn")(x)
    outputs = L2Normalize(name="embedding")(x)
    return keras.Model(inputs, outputs, name="facegate_encoder")
