"""Tests for the comparison harness (bench/compare).

The scoring, ratio, report and data-selection tests need no model. The peer tests run
the real YuNet + SFace / w600k_mbf models when the build extra's wheels are installed
and skip otherwise. The facegate and end-to-end tests use the shipped encoder (or
$FACEGATE_BENCH_TEST_MODEL, e.g. a smoke model) on tests/fixtures/faces, and skip when
it is missing or made for another preprocessing version.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# bench/ is not an installed package (pyproject installs daemon and model_build only),
# so plain `pytest` would not find it.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.compare import report, scoring, speed  # noqa: E402
from bench.compare.cli import FACEGATE, SFACE, Target, check_targets, ratio  # noqa: E402
from bench.compare.dataset import load_image_set  # noqa: E402
from bench.compare.peers import MODELS as PEER_MODELS, PEERS, crop_to_input, load_peer, norm_crop  # noqa: E402
from bench.compare.systems import FACE_RECOGNITION, FrameTiming  # noqa: E402
from bench.model_files import YUNET_ONNX, locate  # noqa: E402
from daemon.faces.align import ARCFACE_TEMPLATE  # noqa: E402
from daemon.images import load_image  # noqa: E402

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


def test_pairs_every_system_embedded_take_detection_out_of_the_comparison():
    """A system that misses a face loses its pairs in the plain LFW figure; on the pairs
    every system embedded, two systems with the same embeddings score the same."""
    from types import SimpleNamespace

    from bench.compare.cli import score_accuracy
    from bench.compare.dataset import ImageSet, Pairs

    # Two people, four photos each, as unit vectors 40 degrees apart; image 0 is A's.
    labels = np.array(["A"] * 4 + ["B"] * 4)
    emb = np.stack([unit(0 + d) for d in (0, 3, 6, 9)] + [unit(40 + d) for d in (0, 3, 6, 9)])
    misses = emb.copy()
    misses[0] = np.nan  # this system found no face in image 0
    a = np.array([0, 1, 4, 5, 0, 2, 1, 3] * 2)
    b = np.array([1, 2, 5, 6, 4, 6, 5, 7] * 2)
    same = labels[a] == labels[b]
    pairs = Pairs(a, b, same, np.repeat([1, 2], 8))
    images = ImageSet(Path("."), [Path(f"{i}.png") for i in range(8)], labels, pairs)

    assert scoring.pairs_all_embedded([emb, misses], a, b).tolist() == [a_ != 0 and b_ != 0
                                                                         for a_, b_ in zip(a, b)]
    systems = [SimpleNamespace(name="sees all"), SimpleNamespace(name="misses one")]
    acc, _, _ = score_accuracy(systems, {"sees all": emb, "misses one": misses}, images,
                               np.random.default_rng(0))
    assert acc["sees all"]["lfw"]["accuracy_mean"] == 1.0
    assert acc["misses one"]["lfw"]["accuracy_mean"] < 1.0  # its missed genuine pairs count as refused
    for name in acc:
        common = acc[name]["lfw_all_embedded"]
        assert common["n_pairs"] == 12 and common["n_failed_pairs"] == 0
        assert common["accuracy_mean"] == 1.0
    table = "\n".join(report.accuracy_table({"accuracy": acc, "meta": {"data": {"folds": [1, 2]}}}))
    assert "the same, on the 12 pairs every system embedded | 1.0000 ± 0.0000 | 1.0000 ± 0.0000 |" in table


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
    report.write_docs_section(doc, "## Face detectors\n\nold detectors\n", "Face detectors")
    # Another harness's title replaces its own section only.
    report.write_docs_section(doc, "## Face detectors\n\ndetectors\n", "Face detectors")
    assert "first run" in doc.read_text() and "old detectors" not in doc.read_text()
    report.write_docs_section(doc, f"{title}\n\nsecond run\n")
    text = doc.read_text()
    assert "## Daemon\n\ndaemon figures" in text and "second run" in text
    assert text.count("## Face detectors\n\ndetectors") == 1
    assert "first run" not in text and text.count(title) == 1
    fresh = tmp_path / "new.md"
    report.write_docs_section(fresh, f"{title}\n\nonly\n")
    assert fresh.read_text().count(title) == 1


# ----------------------------------------------------------------- ratios, timing summaries, report


def _results(per_face: dict, end_to_end: dict, sizes: dict, lfw: dict) -> dict:
    return {"speed": {name: {"per_face": {"median_ms": ms}, "end_to_end": {"median_ms": end_to_end.get(name)}}
                      for name, ms in per_face.items()},
            "size": {"files": sizes},
            "accuracy": {name: {"lfw": {"accuracy_mean": acc}} for name, acc in lfw.items()}}


def test_targets_are_peer_over_facegate_ratios_of_this_run():
    results = _results(per_face={FACEGATE: 2.0, FACE_RECOGNITION: 40.0, SFACE: 9.0},
                       end_to_end={FACEGATE: 4.0, FACE_RECOGNITION: 39.0, SFACE: 10.0},
                       sizes={FACEGATE: {"enc": 400_000, "det": 100_000},
                              FACE_RECOGNITION: {"a": 10_000_000, "b": 500_000}},
                       lfw={FACEGATE: 0.98, FACE_RECOGNITION: 0.99, SFACE: 0.975})
    rows = {r["name"]: r for r in check_targets(results)}
    fr = rows["detect + align + embed per face, faster than face_recognition"]
    assert fr["ratio"] == pytest.approx(20.0) and fr["met"] is True  # exactly the target: met
    assert fr["measured"] == "20.0× (40.00 vs 2.00 ms)"
    sf = rows["detect + align + embed per face, faster than YuNet + SFace"]
    assert sf["ratio"] == pytest.approx(4.5) and sf["met"] is False and sf["target"] == "≥ 5×"
    mbf = rows["detect + align + embed per face, faster than YuNet + w600k_mbf"]
    assert mbf["ratio"] is None and mbf["met"] is None and "no YuNet + w600k_mbf" in mbf["measured"]
    e2e = rows["end-to-end per frame, faster than face_recognition"]
    assert e2e["ratio"] == pytest.approx(9.75) and e2e["met"] is False
    size = rows["model files smaller than face_recognition's"]
    assert size["ratio"] == pytest.approx(21.0) and size["met"] is True
    assert rows["LFW-protocol accuracy gap to face_recognition"]["measured"] == "-1.00 points (0.9800 vs 0.9900)"
    assert rows["LFW-protocol accuracy gap to YuNet + SFace"]["measured"] == "+0.50 points (0.9800 vs 0.9750)"
    assert "LFW-protocol accuracy gap to YuNet + w600k_mbf" not in rows


def test_ratio_is_none_when_either_side_is_missing():
    assert ratio(30.0, 1.5) == pytest.approx(20.0)
    assert ratio(None, 1.5) is None and ratio(30.0, None) is None and ratio(30.0, 0.0) is None
    only = check_targets(_results({FACEGATE: 1.0}, {FACEGATE: 1.0}, {FACEGATE: {"a": 1}}, {}),
                         (Target("t", SFACE, "per_face", 5.0),))
    assert only == [{"name": "t", "target": "≥ 5×", "measured": f"n/a (no {SFACE} in this run)",
                     "ratio": None, "met": None}]


class _Stages:
    stages = ("faces", "embed", "match")


def test_per_face_is_every_stage_but_matching_on_frames_with_a_face():
    timings = [FrameTiming({"faces": 0.002, "embed": 0.001, "match": 0.010}, 0.013, True),
               FrameTiming({"faces": 0.004, "embed": 0.002, "match": 0.020}, 0.026, True),
               FrameTiming({"faces": 0.003, "embed": 0.001, "match": 0.030}, 0.034, True),
               FrameTiming({"faces": 0.050}, 0.050, False)]  # no face: not a per-face time
    summary = speed.summarise(_Stages(), timings)
    assert summary["faces_found"] == 3 and summary["n_frames"] == 4
    assert summary["per_face"]["median_ms"] == pytest.approx(4.0)  # 3, 6, 4 ms
    assert summary["per_face"]["n"] == 3
    assert summary["end_to_end"]["median_ms"] == pytest.approx(30.0)  # all four frames
    assert summary["stages"]["faces"]["n"] == 4 and summary["stages"]["embed"]["n"] == 3
    assert summary["fps"] == pytest.approx(4 / 0.123)


def test_roc_markers_carry_no_text_and_the_legend_carries_the_tars():
    rows = [{"far": 1e-2, "tar": 0.91, "achieved_far": 0.0098},
            {"far": 1e-3, "tar": 0.5, "achieved_far": 0.001}]
    curves = {"a": (np.array([0.0, 1.0]), np.array([0.0, 1.0])), "b": (np.array([0.0, 1.0]), np.array([0.5, 1.0]))}
    named, points = report.roc_series(curves, {"a": rows, "b": [{"far": 1e-2, "tar": None, "achieved_far": None}]})
    assert list(named) == ["a (TAR 0.910 @ 1e-2, 0.500 @ 1e-3)", "b"]
    assert points["a (TAR 0.910 @ 1e-2, 0.500 @ 1e-3)"] == [(0.0098, 0.91, ""), (0.001, 0.5, "")]
    assert points["b"] == []


# ----------------------------------------------------------------- the YuNet peers


def test_peer_input_matches_opencv_blob_from_image():
    """Each peer's crop -> tensor is what its own library's blobFromImage(swapRB=True) gives."""
    crop = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    sface_blob = cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True)  # OpenCV SFace
    mbf_blob = cv2.dnn.blobFromImage(crop, 1 / 127.5, (112, 112), (127.5, 127.5, 127.5), swapRB=True)  # InsightFace
    np.testing.assert_allclose(crop_to_input(crop, PEER_MODELS["sface"]), sface_blob, atol=1e-5)
    np.testing.assert_allclose(crop_to_input(crop, PEER_MODELS["mbf"]), mbf_blob, atol=1e-5)


def test_norm_crop_puts_the_five_landmarks_on_the_template():
    image = np.zeros((300, 400, 3), np.uint8)
    angle = np.radians(15)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (ARCFACE_TEMPLATE - 56) @ rot.T * 1.7 + (210, 140)
    for k, (x, y) in enumerate(landmarks):
        cv2.circle(image, (int(round(x)), int(round(y))), 3, (0, 40 * (k + 2), 255), -1)
    crop = norm_crop(image, landmarks)
    assert crop.shape == (112, 112, 3)
    for k, (x, y) in enumerate(ARCFACE_TEMPLATE):
        assert tuple(crop[int(round(y)), int(round(x))]) == pytest.approx((0, 40 * (k + 2), 255), abs=30), k


def test_peer_without_yunet_is_skipped_with_a_reason():
    for key in PEERS:
        peer, reason = load_peer(key, None)
        assert peer is None and "--yunet-onnx" in reason and PEER_MODELS[key].name in reason


@pytest.fixture(scope="module")
def yunet_onnx() -> Path:
    found = locate(None, YUNET_ONNX, "--yunet-onnx")
    if found.path is None:
        pytest.skip(f"no YuNet ONNX for the peers: {found.source}")
    return found.path


# Two photos of each person and one of someone else: (anchor, same person, other person).
TRIPLES = [("Serena_Williams/Serena_Williams_0001.jpg", "Serena_Williams/Serena_Williams_0002.jpg",
            "Vladimir_Putin/Vladimir_Putin_0001.jpg"),
           ("Vladimir_Putin/Vladimir_Putin_0002.jpg", "Vladimir_Putin/Vladimir_Putin_0003.jpg",
            "Jean_Chretien/Jean_Chretien_0001.jpg"),
           ("Jean_Chretien/Jean_Chretien_0002.jpg", "Jean_Chretien/Jean_Chretien_0003.jpg",
            "Donald_Rumsfeld/Donald_Rumsfeld_0001.jpg"),
           ("Donald_Rumsfeld/Donald_Rumsfeld_0002.jpg", "Donald_Rumsfeld/Donald_Rumsfeld_0003.jpg",
            "Serena_Williams/Serena_Williams_0003.jpg")]


@pytest.mark.parametrize("key", PEERS)
def test_peer_scores_the_same_person_closer_than_someone_else(key, yunet_onnx):
    peer, reason = load_peer(key, yunet_onnx)
    if peer is None:
        pytest.skip(reason)
    for anchor, same, other in TRIPLES:
        a, s, o = (peer.embed_image(load_image(FIXTURES / name)) for name in (anchor, same, other))
        assert a.shape == (peer.dim,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
        assert float(a @ s) > float(a @ o) + 0.2, (anchor, float(a @ s), float(a @ o))


# ----------------------------------------------------------------- facegate and the whole harness (needs a model)


def usable_model() -> Path:
    """The encoder under test, or a skip saying why it cannot be used here."""
    from daemon.embeddings import load_model_info
    from daemon.runtime import ModelError

    if not MODEL.is_file():
        pytest.skip(f"no encoder at {MODEL}: export the model (model-build export) or set "
                    "FACEGATE_BENCH_TEST_MODEL")
    try:
        load_model_info(MODEL)
    except ModelError as exc:  # e.g. a model made for an older crop path
        pytest.skip(f"encoder {MODEL} is not usable by this runtime ({exc}); set FACEGATE_BENCH_TEST_MODEL")
    return MODEL


def paste(face: np.ndarray, scale: float, at=(200, 120)) -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    small = cv2.resize(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame[at[1]:at[1] + small.shape[0], at[0]:at[0] + small.shape[1]] = small
    return frame


def test_facegate_uses_the_one_crop_path_and_the_door_quality_gate():
    from bench.compare.systems import FacegateSystem
    from daemon.faces.align import prepare_face, prepare_faces

    system = FacegateSystem.load(FACEGATE, usable_model())
    image = load_image(FIXTURES / "Serena_Williams" / "Serena_Williams_0001.jpg")
    crop = prepare_face(image, system.detector, system.size).crop
    np.testing.assert_array_equal(system.embed_image(image), system.encoder.embed(crop)[0])

    matcher = system.matcher(speed.random_unit_vectors(5, system.dim, np.random.default_rng(0)))
    near = system.run_frame(paste(image, 1.0), matcher)
    assert near.found and set(near.stages) == {"faces", "embed", "match"}
    # A face about 30 px wide is detected but the door's gate rejects it as too small.
    far_frame = paste(image, 0.3)
    assert prepare_faces(far_frame, system.detector, system.size, max_faces=1).aligned
    far = system.run_frame(far_frame, matcher)
    assert not far.found and set(far.stages) == {"faces"}


def test_harness_on_fixture_faces(tmp_path):
    from bench.compare.cli import main

    model = usable_model()
    out, doc = tmp_path / "out", tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Daemon\n\nkept\n")
    code = main(["--data", str(FIXTURES), "--model", str(model), "--out", str(out),
                 "--no-face-recognition", "--speed-frames", "6", "--gallery-sizes", "100,1000",
                 "--json", str(tmp_path / "r.json"), "--docs", str(doc)])
    assert code == 0
    for name in ("results.json", "report.md", "roc.png", "latency.png", "matching.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "r.json").read_text())
    assert results == json.loads((out / "results.json").read_text())
    assert FACE_RECOGNITION not in results["accuracy"]
    assert any("--no-face-recognition" in n for n in results["notes"])
    peers = [PEER_MODELS[k].name for k in PEERS if PEER_MODELS[k].name in results["accuracy"]]
    for key in PEERS:  # every peer either ran or says why not
        name = PEER_MODELS[key].name
        assert name in peers or any(n.startswith(f"{name} skipped") for n in results["notes"]), name

    fg = results["accuracy"][FACEGATE]
    assert fg["n_images"] == 24 and fg["open_set"]["n_enrolled"] == 2
    assert fg["open_set"]["n_known_probes"] + fg["open_set"]["n_unknown_probes"] == 22
    assert fg["all_pairs"]["n_same"] == 4 * 15 and fg["all_pairs"]["n_different"] == 24 * 23 // 2 - 60
    for name in peers:  # near-perfect systems separate four people
        assert results["accuracy"][name]["all_pairs"]["auc"] > 0.9, name
    # facegate's own figures are measured, not placeholders: its all-pairs AUC is that of its
    # encoder on these faces (test_embeddings asks the same of the model), and at every target
    # FAR the threshold found keeps to it and accepts more genuine pairs as the target grows.
    assert fg["all_pairs"]["auc"] > 0.75
    rows_fg = sorted(fg["all_pairs"]["tar_at_far"], key=lambda r: r["far"])
    assert all(r["achieved_far"] <= r["far"] for r in rows_fg)
    assert [r["tar"] for r in rows_fg] == sorted(r["tar"] for r in rows_fg)

    sp = results["speed"]
    assert set(sp[FACEGATE]["stages"]) == {"faces", "embed", "match"}
    # The door's steady state is timed on the same frames: it finds every face the
    # whole-frame search finds, and is reported beside (never instead of) the targets.
    tracked = sp[f"{FACEGATE}, tracking"]
    assert tracked["n_frames"] == sp[FACEGATE]["n_frames"] and tracked["faces_found"] == sp[FACEGATE]["faces_found"]
    assert {r["name"]: r for r in results["targets"]}[
        "per face while tracking, faster than YuNet + SFace"]["target"] == "(reported)"
    for name in peers:
        assert set(sp[name]["stages"]) == {"detect", "align", "embed", "match"}
    assert [r["gallery_size"] for r in results["matching"]] == [100, 1000]
    rows = {r["name"]: r for r in results["targets"]}
    sface_row = rows["detect + align + embed per face, faster than YuNet + SFace"]
    if SFACE in peers:
        assert sface_row["ratio"] == pytest.approx(sp[SFACE]["per_face"]["median_ms"]
                                                   / sp[FACEGATE]["per_face"]["median_ms"])
    else:
        assert sface_row["ratio"] is None
    assert rows["model files smaller than face_recognition's"]["ratio"] is None  # not in this run

    files = results["size"]["files"]
    assert set(files) == {FACEGATE, "facegate float", *peers} or set(files) == {FACEGATE, *peers}
    assert files[FACEGATE][model.name] == model.stat().st_size
    memory = results["memory"]
    assert memory["facegate int8"]["rss_mb"] > memory["baseline: python + numpy + OpenCV"]["rss_mb"] > 0

    text = doc.read_text()
    assert text.count(f"## {report.SECTION_TITLE}") == 1 and "## Daemon\n\nkept" in text
    section = (out / "report.md").read_text()
    assert "detect + align + embed per face, faster than YuNet + SFace" in section
    assert "**detect + align + embed per face**" in section
    assert "faces: detect + quality + align" in section and "![ROC](roc.png)" in section
