"""End-to-end build: align a fixture dataset, train a few steps, export int8, load it
with the runtime, and check preprocessing is shared between training and runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="model_build tests need the 'build' extra")

from daemon.api import face_crops  # noqa: E402
from daemon.embeddings import load_encoder  # noqa: E402
from daemon.faces.detect import FaceDetector  # noqa: E402
from daemon.images import load_image  # noqa: E402
from model_build.cli import main as model_build_main  # noqa: E402
from model_build.data.datasets import DatasetError, align_folder  # noqa: E402

FACES = Path(__file__).parent / "fixtures" / "faces"
GOLDEN_FRAME = Path(__file__).parent / "fixtures" / "golden" / "frame.png"
YUNET_ONNX = Path(__file__).parent / "fixtures" / "yunet" / "face_detection_yunet_2023mar.onnx"
# A few steps of the real recipe (SFace teacher, views, distillation + triplet) on the fixtures.
TINY = ["--data", str(FACES), "--views", "2", "--p", "3", "--k", "2", "--u", "4", "--width", "0.25",
        "--checkpoint-every", "3", "--seed", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny encoder trained for a few steps on the fixture faces, then exported."""
    root = tmp_path_factory.mktemp("build")
    run, out, cache = root / "run", root / "export", root / "cache"
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "train", *TINY,
                             "--run-dir", str(run), "--steps", "6"]) == 0
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "export",
                             "--run-dir", str(run), "--out", str(out)]) == 0
    return run, out, cache


def test_training_crop_equals_runtime_crop(tmp_path):
    """The crop the encoder trains on is byte-identical to the crop the daemon embeds."""
    data = align_folder(FACES, 112, tmp_path / "cache", progress=False)
    assert len(data) > 0
    for i in range(0, len(data), max(1, len(data) // 5)):
        runtime = face_crops(load_image(FACES / data.paths[i]), size=112)[0].crop
        np.testing.assert_array_equal(data.crops[i], runtime)
    # and the cache returns the same bytes
    again = align_folder(FACES, 112, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again.crops, data.crops)


def test_exported_model_runs_with_runtime(tiny_run):
    """The runtime, loading the exported int8 file, computes the trained Keras model's
    embeddings (flip-averaged, as model.json says), not merely unit vectors of the right size."""
    from model_build.train import embed_crops, load_trained
    run, out, _ = tiny_run
    encoder = load_encoder(out / "encoder.tflite")
    crops = np.stack([face_crops(load_image(p), encoder=encoder)[0].crop for p in sorted(FACES.glob("*/*.jpg"))[::4]])
    emb = encoder.embed(crops)
    assert emb.shape == (len(crops), 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    model = load_trained(run)
    keras_emb = embed_crops(model, crops) + embed_crops(model, crops[:, :, ::-1])
    keras_emb /= np.linalg.norm(keras_emb, axis=1, keepdims=True)
    cosine = (emb * keras_emb).sum(axis=1)
    assert cosine.min() > 0.95, cosine  # int8 rounding only


def test_export_metadata_is_complete(tiny_run):
    _, out, _ = tiny_run
    meta = json.loads((out / "model.json").read_text())
    assert meta["model_id"].startswith("fg-")
    assert meta["input"] == {**meta["input"], "size": 112, "channels": 1}
    assert meta["embedding"]["size"] == 128
    assert meta["quantization"]["input"]["dtype"] == "int8"
    assert meta["quantization"]["output"]["dtype"] == "int8"
    assert "match" in meta["thresholds"]
    assert meta["training"]["training_data"]["total"]["images"] == 24
    assert meta["training"]["teacher"]["licence"] == "Apache-2.0"
    # The settings the network was built with, defaults resolved (not run.json's null).
    from model_build.models.encoder import GDC_BN_EPSILON
    assert meta["training"]["config"]["gdc_bn_epsilon"] == GDC_BN_EPSILON
    assert meta["export_check"]["int8"]["mean_cosine"] >= 0.99
    assert set(meta["ops"]) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED",
                                "L2_NORMALIZATION", "QUANTIZE", "DEQUANTIZE", "RESHAPE"}
    assert (out / "encoder_float.tflite").is_file()
    assert meta["files"]["int8"]["bytes"] == (out / "encoder.tflite").stat().st_size


def test_export_refuses_an_int8_model_that_disagrees_with_keras(tiny_run, tmp_path, monkeypatch, caplog):
    """When the int8 model drifts from Keras, export exits 1 with the figure, and the card it
    leaves (for diagnosis) has no threshold, so no daemon will load that model."""
    from daemon.embeddings.card import read_card
    from daemon.runtime import ModelError
    import model_build.export.tflite as tflite
    run, _, cache = tiny_run
    out = tmp_path / "export"
    monkeypatch.setattr(tflite, "MIN_INT8_COSINE", 1.01)  # no model can reach it
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "export",
                             "--run-dir", str(run), "--out", str(out)]) == 1
    assert "int8 embeddings disagree with the Keras model: mean cosine" in caplog.text
    card = json.loads((out / "model.json").read_text())
    assert 0.9 < card["export_check"]["int8"]["mean_cosine"] < 1.01
    assert "thresholds" not in card
    with pytest.raises(ModelError, match="thresholds"):
        read_card(out / "encoder.tflite")


def test_global_depthwise_batch_norm_cannot_amplify_a_near_dead_channel():
    """Training drives a few channels of the global depthwise conv's batch norm towards zero
    variance. Its gain must stay near 10 * |gamma| however small that variance gets: at 41-46
    it amplified int8 rounding until stage 9's int8 export fell 0.5 points under float."""
    from model_build.models.encoder import build_encoder
    bn = build_encoder(width=0.25).get_layer("gdc_dwbn")
    gamma, beta, mean, var = (np.array(w) for w in bn.get_weights())
    gamma[:], beta[:], mean[:] = 1.5, 0.0, 0.0
    var[:] = np.geomspace(1e-8, 1.0, var.size)
    bn.set_weights([gamma, beta, mean, var])
    x = np.full((1, 1, 1, var.size), 0.01, np.float32)
    gain = np.asarray(bn(x, training=False))[0, 0, 0] / x[0, 0, 0]
    assert gain.max() <= 10.0 * 1.5 + 1e-3, gain.max()
    assert gain[-1] == pytest.approx(1.5 / np.sqrt(1.01), rel=1e-3)  # a unit-variance channel keeps its gain


def test_training_resumes_from_checkpoint(tiny_run, tmp_path):
    run, _, cache = tiny_run
    resumed = tmp_path / "run"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "encoder.keras", ignore_errors=True)
    (resumed / "encoder.keras").unlink(missing_ok=True)
    history = (resumed / "history.jsonl").read_text().splitlines()
    # asking for more steps continues from step 6 instead of starting over
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "train", *TINY,
                             "--run-dir", str(resumed), "--steps", "9"]) == 0
    steps = [json.loads(line)["step"] for line in (resumed / "history.jsonl").read_text().splitlines()]
    assert steps[:len(history)] == [3, 6] and steps[len(history):] == [9]


def test_the_centre_loss_trains_on_labelled_batches(tiny_run, tmp_path):
    """`--losses distill=1,centre=1` trains from the recipe's cached views, and the centre
    term it records is a real distance (each labelled row to its person's teacher centre)."""
    _, _, cache = tiny_run
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "train", *TINY,
                             "--losses", "distill=1,centre=1", "--run-dir", str(tmp_path / "run"),
                             "--steps", "3"]) == 0
    record = json.loads((tmp_path / "run" / "history.jsonl").read_text().splitlines()[-1])
    assert 0.0 < record["centre"] < 4.0 and 0.0 < record["distill"] < 4.0


def test_a_resumed_run_rebuilds_the_batch_norm_epsilon_it_was_trained_with(tiny_run, tmp_path):
    """The epsilon is no weight, so a checkpoint cannot carry it. A run saved before stage 10
    (no "gdc_bn_epsilon" in its train_config.json) was built with 1e-3; resuming or
    reloading it with today's 1e-2 would silently change every embedding."""
    import keras
    from model_build.models.encoder import GDC_BN_EPSILON, PRE_STAGE10_GDC_BN_EPSILON
    from model_build.train import load_trained
    run, _, cache = tiny_run
    assert json.loads((run / "train_config.json").read_text())["gdc_bn_epsilon"] == GDC_BN_EPSILON
    old = tmp_path / "run"
    shutil.copytree(run, old)
    (old / "encoder.keras").unlink()
    cfg = json.loads((old / "train_config.json").read_text())
    del cfg["gdc_bn_epsilon"]
    (old / "train_config.json").write_text(json.dumps(cfg))
    assert load_trained(old).get_layer("gdc_dwbn").epsilon == PRE_STAGE10_GDC_BN_EPSILON
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "train", *TINY,
                             "--run-dir", str(old), "--steps", "9"]) == 0
    resumed = keras.models.load_model(old / "encoder.keras")
    assert resumed.get_layer("gdc_dwbn").epsilon == PRE_STAGE10_GDC_BN_EPSILON
    assert json.loads((old / "train_config.json").read_text())["gdc_bn_epsilon"] == PRE_STAGE10_GDC_BN_EPSILON


def test_dataset_skips_and_counts_bad_files(tmp_path):
    root = tmp_path / "set"
    src = sorted((FACES / sorted(p.name for p in FACES.iterdir() if p.is_dir())[0]).glob("*.jpg"))
    for person, files in {"alice": ["a.jpg", "b.jpg"], "bob": ["a.jpg", "b.jpg"]}.items():
        (root / person).mkdir(parents=True)
        for f, s in zip(files, src):
            shutil.copy(s, root / person / f)
    (root / "bob" / "corrupt.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    import cv2
    cv2.imwrite(str(root / "alice" / "noface.png"), np.full((120, 120), 128, np.uint8))
    (root / "carol").mkdir()
    shutil.copy(src[0], root / "carol" / "only.jpg")
    data = align_folder(root, 112, None, progress=False)
    assert data.skipped.unreadable == 1
    assert data.skipped.no_face == 1
    assert data.num_identities == 3 and len(data) == 5  # the single-image person teaches too
    assert data.landmarks.shape == (5, 5, 2)


def test_adding_an_image_invalidates_the_crop_cache(tmp_path):
    root = tmp_path / "set" / "someone"
    root.mkdir(parents=True)
    photos = sorted(FACES.glob("*/*.jpg"))
    shutil.copy(photos[0], root / "a.jpg")
    assert len(align_folder(root.parent, 112, tmp_path / "cache", progress=False)) == 1
    shutil.copy(photos[1], root / "b.jpg")
    assert len(align_folder(root.parent, 112, tmp_path / "cache", progress=False)) == 2


def test_bad_training_data_is_one_clear_line_and_exit_2(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    single = tmp_path / "single"
    for i, photo in enumerate(sorted(FACES.glob("*/*_0001.jpg"))):
        (single / f"person{i}").mkdir(parents=True)
        shutil.copy(photo, single / f"person{i}" / "a.jpg")
    cases = {tmp_path / "missing": "dataset folder not found",
             tmp_path / "empty": "no identity folders",
             single: "needs at least 3 people with two or more images"}
    for folder, message in cases.items():
        caplog.clear()
        code = model_build_main(["--no-progress", "--cache-dir", str(tmp_path / "cache"), "train",
                                 *TINY[2:], "--data", str(folder), "--run-dir", str(tmp_path / "run"),
                                 "--steps", "1"])
        assert code == 2, folder
        assert any(message in r.getMessage() for r in caplog.records), (folder, caplog.text)
    # The centre loss needs people with several photos as much as a metric loss does.
    caplog.clear()
    assert model_build_main(["--no-progress", "--cache-dir", str(tmp_path / "cache"), "train", *TINY[2:],
                             "--data", str(single), "--run-dir", str(tmp_path / "centre"),
                             "--losses", "distill=1,centre=1", "--steps", "1"]) == 2
    assert "needs at least 3 people with two or more images" in caplog.text
    # Distillation alone learns from single-image people.
    assert model_build_main(["--no-progress", "--cache-dir", str(tmp_path / "cache"), "train", *TINY[2:],
                             "--data", str(single), "--run-dir", str(tmp_path / "distill-only"),
                             "--losses", "distill=1,relational=1", "--steps", "1"]) == 0


def test_convert_detector_rebuilds_the_shipped_detector(tmp_path):
    """`model-build convert-detector` on YuNet's ONNX writes a detector (checked against
    onnxruntime on the way) that finds the golden frame's faces where the shipped one does."""
    out = tmp_path / "face_detector.tflite"
    assert model_build_main(["convert-detector", "--onnx", str(YUNET_ONNX), "--out", str(out),
                             "--check-image", str(GOLDEN_FRAME)]) == 0
    image = load_image(GOLDEN_FRAME)
    ours, shipped = FaceDetector(out).detect(image), FaceDetector().detect(image)
    assert len(ours) == len(shipped) == 2
    for a, b in zip(ours, shipped):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
    assert model_build_main(["convert-detector", "--onnx", str(tmp_path / "none.onnx"),
                             "--out", str(tmp_path / "x.tflite")]) == 2


def test_detector_reports_no_face_instead_of_failing():
    assert FaceDetector().detect(np.zeros((240, 320, 3), np.uint8)) == []


def test_flip_averaged_embedding_ignores_mirroring(tiny_run):
    """Exported models average a crop's and its mirror's embeddings (model.json
    flip_average), so a mirrored face embeds identically."""
    _, out, _ = tiny_run
    encoder = load_encoder(out / "encoder.tflite")
    assert encoder.info.flip_average
    crop = face_crops(load_image(next(FACES.glob("*/*.jpg"))), encoder=encoder)[0].crop
    np.testing.assert_allclose(encoder.embed(crop), encoder.embed(crop[:, ::-1]), atol=1e-6)


def test_evaluate_reports_lfw_protocol_and_writes_report(tiny_run, tmp_path, capsys):
    _, out, cache = tiny_run
    people = sorted(p.name for p in FACES.iterdir() if p.is_dir())
    a, b = people[:2]
    lines = ["2\t2"]
    for fold in range(2):
        lines += [f"{a}\t{1 + fold}\t{3 + fold}", f"{b}\t{1 + fold}\t{3 + fold}",
                  f"{a}\t{1 + fold}\t{b}\t{2 + fold}", f"{a}\t{5}\t{b}\t{5 - fold}"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report"
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "evaluate", "--model",
                             str(out / "encoder.tflite"), "--data", str(FACES), "--pairs", str(pairs),
                             "--out", str(report), "--json", "--title", "tiny int8 encoder"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (report / "report.md").read_text().startswith("# tiny int8 encoder\n")
    assert summary["pairs"]["n_pairs"] == 8 and summary["pairs"]["folds"] == [1, 2]
    # The figures are the evaluation's own (tests/test_evaluate_cli.py checks them against the
    # encoder run by hand): four pairs per fold, the mean of the folds, the same in report.json.
    acc = summary["pairs"]["accuracy"]
    assert set(acc["fold_accuracies"]) <= {0.0, 0.25, 0.5, 0.75, 1.0} and acc["fold_sizes"] == [4, 4]
    assert acc["accuracy_mean"] == pytest.approx(np.mean(acc["fold_accuracies"]))
    assert json.loads((report / "report.json").read_text())["accuracy"] == acc
    assert [row["far"] for row in summary["all_vs_all"]["tar_at_far"]] == [1e-2, 1e-3, 1e-4]
    assert summary["calibration"]["target_far"] == 1e-3
    for name in ("report.md", "report.json", "roc.png", "distances.png"):
        assert (report / name).stat().st_size > 0


def test_weight_average_follows_its_formula_and_covers_batch_norm_statistics():
    """shadow <- d*shadow + (1-d)*weight with d = min(decay, (1+n)/(10+n)), for every weight
    (batch-norm moving statistics included); applied() lends the average and gives the
    model its own weights back."""
    import keras
    from model_build.models.ema import WeightEMA
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    assert len(model.weights) == 6 and len(model.trainable_weights) == 4
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    ema = WeightEMA(model, decay=0.9)
    model.set_weights([np.ones_like(w) for w in model.get_weights()])
    ema.update(tf.constant(1000, tf.int64))  # past the ramp: d = 0.9
    for s in ema.shadow:
        np.testing.assert_allclose(s.numpy(), 0.1, rtol=1e-6)
    ema.update(tf.constant(0, tf.int64))  # a first step: d = 1/10
    for s in ema.shadow:
        np.testing.assert_allclose(s.numpy(), 0.1 * 0.1 + 0.9, rtol=1e-6)
    with ema.applied() as averaged:
        for w in averaged.get_weights():
            np.testing.assert_allclose(w, 0.91, rtol=1e-6)
    for w in model.get_weights():
        np.testing.assert_array_equal(w, 1.0)
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(model, decay=1.0)


def test_a_run_with_a_weight_average_saves_the_average_as_its_model(tiny_run, tmp_path):
    """--ema-decay: encoder.keras (what export ships) holds the average and encoder_last.keras
    the last step's weights; a run reloaded from its checkpoints gives the average too."""
    import keras
    from model_build.train import load_trained
    _, _, cache = tiny_run
    run = tmp_path / "run"
    assert model_build_main(["--no-progress", "--cache-dir", str(cache), "train", *TINY, "--losses", "distill=1",
                             "--ema-decay", "0.9", "--run-dir", str(run), "--steps", "6"]) == 0
    assert json.loads((run / "train_config.json").read_text())["ema_decay"] == 0.9
    averaged = keras.models.load_model(run / "encoder.keras").get_weights()
    last = keras.models.load_model(run / "encoder_last.keras").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(averaged, last))
    (run / "encoder.keras").unlink()
    for a, b in zip(load_trained(run).get_weights(), averaged):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _plain_view_config(**changes):
    from model_build.data.views import ViewConfig
    still = dict(mirror=0.0, max_shift=0.0, max_scale=0.0, max_roll_deg=0.0, low_res=0.0, brightness=0.0,
                 contrast=(1.0, 1.0), gamma=(1.0, 1.0), ir_low_contrast=0.0, backlight=0.0, blur=0.0,
                 noise=0.0, jpeg=0.0, occlusion=0.0)
    return ViewConfig(**{**still, **changes})


def test_a_blended_view_mixes_in_another_face_and_blending_off_changes_nothing(tmp_path):
    """--blend mixes a partner face into a view at the configured share; with blending off
    (the default), views and their cache key are those of the views made before it existed."""
    from model_build.data.views import ViewConfig, render_views
    data = align_folder(FACES, 112, tmp_path / "cache", progress=False)
    args = (data.files[0], data.paths[0], data.landmarks[0], data.crops[0])
    white = np.full((1, 112, 112), 255, np.uint8)
    plain = render_views(*args, _plain_view_config(views=3), seed=5, partners=white)
    blended = render_views(*args, _plain_view_config(views=3, blend=1.0, blend_weight=(0.25, 0.25)),
                           seed=5, partners=white)
    np.testing.assert_array_equal(blended[0], data.crops[0])  # view 0 stays the door's crop
    expected = np.clip(0.75 * plain[1:].astype(np.float64) + 0.25 * 255 + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(blended[1:], expected)
    cfg = ViewConfig(views=4)
    np.testing.assert_array_equal(render_views(*args, cfg, seed=5, partners=white), render_views(*args, cfg, seed=5))
    assert cfg.key() == "f38bf82a" and ViewConfig().key() == "f00f2c44"  # the keys before blending existed
    assert ViewConfig(views=4, blend=0.25).key() != cfg.key()
