"""Searching a camera's frames around the last faces (daemon.faces.track), with the real
detector: the region finds the face the whole frame finds, with the same crop; a face
that leaves the region costs a search, not a frame; and the whole frame is searched
often enough to find someone who steps in elsewhere."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.door.service import Service
from daemon.embeddings import load_encoder
from daemon.faces.align import prepare_faces
from daemon.faces.detect import Face, FaceDetector
from daemon.faces.track import FaceTracker, region_around
from daemon.frames import Frame
from daemon_helpers import service_config

FACES = Path(__file__).parent / "fixtures" / "faces"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def photo(name: str) -> np.ndarray:
    return cv2.imread(str(next((FACES / name).glob("*.jpg"))), cv2.IMREAD_GRAYSCALE)


def door_frame(*placed: tuple[str, int, int], side: int = 250) -> np.ndarray:
    """A 640x480 grey frame with LFW photos (face ~100 px wide at side 250) pasted at x, y."""
    frame = np.full((480, 640), 90, np.uint8)
    for name, x, y in placed:
        frame[y:y + side, x:x + side] = cv2.resize(photo(name), (side, side))
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def _face(x0, y0, x1, y1) -> Face:
    return Face((x0, y0, x1, y1), 0.9, np.zeros((5, 2), np.float32))


def test_the_region_is_a_square_around_the_faces_clipped_to_the_frame():
    assert region_around([], (480, 640)) is None
    assert region_around([_face(300, 200, 350, 250)], (480, 640)) == (270, 170, 380, 280)
    x0, y0, x1, y1 = region_around([_face(0, 0, 60, 60)], (480, 640))
    assert (x0, y0) == (0, 0) and x1 == y1 == 96
    # Two faces: one square around both.
    assert region_around([_face(100, 100, 150, 150), _face(300, 100, 350, 150)], (480, 640)) == (0, 0, 500, 400)
    # Nearly the whole frame: search the frame.
    assert region_around([_face(150, 50, 500, 450)], (480, 640)) is None


def test_a_region_search_finds_the_face_and_crop_of_a_whole_frame_search(detector):
    frame = door_frame(("Vladimir_Putin", 300, 150))
    whole = prepare_faces(frame, detector)
    region = region_around(whole.detected, frame.shape[:2])
    assert region is not None and (region[2] - region[0]) < 320
    tracked = prepare_faces(frame, detector, region=region)
    assert len(tracked.detected) == len(whole.detected) == 1
    # The region is searched at another scale and offset: YuNet's landmarks move by a few
    # pixels, as between two whole frames of a person standing still.
    np.testing.assert_allclose(tracked.detected[0].landmarks, whole.detected[0].landmarks, atol=6.0)
    a, b = load_encoder().embed(np.stack([whole.crops[0], tracked.crops[0]]))
    assert np.linalg.norm(a - b) < 0.6, "the same face, far inside the match threshold (1.13)"


def test_the_tracker_searches_regions_between_whole_frames(detector):
    tracker = FaceTracker(full_frame_every=3)
    frame = door_frame(("Serena_Williams", 200, 100))
    found = [tracker.prepare(frame, detector) for _ in range(7)]
    assert all(len(f.detected) == 1 for f in found)
    # whole, region, region, whole, region, region, whole
    assert tracker.searches == {"frame": 3, "region": 4}


def test_a_face_that_leaves_the_region_is_found_in_the_same_frame(detector):
    tracker = FaceTracker(full_frame_every=10)
    tracker.prepare(door_frame(("Jean_Chretien", 20, 20)), detector)
    moved = tracker.prepare(door_frame(("Jean_Chretien", 380, 220)), detector)
    assert len(moved.detected) == 1 and moved.detected[0].box[0] > 380
    assert tracker.searches == {"frame": 2, "region": 1}


def test_someone_who_steps_in_elsewhere_is_found_at_the_next_whole_frame_search(detector):
    tracker = FaceTracker(full_frame_every=4)
    tracker.prepare(door_frame(("Jean_Chretien", 20, 20)), detector)
    both = door_frame(("Jean_Chretien", 20, 20), ("Donald_Rumsfeld", 380, 220))
    counts = [len(tracker.prepare(both, detector).detected) for _ in range(4)]
    assert counts == [1, 1, 1, 2], "the fourth frame after a whole-frame search is searched whole"


def test_the_door_loop_tracks_unless_told_not_to(tmp_path):
    frame = Frame(door_frame(("Vladimir_Putin", 300, 150)), 0, 0.0, "test")
    for track, regions in ((True, 2), (False, 0)):
        (tmp_path / str(track) / "frames").mkdir(parents=True)
        service = Service(service_config(tmp_path / str(track), detection={"track": track}), stdout=io.StringIO())
        service.start()
        try:
            outcomes = [service.process_frame(frame) for _ in range(3)]
        finally:
            service.close()
        assert all(len(o.crops) == 1 for o in outcomes)
        assert service.tracker.searches["region"] == regions
        assert service.health()["searches"] == {"frame": 3 - regions, "region": regions}


def test_a_face_cut_by_the_region_edge_is_left_to_the_whole_frame_search(detector):
    frame = door_frame(("Vladimir_Putin", 300, 150))
    face = prepare_faces(frame, detector).detected[0]
    cut = int((face.box[0] + face.box[2]) / 2) + 10  # through the face, right of its nose
    for region in ((0, 0, cut, 480), (cut - 20, 0, 640, 480)):
        found = detector.detect(frame, region)
        assert found == [], region
