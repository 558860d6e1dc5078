"""Encoder backends: the shipped model on the CPU, and clear errors where a model or the
Edge TPU runtime is missing (this machine has no libedgetpu)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from daemon.api import face_crops
from daemon.cli import main as facegate_main
from daemon.embeddings import DEFAULT_MODEL, load_encoder
from daemon.images import load_image
from daemon.runtime import ModelError


# ai-edge-litert's Delegate.__del__ trips over its own failed load; not our error to see.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_edgetpu_without_libedgetpu_is_a_clear_error():
    with pytest.raises(ModelError, match="libedgetpu"):
        load_encoder(DEFAULT_MODEL, backend="edgetpu")


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="cpu, edgetpu"):
        load_encoder(DEFAULT_MODEL, backend="gpu")


def test_missing_model_and_metadata_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_encoder(tmp_path / "nope.tflite")
    shutil.copy(DEFAULT_MODEL, tmp_path / "encoder.tflite")
    with pytest.raises(ModelError, match="model card not found"):
        load_encoder(tmp_path / "encoder.tflite")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        load_encoder(tmp_path / "encoder.tflite")
    meta = json.loads(DEFAULT_MODEL.with_name("model.json").read_text())
    meta["input"]["preprocessing"] = "something-else"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="preprocessing"):
        load_encoder(tmp_path / "encoder.tflite")


def test_shipped_model_embeds_unit_vectors_with_its_metadata():
    encoder = load_encoder()
    meta = json.loads(DEFAULT_MODEL.with_name("model.json").read_text())
    assert encoder.info.model_id == meta["model_id"]
    assert 0.0 < encoder.info.threshold < 2.0
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112), dtype=np.uint8)
    emb = encoder.embed(crops)
    assert emb.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def _pair_distances(embeddings: np.ndarray, people: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Distances of every same-person and every different-person pair."""
    people = np.asarray(people)
    d = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    upper = np.triu_indices(len(people), 1)
    same = (people[:, None] == people[None])[upper]
    return d[upper][same], d[upper][~same]


def test_shipped_model_puts_the_same_person_closer_than_different_people(encoder_model, face_fixtures):
    """Discrimination, not just shape: on the fixture photos (four people, six each) a
    same-person pair is closer than a different-person pair far more often than chance,
    and on average by a clear margin. An encoder returning noise, a constant, or another
    image's vector scores ~0.5 and ~0; any usable face model clears both with room."""
    encoder = load_encoder(encoder_model)
    photos = sorted(face_fixtures.glob("*/*.jpg"))
    crops = [face_crops(load_image(p), encoder=encoder)[0].crop for p in photos]
    same, different = _pair_distances(encoder.embed(np.stack(crops)), [p.parent.name for p in photos])
    # Mann-Whitney: how often a random same pair is closer than a random different pair.
    closer = (same[:, None] < different[None]).mean()
    assert closer > 0.75, f"same pair closer in only {closer:.0%} of comparisons"
    assert different.mean() - same.mean() > 0.2, (same.mean(), different.mean())
    # Embedding one at a time gives the batch's vectors (no batch mixing).
    np.testing.assert_allclose(encoder.embed(crops[5]), encoder.embed(np.stack(crops))[5:6], atol=1e-5)


def test_embed_cli_reports_faces_and_errors_per_image(tmp_path, capsys, face_fixtures):
    photo = sorted(face_fixtures.glob("*/*.jpg"))[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert facegate_main(["embed", "--json", str(photo), str(bad)]) == 0  # one of two worked
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert len(first["faces"]) >= 1 and first["faces"][0]["score"] > 0.5
    assert len(first["embedding"]) == 128 and first["model_id"].startswith("fg-")
    assert second["embedding"] is None and "error" in second
    assert facegate_main(["embed", str(bad)]) == 1


def test_int8_quantisation_uses_the_tensors_scale_and_zero_point():
    from daemon.runtime import dequantize, quantize
    q = quantize(np.array([1.0, -1.0, 100.0]), np.int8, (0.5, 10))
    assert q.dtype == np.int8 and q.tolist() == [12, 8, 127], "x / scale + zero point, clipped"
    np.testing.assert_allclose(dequantize(np.array([12, 8], np.int8), np.int8, (0.5, 10)), [1.0, -1.0])
    x = np.array([0.25], np.float32)
    assert quantize(x, np.float32, (0.0, 0)) is x, "float models take floats as they are"
