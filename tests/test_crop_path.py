"""The one crop path (daemon.faces.align.prepare_faces): a golden image and its exact
crops, and the door loop producing the same crop as the training pipeline.

If the door converted to grey differently (say, took the green channel), ordered faces
differently, or warped onto another template, accuracy would drop without any error;
these tests turn that into a failure."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.door.service import Service
from daemon.faces.align import ARCFACE_TEMPLATE, CROP_SIZE, alignment_matrix, face_order, prepare_faces
from daemon.faces.detect import MAX_INTERPRETERS, Face, FaceDetector
from daemon.frames import Frame
from daemon.images import load_image
from daemon_helpers import service_config
from model_build.data.datasets import align_folder

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def close_enough(crop: np.ndarray, expected: np.ndarray) -> bool:
    """Equal up to the last bit of float noise a different CPU's detector may add."""
    diff = np.abs(crop.astype(int) - expected.astype(int))
    return crop.shape == expected.shape and diff.mean() < 0.5 and np.percentile(diff, 99) <= 2


def test_the_golden_frame_gives_its_golden_crops_in_order(detector):
    frame = cv2.imread(str(GOLDEN / "frame.png"))
    found = prepare_faces(frame, detector)
    expected = [cv2.imread(str(GOLDEN / f"crop_{i}.png"), cv2.IMREAD_GRAYSCALE) for i in range(2)]
    assert len(found.aligned) == 2
    for got, want in zip(found.crops, expected):
        assert close_enough(got, want)
    # The crops differ from each other far more than the tolerance: order is pinned.
    assert not close_enough(expected[0], expected[1])


def test_grey_is_bt601_luma_not_a_single_channel(detector):
    """The golden crops are luma crops: a green-channel crop of the same face is not."""
    frame = cv2.imread(str(GOLDEN / "frame.png"))
    green = prepare_faces(np.ascontiguousarray(frame[:, :, 1]), detector)
    want = cv2.imread(str(GOLDEN / "crop_0.png"), cv2.IMREAD_GRAYSCALE)
    assert green.aligned and not close_enough(green.crops[0], want)


def test_alignment_puts_the_landmarks_on_the_arcface_template(detector):
    face = prepare_faces(cv2.imread(str(GOLDEN / "frame.png")), detector).detected[0]
    m = alignment_matrix(face, CROP_SIZE)
    placed = face.landmarks @ m[:, :2].T + m[:, 2]
    # A similarity fit of five points: each lands within a few pixels of the template.
    assert np.abs(placed - ARCFACE_TEMPLATE).max() < 6
    assert np.abs(placed - ARCFACE_TEMPLATE).mean() < 2.5


def _face(x0, y0, side, score=0.9):
    return Face((x0, y0, x0 + side, y0 + side), score, np.zeros((5, 2), np.float32))


def test_the_most_prominent_face_comes_first():
    """Size counts, discounted by distance from the centre: the person at the door
    beats a larger face at the edge of the frame (in LFW: the subject, not a bystander)."""
    centre_small = _face(270, 190, 100)     # centred in 640x480
    corner_large = _face(0, 0, 130)         # 1.7x the area, in the corner
    side_equal = _face(540, 190, 100)       # as large as the centred one, at the edge
    order = face_order([corner_large, side_equal, centre_small], (480, 640))
    assert order == [centre_small, corner_large, side_equal]
    # Among equally central faces, the larger wins; then the more certain one.
    a, b = _face(270, 190, 100, 0.7), _face(245, 165, 150, 0.6)
    assert face_order([a, b], (480, 640)) == [b, a]
    c = _face(270, 190, 100, 0.95)
    assert face_order([a, c], (480, 640)) == [c, a]


def test_max_faces_and_the_quality_gate_are_applied_in_order(detector):
    frame = cv2.imread(str(GOLDEN / "frame.png"))

    class RejectFirst:
        def __init__(self):
            self.seen = 0

        def face_problem(self, face):
            self.seen += 1
            return "too_small" if self.seen == 1 else None

        def crop_problem(self, crop):
            return None

    found = prepare_faces(frame, detector, max_faces=1)
    assert len(found.aligned) == 1 and len(found.detected) == 2
    gated = prepare_faces(frame, detector, quality=RejectFirst())
    assert [reason for _, reason in gated.rejected] == ["too_small"]
    assert len(gated.aligned) == 1
    assert close_enough(gated.crops[0], cv2.imread(str(GOLDEN / "crop_1.png"), cv2.IMREAD_GRAYSCALE))


def test_the_door_loop_embeds_exactly_the_training_crop(tmp_path, encoder_model):
    """The real door loop on a frame and model_build's dataset pipeline on the same
    image file produce the same bytes."""
    person = tmp_path / "data" / "someone"
    person.mkdir(parents=True)
    shutil.copy(GOLDEN / "frame.png", person / "frame.png")
    training = align_folder(tmp_path / "data", CROP_SIZE, None, progress=False)

    (tmp_path / "frames").mkdir()
    cfg = service_config(tmp_path, quality={"max_faces": 1, "min_face_px": 20, "min_eye_distance_px": 5,
                                            "min_blur": 0})
    service = Service(cfg, stdout=io.StringIO())  # the shipped encoder and detector, as `facegate run`
    service.start()
    try:
        outcome = service.process_frame(Frame(load_image(person / "frame.png"), 0, 0.0, "test"))
    finally:
        service.close()
    assert len(outcome.crops) == 1
    np.testing.assert_array_equal(outcome.crops[0], training.crops[0])


def test_the_detector_runs_on_the_builtin_kernels_too(monkeypatch):
    """Without XNNPACK (as under emulated aarch64, or a runtime built without it) the
    detector's first allocation must not see its 1x1 placeholder input: the builtin
    convolutions refuse a shape that shrinks to nothing."""
    from types import SimpleNamespace

    from ai_edge_litert import interpreter as litert

    import daemon.runtime as runtime

    def builtin_only(**kwargs):
        return litert.Interpreter(**kwargs,
                                  experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    monkeypatch.setattr(runtime, "_interpreter_module",
                        lambda: SimpleNamespace(Interpreter=builtin_only, load_delegate=litert.load_delegate))
    found = prepare_faces(cv2.imread(str(GOLDEN / "frame.png")), FaceDetector())
    assert len(found.aligned) == 2


def test_a_frame_is_not_seen_through_the_padding_of_the_last_one():
    """The detector reuses its zero-padded input buffer; a smaller image that pads to the
    same shape must not be detected with the previous image's pixels in its padding."""
    frame = cv2.imread(str(GOLDEN / "frame.png"))  # 320x240: padded to 320x256
    fresh = FaceDetector().detect(frame)
    reused = FaceDetector()
    reused.detect(np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8))
    again = reused.detect(frame)
    assert len(again) == len(fresh)
    for a, b in zip(again, fresh):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_images_of_many_sizes_share_a_few_interpreters_and_detect_the_same():
    """Photos of many sizes (training data, enrollment) cycle the detector's interpreters:
    beyond a few input sizes the oldest is resized. The golden frame's faces stay the same."""
    frame = cv2.imread(str(GOLDEN / "frame.png"))
    fresh = FaceDetector().detect(frame)
    busy = FaceDetector()
    rng = np.random.default_rng(1)
    for side in (96, 160, 224, 288, 352, 416):
        busy.detect(rng.integers(0, 256, (side, side + 32, 3), dtype=np.uint8))
    again = busy.detect(frame)
    assert len(busy._runners) <= MAX_INTERPRETERS and len(again) == len(fresh) == 2
    for a, b in zip(again, fresh):
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
