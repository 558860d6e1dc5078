"""A small MobileNet-style presentation-attack classifier: face-with-context crop -> P(live).

Depthwise-separable blocks (Howard et al., "MobileNets: Efficient Convolutional Neural
Networks for Mobile Vision Applications", 2017) with ReLU6, global average pooling
and one sigmoid unit. It is kept tiny (~40 k parameters at width 1.0) on purpose: the
development data holds 7 + 8 people, and a bigger network only memorises them faster.
Every op maps to an int8 TFLite builtin (CONV_2D, DEPTHWISE_CONV_2D, MEAN,
FULLY_CONNECTED, LOGISTIC).
"""

from __future__ import annotations

import keras

# (output channels, stride) of the depthwise-separable blocks after the stem.
BLOCKS = ((32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1))
BN_MOMENTUM = 0.9  # short runs (see FACTS.md)


def _conv_bn(x, filters, kernel, stride, name):
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _separable(x, filters, stride, name):
    x = keras.layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dwbn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dwrelu")(x)
    return _conv_bn(x, filters, 1, 1, f"{name}_pw")


def build_pad_net(input_size: int = 128, width: float = 1.0, dropout: float = 0.2) -> keras.Model:
    """(input_size, input_size, 3) RGB in [-1, 1] -> (1,) live probability."""
    def w(c):
        return max(8, int(round(c * width / 8)) * 8)

    inputs = keras.Input((input_size, input_size, 3), name="crop")
    x = _conv_bn(inputs, w(16), 3, 2, "stem")
    for i, (filters, stride) in enumerate(BLOCKS):
        x = _separable(x, w(filters), stride, f"block{i}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="live")(x)
    return keras.Model(inputs, outputs, name="facegate_pad")
