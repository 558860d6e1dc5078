"""`model-build evaluate` with the shipped encoder (no TensorFlow): bad input is one line
and exit 2, and the summary says what failed and when its figures cannot be trusted."""

from __future__ import annotations

import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from model_build.cli import main as model_build_main
from model_build.evaluators import lfw_protocol_accuracy

A, B = "Jean_Chretien", "Serena_Williams"


def evaluate(tmp_path, *args: str) -> int:
    return model_build_main(["--no-progress", "--cache-dir", str(tmp_path / "cache"), "evaluate", *args])


def lfw_folder(root, face_fixtures, people=(A, B), n=3, blank=()):
    """root/<person>/<person>_000k.jpg: n fixture photos each, plus grey images (no face) at the
    numbers in blank."""
    for person in people:
        (root / person).mkdir(parents=True)
        for k in range(1, n + 1):
            shutil.copy(face_fixtures / person / f"{person}_{k:04d}.jpg", root / person / f"{person}_{k:04d}.jpg")
        for k in blank:
            cv2.imwrite(str(root / person / f"{person}_{k:04d}.jpg"), np.full((160, 160, 3), 128, np.uint8))
    return root


def test_bad_input_is_one_line_and_exit_2(tmp_path, encoder_model, face_fixtures, caplog, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(face_fixtures / A / f"{A}_0001.jpg", flat / "a.jpg")
    singles = tmp_path / "singles"
    lfw_folder(singles, face_fixtures, people=(A, B, "Vladimir_Putin"), n=1)
    cases = [(["--model", str(encoder_model), "--data", str(tmp_path / "missing")], "dataset folder not found"),
             (["--model", str(encoder_model), "--data", str(flat)], "no identity folders"),
             (["--model", str(tmp_path / "nope.tflite"), "--data", str(singles)], "model not found"),
             (["--model", str(encoder_model), "--data", str(singles)], "one image per person")]
    for args, message in cases:
        caplog.clear()
        assert evaluate(tmp_path, *args) == 2, args
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and message in errors[0].getMessage(), (args, caplog.text)
        assert not errors[0].exc_info and "Traceback" not in caplog.text
        assert capsys.readouterr().out == ""


def write_pairs(path, *folds):
    """An LFW pairs file; each fold is (same pairs, different pairs), as many of each."""
    lines = [f"{len(folds)}\t{len(folds[0][0])}"]
    for same, different in folds:
        lines += [f"{p}\t{i}\t{j}" for p, i, j in same] + [f"{p}\t{i}\t{q}\t{j}" for p, i, q, j in different]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_summary_names_failed_pairs_and_warns_when_they_dominate(tmp_path, encoder_model, face_fixtures,
                                                                      caplog, capsys):
    data = lfw_folder(tmp_path / "data", face_fixtures, n=3, blank=(4, 5))
    # Three of four pairs of each kind name a grey image: they fail.
    fold = ([(A, 1, 2), (A, 1, 4), (B, 2, 5), (B, 4, 5)], [(A, 1, B, 1), (A, 4, B, 2), (A, 3, B, 5), (A, 5, B, 4)])
    pairs = write_pairs(tmp_path / "pairs.txt", fold, fold)
    assert evaluate(tmp_path, "--model", str(encoder_model), "--data", str(data), "--pairs", str(pairs),
                    "--out", str(tmp_path / "report")) == 1
    out = capsys.readouterr().out
    assert "without an embedding in the folder: 4 (no face), 0 (unreadable)" in out
    assert "pairs: 16; failed: 12 (6 same, 6 different; counted as rejected)" in out
    assert "warning: 12 of 16 pairs failed" in out
    # 9 different pairs among the six faces of two people: FAR 1e-2 and below cannot be measured.
    assert "warning: FAR 0.0001, 0.001, 0.01 below 1/9" in out
    assert "pairs failed" in caplog.text and "below 1/9" in caplog.text  # and on stderr
    assert "- 12 of 16 pairs failed" in (tmp_path / "report" / "report.md").read_text()  # and in the report


def test_evaluate_scores_the_pairs_it_was_given(tmp_path, encoder_model, face_fixtures, capsys):
    """The LFW figures are those of the named images' embeddings with each fold's threshold
    chosen on the other fold: checked against the encoder run by hand."""
    from daemon.api import face_crops
    from daemon.embeddings import load_encoder
    from daemon.images import load_image

    data = lfw_folder(tmp_path / "data", face_fixtures, n=4)
    folds = [([(A, 1, 2), (B, 3, 4), (A, 3, 4), (B, 1, 2)], [(A, 1, B, 1), (A, 2, B, 3), (A, 4, B, 2), (A, 3, B, 4)]),
             ([(A, 2, 3), (B, 2, 4), (A, 1, 4), (B, 1, 3)], [(A, 2, B, 2), (A, 1, B, 3), (A, 3, B, 1), (A, 4, B, 4)])]
    pairs = write_pairs(tmp_path / "pairs.txt", *folds)
    assert evaluate(tmp_path, "--model", str(encoder_model), "--data", str(data), "--pairs", str(pairs),
                    "--json") == 0
    summary = json.loads(capsys.readouterr().out)

    encoder = load_encoder(encoder_model)
    emb = {(p, k): encoder.embed(face_crops(load_image(data / p / f"{p}_{k:04d}.jpg"), encoder=encoder)[0].crop)[0]
           for p in (A, B) for k in range(1, 5)}
    rows = [row for same, different in folds for row in
            [(p, i, p, j, True) for p, i, j in same] + [(p, i, q, j, False) for p, i, q, j in different]]
    d = np.array([np.linalg.norm(emb[p, i] - emb[q, j]) for p, i, q, j, _ in rows])
    want = lfw_protocol_accuracy(d, np.array([r[4] for r in rows]), np.repeat([1, 2], 8))
    got = summary["pairs"]["accuracy"]
    assert got["accuracy_mean"] == pytest.approx(want["accuracy_mean"])
    assert got["fold_thresholds"] == pytest.approx(want["fold_thresholds"], abs=1e-5)
    assert summary["pairs"]["n_pairs"] == 16 and summary["pairs"]["failures"]["n_failed_pairs"] == 0
    assert summary["n_images"] == 8 and summary["all_vs_all"]["n_same"] == 12
