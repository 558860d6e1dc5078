"""Quantisation-aware fine-tuning's simulated rounding against the real TFLite converter."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="model_build tests need the 'build' extra")

import keras  # noqa: E402
from model_build.export.fold import fold_batch_norms  # noqa: E402
from model_build.quantization.fake_quant import (  # noqa: E402
    calibrate, fake_quant_kernel, quantization_aware, quantized_outputs)
from test_export_fold import _cos, _crops, _encoder, _run_int8, _tflite  # noqa: E402


def test_simulated_kernel_rounding_is_the_converters(tmp_path):
    """Every kernel in the int8 file, dequantised, equals fake_quant_kernel of the folded kernel."""
    model = _encoder()
    folded = fold_batch_norms(model)
    it = _tflite(model, _crops(16), tmp_path)
    stored = {}
    for t in it.get_tensor_details():
        q = t["quantization_parameters"]
        if t["dtype"] == np.int8 and len(q["scales"]) > 1:
            w = it.get_tensor(t["index"]).astype(np.float32)
            axis = q["quantized_dimension"]
            stored[t["name"]] = w * q["scales"].reshape([-1 if a == axis else 1 for a in range(w.ndim)])
    checked = 0
    for layer in folded.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            sim = fake_quant_kernel(tf.constant(layer.get_weights()[0]), depthwise).numpy()
            # TFLite layouts: conv (out, kh, kw, in), depthwise (1, kh, kw, c), dense (out, in)
            sim = (sim.transpose(3, 0, 1, 2) if isinstance(layer, keras.layers.Conv2D) and not depthwise
                   else sim.transpose(3, 0, 1, 2) if depthwise else sim.T)
            match = [n for n in stored if f"/{layer.name}_1/" in n or f"/{layer.name}/" in n]
            assert len(match) == 1, (layer.name, match)
            np.testing.assert_allclose(stored[match[0]], sim, atol=1e-6, err_msg=layer.name)
            checked += 1
    assert checked == len([n for n in stored])


def test_simulated_activations_sit_where_the_int8_model_stores_tensors(tmp_path):
    """One rounded tensor per op of the int8 model: the quantised outputs (convs with their
    fused ReLU6, project and global depthwise batch norms, adds, the embedding) plus the L2 output."""
    model = _encoder()
    points = quantized_outputs(model)
    assert {"block0_0_project_bn", "block0_1_add", "gdc_dwbn", "embedding_bn", "head_relu"} <= points
    assert not {"stem_bn", "head_bn", "block0_0_dwbn", "flatten"} & points  # a fused ReLU follows
    it = _tflite(model, _crops(16), tmp_path)
    ops = [op for op in it._get_ops_details() if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE", "DELEGATE")]  # noqa: SLF001
    assert len(ops) == len(points) + 1


def test_simulated_int8_model_is_close_to_the_real_one(tmp_path):
    """The simulation rounds as much as the converter does: both int8 models are far from
    float by about the same amount, and closer to each other than chance rounding would allow."""
    model = _encoder()
    folded = fold_batch_norms(model)
    cal, x = _crops(64, seed=1), _crops(32, seed=2)
    qat = quantization_aware(folded)
    calibrate(qat, folded, cal)
    real = _run_int8(_tflite(model, cal, tmp_path), x)
    sim = qat(x, training=False).numpy()
    ref = model(x, training=False).numpy()
    gap_real, gap_sim = 1 - _cos(real, ref).mean(), 1 - _cos(sim, ref).mean()
    assert 0.3 < gap_sim / gap_real < 3, (gap_sim, gap_real)
    assert 1 - _cos(real, sim).mean() < gap_real + gap_sim
