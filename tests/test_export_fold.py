"""The export folds batch norms into the kernels before the TFLite converter sees them:
the function stays the same, and the int8 model rounds the tensors the network computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="model_build tests need the 'build' extra")

import keras  # noqa: E402
from daemon.faces.align import normalize_crop  # noqa: E402
from model_build.export.fold import fold_batch_norms  # noqa: E402
from model_build.export.tflite import agreement, convert  # noqa: E402
from model_build.models.encoder import build_encoder  # noqa: E402


def _encoder(gdc_gain: float = 1.0, seed: int = 0) -> keras.Model:
    """A small encoder whose batch norms hold trained-looking statistics, not the identity.
    ``gdc_gain`` shrinks half the global depthwise conv's channels by that factor and lets its
    batch norm scale them back up: what training does to near-dead channels, exaggerated."""
    keras.utils.set_random_seed(seed)
    model = build_encoder(width=0.25)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.2, 2.0, n)])
    if gdc_gain != 1.0:
        dw, bn = model.get_layer("gdc_dw"), model.get_layer("gdc_dwbn")
        kernel = dw.get_weights()[0]
        kernel[:, :, ::2] /= gdc_gain
        dw.set_weights([kernel])
        gamma, beta, mean, var = (np.array(w) for w in bn.get_weights())
        gamma[::2] *= gdc_gain
        mean[::2] /= gdc_gain
        bn.set_weights([gamma, beta, mean, var])
    return model


def _crops(n: int, seed: int = 1) -> np.ndarray:
    """Face-like uint8 crops: smooth random images (the int8 ranges need structure, not noise)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n, 14, 14, 1)).astype(np.float32)
    return np.clip(np.round(tf.image.resize(small, (112, 112)).numpy()[..., 0]), 0, 255).astype(np.uint8)


def test_folding_batch_norms_keeps_the_function_and_the_architecture(tmp_path):
    model = _encoder()
    folded = fold_batch_norms(model)
    x = normalize_crop(_crops(8))
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=2e-5)
    for layer in folded.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, _, mean, var = layer.get_weights()
            np.testing.assert_array_equal(gamma, 1.0)
            np.testing.assert_array_equal(mean, 0.0)
            np.testing.assert_allclose(var + layer.epsilon, 1.0, atol=1e-7)
    # Saved, it is an encoder like any other (warm-starts and exports as one).
    folded.save(tmp_path / "f.keras")
    again = keras.models.load_model(tmp_path / "f.keras")
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), atol=2e-5)


def test_export_rounds_the_global_depthwise_output_after_its_batch_norm_gain(tmp_path):
    """Half the global depthwise conv's channels come out 1000x small and its batch norm
    scales them back: the int8 model must still agree with Keras. Left to the converter, the
    gain went into the next layer, the small channels were rounded to a few levels first,
    and the agreement fell to 0.988 here (0.9874 for stage 22's real encoder)."""
    model = _encoder(gdc_gain=1000.0)
    path = tmp_path / "m.tflite"
    path.write_bytes(convert(model, _crops(64, seed=1), int8=True))
    assert agreement(model, path, _crops(32, seed=2))["mean_cosine"] > 0.998
