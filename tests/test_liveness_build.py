"""The PAD network's build: a tiny model trained on the liveness fixtures through the CLI,
exported int8, loaded by the runtime; training crops equal runtime crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="model_build tests need the 'build' extra")

from daemon.faces.detect import FaceDetector  # noqa: E402
from daemon.liveness.passive import PREPROCESSING, PadModel, pad_crop  # noqa: E402
from daemon.runtime import ModelError  # noqa: E402
from model_build.cli import main as model_build_main  # noqa: E402
from model_build.export.tflite import EDGETPU_OPS, model_ops  # noqa: E402
from model_build.liveness.data import list_samples, load_crops  # noqa: E402

LIVE = Path(__file__).parent / "fixtures" / "liveness"


def liveness_folder(root: Path) -> Path:
    """The fixtures laid out like ../shared/data/liveness (NUAA part)."""
    for folder, kind in (("real_blink", "real"), ("enroll/nuaa_0005", "real"), ("print_attack", "print_attack")):
        target = root / "nuaa" / kind / "0005"
        target.mkdir(parents=True, exist_ok=True)
        for path in (LIVE / folder).glob("*.jpg"):
            shutil.copy(path, target / path.name)
    return root


@pytest.fixture(scope="module")
def tiny_pad(tmp_path_factory):
    root = tmp_path_factory.mktemp("pad")
    data = liveness_folder(root / "data")
    args = ["--no-progress", "--cache-dir", str(root / "cache"), "train-liveness", "--data", str(data),
            "--train", "nuaa", "--test", "nuaa", "--run-dir", str(root / "run"), "--epochs", "2",
            "--min-steps", "4", "--input-size", "32", "--width", "0.5", "--threshold", "0.4"]
    assert model_build_main(args) == 0
    return data, root / "run", root / "cache"


def test_the_exported_pad_model_is_int8_edge_tpu_ops_and_loads_in_the_runtime(tiny_pad):
    data, run, _ = tiny_pad
    model_path = run / "liveness_pad.tflite"
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert meta["format"] == "facegate-pad/1" and meta["input"]["preprocessing"] == PREPROCESSING
    assert meta["threshold"] == 0.4 and meta["input"]["size"] == 32 and meta["model_id"].startswith("pad-")
    assert meta["quantization"]["input"]["dtype"] == "int8"
    assert model_ops(model_path) - {"DELEGATE"} <= EDGETPU_OPS
    assert meta["export_check"]["mean_abs_probability_gap"] <= 0.05
    model = PadModel(model_path)
    image = cv2.imread(str(next(LIVE.glob("real_blink/*.jpg"))))
    p = model.live_probability(image, (140, 100), (180, 100))
    assert 0.0 <= p <= 1.0 and model.info.threshold == 0.4


def test_train_liveness_reports_iso_figures_on_what_it_did_not_train_on(tiny_pad):
    _, run, _ = tiny_pad
    report = json.loads((run / "report.json").read_text())
    # everything was trained on here, so nothing is left to score
    assert report["training"]["train_samples"] == 17 and "test" not in report


def test_training_crops_are_the_runtime_crops(tiny_pad):
    data, _, cache = tiny_pad
    samples = list_samples(data, ("nuaa",))
    crops = load_crops(data, samples, 48, cache)
    detector = FaceDetector()
    assert len(crops.samples) == len(samples) == 17 and crops.live.sum() == 9
    for i in (0, 8, 16):
        image = cv2.imread(str(data / crops.samples[i].path))
        face = max(detector.detect(image), key=lambda f: f.width * f.height)
        np.testing.assert_array_equal(crops.crops[i], pad_crop(image, face.landmarks[0], face.landmarks[1], 48))
    again = load_crops(data, samples, 48, cache)  # from the cache: same bytes
    np.testing.assert_array_equal(again.crops, crops.crops)


def test_a_model_cut_for_other_crops_is_refused_with_a_clear_error(tiny_pad, tmp_path):
    _, run, _ = tiny_pad
    shutil.copy(run / "liveness_pad.tflite", tmp_path / "m.tflite")
    meta = json.loads((run / "liveness_pad.json").read_text())
    meta["input"]["preprocessing"] = "something-else"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="expects preprocessing 'something-else'"):
        PadModel(tmp_path / "m.tflite")
    (tmp_path / "m.json").unlink()
    with pytest.raises(ModelError, match="metadata .* is missing or invalid"):
        PadModel(tmp_path / "m.tflite")


def test_a_folder_without_liveness_data_is_a_clear_error(tmp_path, caplog):
    code = model_build_main(["--no-progress", "train-liveness", "--data", str(tmp_path), "--train", "nuaa",
                             "--run-dir", str(tmp_path / "run")])
    assert code == 2 and "no liveness images of nuaa under" in caplog.text
