"""The TFLite converter's int8 rounding, simulated in float so that training can see it.

What the converter does (and so what is simulated here):
- kernels: symmetric int8 per output channel, scale = max|w| / 127;
- activations: asymmetric int8 per tensor, range = the min and max seen on the
  calibration crops; a tensor is quantised where one op hands it to the next, i.e. after
  a fused ReLU6, after a batch norm that no ReLU follows, after an add, and after the
  L2 normalisation (fixed scale 1/128).
Rounding uses TensorFlow's FakeQuant ops, whose gradient passes straight through
inside the range (Bengio et al., 2013; Jacob et al., CVPR 2018).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import keras
from model_build.models.encoder import L2Normalize
from model_build.export.fold import consumers

L2_RANGE = (-1.0, 127.0 / 128.0)  # TFLite's fixed int8 output of L2_NORMALIZATION


def fake_quant_kernel(kernel: tf.Tensor, depthwise: bool = False) -> tf.Tensor:
    """Per-output-channel symmetric int8 rounding of a kernel (last axis = channel)."""
    w = tf.reshape(kernel, [*kernel.shape[:2], -1]) if depthwise else kernel
    m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(w), axis=list(range(len(w.shape) - 1))), 1e-8))
    q = tf.quantization.fake_quant_with_min_max_vars_per_channel(w, -m, m, num_bits=8, narrow_range=True)
    return tf.reshape(q, kernel.shape) if depthwise else q


class _OutputRange:
    """The calibrated (min, max) of a layer's output, as non-trainable variables."""

    def _add_range(self):
        self.q_min = self.add_weight(shape=(), initializer="zeros", trainable=False, name="q_min")
        self.q_max = self.add_weight(shape=(), initializer="ones", trainable=False, name="q_max")

    def quantize_output(self, x):
        lo, hi = tf.minimum(self.q_min, 0.0), tf.maximum(self.q_max, 0.0)
        return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8, narrow_range=False)


class QConv2D(keras.layers.Conv2D):
    @property
    def kernel(self):
        return fake_quant_kernel(super().kernel)


class QDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    def call(self, inputs):  # its kernel is a plain attribute, not a property to override
        x = keras.ops.depthwise_conv(inputs, fake_quant_kernel(self.kernel, depthwise=True),
                                     strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        x = x + self.bias if self.use_bias else x  # channels_last, as the encoder is built
        return self.activation(x) if self.activation is not None else x


class QDense(keras.layers.Dense):
    @property
    def kernel(self):
        return fake_quant_kernel(super().kernel)


class QReLU(_OutputRange, keras.layers.ReLU):
    def build(self, input_shape):
        super().build(input_shape)
        self._add_range()

    def call(self, inputs):
        return self.quantize_output(super().call(inputs))


class QBatchNormalization(_OutputRange, keras.layers.BatchNormalization):
    def build(self, input_shape):
        super().build(input_shape)
        self._add_range()

    def call(self, inputs, training=None, mask=None):
        return self.quantize_output(super().call(inputs, training=training, mask=mask))


class QAdd(_OutputRange, keras.layers.Add):
    def build(self, input_shape):
        super().build(input_shape)
        self._add_range()

    def call(self, inputs):
        return self.quantize_output(super().call(inputs))


class QL2Normalize(L2Normalize):
    def call(self, inputs):
        return tf.quantization.fake_quant_with_min_max_args(super().call(inputs), *L2_RANGE, num_bits=8)


KERNELS = {keras.layers.Conv2D: QConv2D, keras.layers.DepthwiseConv2D: QDepthwiseConv2D,
           keras.layers.Dense: QDense}


def quantized_outputs(model: keras.Model) -> set[str]:
    """Names of the layers whose output the int8 model stores as an int8 tensor."""
    readers = consumers(model)
    names = set()
    for layer in model.layers:
        if isinstance(layer, (keras.layers.ReLU, keras.layers.Add)):
            names.add(layer.name)
        elif isinstance(layer, keras.layers.BatchNormalization) and not any(
                isinstance(r, keras.layers.ReLU) for r in readers[layer.name]):
            names.add(layer.name)  # a ReLU that follows is fused; its output is the tensor
    return names


def quantization_aware(folded: keras.Model) -> keras.Model:
    """The folded encoder with the converter's rounding simulated; shares no variables
    with ``folded`` (copy the weights back with ``copy_weights``). Call ``calibrate`` first."""
    points = quantized_outputs(folded)
    output_classes = {keras.layers.ReLU: QReLU, keras.layers.BatchNormalization: QBatchNormalization,
                      keras.layers.Add: QAdd}

    def clone(layer):
        cls = type(layer)
        if cls in KERNELS:
            return KERNELS[cls].from_config(layer.get_config())
        if layer.name in points:
            return output_classes[cls].from_config(layer.get_config())
        if cls is L2Normalize:
            return QL2Normalize.from_config(layer.get_config())
        return cls.from_config(layer.get_config())

    qat = keras.models.clone_model(folded, clone_function=clone)
    copy_weights(folded, qat)
    return qat


def copy_weights(src: keras.Model, dst: keras.Model) -> None:
    """Copy every weight both models have (matched by layer name), ranges excluded."""
    for layer in src.layers:
        target = dst.get_layer(layer.name)
        for a, b in zip(layer.weights, target.weights):
            b.assign(a)


def calibrate(qat: keras.Model, folded: keras.Model, crops: np.ndarray, batch: int = 100) -> None:
    """Set every quantised output's range to the min and max it takes on ``crops``
    (normalised float inputs) in float, as the converter calibrates. ``folded`` is the
    float twin of ``qat``; it gets ``qat``'s current weights first."""
    copy_weights(qat, folded)
    layers = [layer for layer in qat.layers if isinstance(layer, _OutputRange)]
    probe = keras.Model(folded.input, [folded.get_layer(layer.name).output for layer in layers])
    lo = np.full(len(layers), np.inf)
    hi = np.full(len(layers), -np.inf)
    for i in range(0, len(crops), batch):
        for j, out in enumerate(probe(crops[i:i + batch], training=False)):
            out = np.asarray(out)
            lo[j], hi[j] = min(lo[j], out.min()), max(hi[j], out.max())
    for layer, a, b in zip(layers, lo, hi):
        layer.q_min.assign(a)
        layer.q_max.assign(b)
