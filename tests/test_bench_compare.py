"""Tests for the facegate vs face_recognition harness (bench/compare).

The scoring, data-selection and docs tests need no model; the end-to-end run uses
the shipped encoder on tests/fixtures/faces and skips when it has not been exported.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# bench/ is not an installed package (pyproject installs daemon and model_build only),
# so plain `pytest` would not find it.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.compare import report, scoring  # noqa: E402
from bench.compare.dataset import load_image_set  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "faces"
# Another encoder can be tested with FACEGATE_BENCH_TEST_MODEL=/path/encoder.tflite.
MODEL = Path(os.environ.get("FACEGATE_BENCH_TEST_MODEL", REPO_ROOT / "daemon" / "models" / "encoder.tflite"))


def unit(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([math.cos(a), math.sin(a)])


def chord(degrees: float) -> float:
    """Euclidean distance between two unit vectors this many degrees apart."""
    return 2 * math.sin(math.radians(degrees) / 2)


# ----------------------------------------------------------------- open-set scoring


@pytest.fixture
def three_people():
    """Gallery A, B, C at 0, 120, 240 degrees; five known and three unknown probes."""
    gallery = np.stack([unit(0), unit(120), unit(240)])
    gallery_labels = np.array(["A", "B", "C"])
    probes = np.stack([
        unit(10),            # A, right, distance chord(10)
        unit(125),           # B, right, chord(5)
        unit(250),           # C, right, chord(10)
        unit(170),           # A's bad photo: nearest is B (50 deg) -> wrong
        [np.nan, np.nan],    # C, no face found
        unit(60),            # unknown, chord(60) = 1.0
        unit(200),           # unknown, chord(40) to C
        unit(20),            # unknown, chord(20) to A
    ])
    probe_labels = np.array(["A", "B", "C", "A", "C", "D", "E", "F"])
    known = np.array([True] * 5 + [False] * 3)
    return gallery, gallery_labels, probes, probe_labels, known


def test_nearest_gallery_distances_and_failures(three_people):
    gallery, _, probes, _, _ = three_people
    index, distance = scoring.nearest_gallery(probes, gallery)
    assert index[:4].tolist() == [0, 1, 2, 1]
    np.testing.assert_allclose(distance[[0, 1, 2, 3]], [chord(10), chord(5), chord(10), chord(50)])
    assert distance[4] == np.inf
    np.testing.assert_allclose(distance[5:], [chord(60), chord(40), chord(20)])


def test_nearest_gallery_skips_failed_gallery_rows():
    gallery = np.stack([[np.nan, np.nan], unit(90)])
    index, distance = scoring.nearest_gallery(np.stack([unit(0)]), gallery)
    assert index.tolist() == [1] and distance[0] == pytest.approx(chord(90))


def test_dir_and_far_at_given_thresholds(three_people):
    gallery, g_labels, probes, p_labels, known = three_people
    index, distance = scoring.nearest_gallery(probes, gallery)
    correct = (g_labels[index] == p_labels) & np.isfinite(distance)
    # 3 of 5 known probes are right (the bad photo and the failed one never count).
    for threshold, far in ((0.2, 0.0), (0.5, 1 / 3), (0.9, 2 / 3), (1.5, 1.0)):
        assert scoring.detect_and_identify_rate(distance, correct, known, threshold) == pytest.approx(0.6)
        assert scoring.false_accept_rate(distance, known, threshold) == pytest.approx(far)
    assert scoring.detect_and_identify_rate(distance, correct, known, 0.1) == pytest.approx(0.2)


def test_score_open_set_picks_threshold_from_unknown_probes(three_people):
    gallery, g_labels, probes, p_labels, known = three_people
    index, distance = scoring.nearest_gallery(probes, gallery)
    correct = g_labels[index] == p_labels
    rows = scoring.score_open_set(distance, correct, known, fars=(0.0, 0.34, 0.7))
    # FAR 0: the largest distance below every unknown probe is chord(10) (two known probes).
    assert rows[0]["threshold"] == pytest.approx(chord(10))
    assert rows[0]["dir"] == pytest.approx(0.6) and rows[0]["achieved_far"] == 0.0
    # FAR 0.34 of 3 unknown probes allows one false accept: stop at chord(20).
    assert rows[1]["threshold"] == pytest.approx(chord(20)) and rows[1]["achieved_far"] == pytest.approx(1 / 3)
    # FAR 0.7 allows two: the threshold reaches the wrong known probe (chord(50)), still not counted.
    assert rows[2]["threshold"] == pytest.approx(chord(50)) and rows[2]["dir"] == pytest.approx(0.6)


def test_open_set_identification_end_to_end(three_people):
    gallery, g_labels, probes, p_labels, known = three_people
    embeddings = np.concatenate([gallery, probes])
    labels = np.concatenate([g_labels, p_labels])
    split = scoring.OpenSetSplit(np.arange(3), np.arange(3, 11), known)
    result = scoring.open_set_identification(embeddings, labels, split, fars=(0.0,))
    assert result["n_enrolled"] == 3 and result["n_known_probes"] == 5 and result["n_unknown_probes"] == 3
    assert result["rank1"] == pytest.approx(0.6)
    assert result["dir_at_far"][0]["dir"] == pytest.approx(0.6)


def test_open_set_without_unknown_probes_reports_none():
    rows = scoring.score_open_set(np.array([0.1, 0.2]), np.array([True, True]), np.array([True, True]))
    assert all(r["dir"] is None for r in rows)


def test_split_open_set_enrols_half_of_people_with_several_images():
    labels = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] + ["e"] * 2 + ["f"])
    split = scoring.split_open_set(labels, np.random.default_rng(1))
    enrolled = set(labels[split.gallery])
    assert len(split.gallery) == len(enrolled) == 2  # ceil(4 people with >= 2 images / 2)
    assert enrolled <= {"a", "b", "c", "e"}
    assert sorted(np.concatenate([split.gallery, split.probes]).tolist()) == list(range(len(labels)))
    assert np.array_equal(split.probe_known, np.isin(labels[split.probes], list(enrolled)))
    again = scoring.split_open_set(labels, np.random.default_rng(1))
    assert np.array_equal(again.gallery, split.gallery)


# ----------------------------------------------------------------- data selection and docs


def test_pairs_file_limits_images_to_the_people_of_the_folds(tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\nDonald_Rumsfeld\t1\t2\nDonald_Rumsfeld\t1\tJean_Chretien\t1\n"
                     "Serena_Williams\t1\t2\nSerena_Williams\t3\tVladimir_Putin\t1\n")
    images, folds = load_image_set(FIXTURES, pairs, "2")
    assert folds == [2]
    assert set(images.labels) == {"Serena_Williams", "Vladimir_Putin"} and len(images.paths) == 12
    assert images.pairs.same.tolist() == [True, False] and images.pairs.folds.tolist() == [2, 2]
    a, b = images.pairs.idx_a[1], images.pairs.idx_b[1]
    assert images.relpath(a) == "Serena_Williams/Serena_Williams_0003.jpg"
    assert images.relpath(b) == "Vladimir_Putin/Vladimir_Putin_0001.jpg"
    with pytest.raises(ValueError, match="folds 1..2"):
        load_image_set(FIXTURES, pairs, "7,8")


def test_quick_run_limits():
    images, _ = load_image_set(FIXTURES, max_people=3)
    assert images.n_people == 3
    images, _ = load_image_set(FIXTURES, max_images=13)
    assert images.n_people == 2 and len(images.paths) == 12


def test_docs_section_is_replaced_and_other_sections_kept(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Daemon\n\ndaemon figures\n")
    title = f"## {report.SECTION_TITLE}"
    report.write_docs_section(doc, f"{title}\n\nfirst run\n")
    report.write_docs_section(doc, f"{title}\n\nsecond run\n")
    text = doc.read_text()
    assert "## Daemon\n\ndaemon figures" in text and "second run" in text
    assert "first run" not in text and text.count(title) == 1
    fresh = tmp_path / "new.md"
    report.write_docs_section(fresh, f"{title}\n\nonly\n")
    assert fresh.read_text().count(title) == 1


# ----------------------------------------------------------------- end to end (needs the model)


def _rate(x) -> bool:
    return x is not None and 0.0 <= x <= 1.0


@pytest.mark.skipif(not MODEL.is_file(), reason=f"no encoder at {MODEL}: export the model "
                    "(model-build export) or set FACEGATE_BENCH_TEST_MODEL")
def test_harness_on_fixture_faces(tmp_path):
    from bench.compare.cli import main

    out, doc = tmp_path / "out", tmp_path / "benchmarks.md"
    code = main(["--data", str(FIXTURES), "--model", str(MODEL), "--out", str(out),
                 "--no-face-recognition", "--speed-frames", "8", "--gallery-sizes", "100,1000",
                 "--json", str(tmp_path / "r.json"), "--docs", str(doc)])
    assert code == 0
    for name in ("results.json", "report.md", "roc.png", "latency.png", "matching.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "r.json").read_text())
    assert results == json.loads((out / "results.json").read_text())
    assert "face_recognition" not in results["accuracy"]
    assert any("--no-face-recognition" in n for n in results["notes"])

    fg = results["accuracy"]["facegate int8"]
    assert fg["n_images"] == 24 and 0 <= fg["n_failed"] <= 24
    assert all(_rate(r["tar"]) for r in fg["all_pairs"]["tar_at_far"])
    assert _rate(fg["all_pairs"]["auc"]) and _rate(fg["open_set"]["rank1"])
    assert all(_rate(r["dir"]) for r in fg["open_set"]["dir_at_far"])
    assert fg["open_set"]["n_enrolled"] == 2

    sp = results["speed"]["facegate int8"]
    assert sp["n_frames"] == 8 and sp["fps"] > 0
    for stage in ("detect", "align", "embed", "match"):
        assert sp["stages"][stage]["median_ms"] > 0
        assert sp["stages"][stage]["p95_ms"] >= sp["stages"][stage]["median_ms"]
    assert sp["end_to_end"]["median_ms"] >= sp["stages"]["detect"]["median_ms"]
    assert [r["gallery_size"] for r in results["matching"]] == [100, 1000]
    assert all(r["facegate_ms"] > 0 for r in results["matching"])

    assert set(results["size"]["files"]) <= {"facegate int8", "facegate float"}  # no peer sizes
    assert sum(results["size"]["files"]["facegate int8"].values()) > 0
    memory = results["memory"]
    assert memory["facegate int8"]["rss_mb"] > memory["baseline: python + numpy + OpenCV"]["rss_mb"] > 0
    assert all(t["met"] is None for t in results["targets"])  # no peer, no ratios
    assert f"## {report.SECTION_TITLE}" in doc.read_text()
