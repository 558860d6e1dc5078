"""The door's quality gate (daemon.quality) and the choice of face: a face too small, too
blurred or too uncertain is skipped and counted, never matched; with one face to embed,
the door takes the person in front of it, not a bystander at the edge of the frame."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from daemon.config import QualityConfig
from daemon.faces.align import prepare_faces
from daemon.faces.detect import Face, FaceDetector
from daemon.frames import Frame
from daemon.quality import LOW_SCORE, TOO_BLURRED, TOO_SMALL, QualityPolicy
from daemon.door.service import Service
from daemon_helpers import PixelEncoder, service_config

X, Y = "Jean_Chretien", "Serena_Williams"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def photo(face_fixtures, person: str) -> np.ndarray:
    return cv2.imread(str(face_fixtures / person / f"{person}_0001.jpg"))


def face(side: float = 100.0, eyes: float = 40.0, score: float = 0.9) -> Face:
    landmarks = np.array([[50, 50], [50 + eyes, 50], [70, 80], [55, 100], [85, 100]], np.float32)
    return Face((0.0, 0.0, side, side * 1.2), score, landmarks)


def test_faces_below_the_score_or_size_limits_are_named_and_the_rest_pass():
    policy = QualityPolicy(min_detection_score=0.6, min_face_px=40, min_eye_distance_px=15, min_blur=25.0)
    assert policy.face_problem(face()) is None
    assert policy.face_problem(face(side=40, eyes=15, score=0.6)) is None, "the limits themselves pass"
    assert policy.face_problem(face(score=0.59)) == LOW_SCORE
    assert policy.face_problem(face(side=39)) == TOO_SMALL
    assert policy.face_problem(face(eyes=14)) == TOO_SMALL, "a large box with eyes close together: a far face"
    assert policy.face_problem(face(side=20, score=0.3)) == LOW_SCORE, "the score is checked first"


def test_a_sharp_crop_passes_and_a_blurred_or_flat_one_does_not(face_fixtures, detector):
    policy = QualityPolicy.from_config(QualityConfig())
    crop = prepare_faces(photo(face_fixtures, X), detector).crops[0]
    assert policy.crop_problem(crop) is None
    assert policy.crop_problem(cv2.GaussianBlur(crop, (0, 0), 3)) == TOO_BLURRED
    assert policy.crop_problem(np.full_like(crop, 128)) == TOO_BLURRED


def door(tmp_path, detection: dict | None = None, **quality) -> Service:
    """The real door loop (detector, gate, aligner) with a pixel encoder: frames go in
    through process_frame and the outcome says what was skipped and what was embedded."""
    (tmp_path / "frames").mkdir(exist_ok=True)
    cfg = service_config(tmp_path, quality=quality, detection=detection or {})
    service = Service(cfg, encoder=PixelEncoder(), stdout=io.StringIO())
    service.start()
    return service


def process(service: Service, image: np.ndarray):
    return service.process_frame(Frame(image, 0, 0.0, "test"))


def on_canvas(image: np.ndarray, x: int, y: int, size=(480, 640)) -> np.ndarray:
    canvas = np.full((*size, 3), 128, np.uint8)
    canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
    return canvas


# The small-face tests search every frame whole: the door's glance leaves a face this small
# to the next whole-frame search (tests/test_track.py), and these are about the gate.
WHOLE_FRAMES = {"glance": False}


def test_the_door_skips_and_counts_a_small_face_and_a_blurred_face(tmp_path, face_fixtures):
    service = door(tmp_path, WHOLE_FRAMES)
    try:
        sharp = photo(face_fixtures, Y)
        assert process(service, sharp).crops, "the photo itself passes"
        small = cv2.resize(sharp, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)  # a ~32 px face
        outcome = process(service, on_canvas(small, 300, 200))
        assert outcome.faces == 1 and outcome.skipped == [TOO_SMALL] and outcome.crops == []
        outcome = process(service, cv2.GaussianBlur(sharp, (0, 0), 4))
        assert outcome.faces == 1 and outcome.skipped == [TOO_BLURRED] and outcome.crops == []
        assert outcome.results == [] and outcome.events == []
        assert dict(service.counters.skipped_faces) == {TOO_SMALL: 1, TOO_BLURRED: 1}
    finally:
        service.close()


def test_the_door_gate_follows_the_configured_limits(tmp_path, face_fixtures):
    """min_face_px and min_blur come from [quality]: lowered, the same faces are embedded."""
    service = door(tmp_path, WHOLE_FRAMES, min_face_px=20, min_eye_distance_px=5, min_blur=1)
    try:
        sharp = photo(face_fixtures, Y)
        small = cv2.resize(sharp, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
        assert len(process(service, on_canvas(small, 300, 200)).crops) == 1
        assert len(process(service, cv2.GaussianBlur(sharp, (0, 0), 4)).crops) == 1
    finally:
        service.close()


def test_with_one_face_to_embed_the_door_takes_the_person_in_the_middle(tmp_path, face_fixtures, detector):
    """Two people of the same size: the one in the centre of the frame is embedded, the
    one at the edge is not (quality.max_faces = 1)."""
    x, y = photo(face_fixtures, X), photo(face_fixtures, Y)
    size = (250, 1000)
    both = on_canvas(x, 375, 0, size)
    both[:, 750:] = y
    centre_only, edge_only = on_canvas(x, 375, 0, size), on_canvas(y, 750, 0, size)
    service = door(tmp_path, max_faces=1)
    try:
        outcome = process(service, both)
    finally:
        service.close()
    assert outcome.faces == 2 and len(outcome.crops) == 1
    want = prepare_faces(centre_only, detector).crops[0]
    other = prepare_faces(edge_only, detector).crops[0]
    got = outcome.crops[0].astype(int)
    assert np.abs(got - want).mean() < 2 < np.abs(got - other).mean()
