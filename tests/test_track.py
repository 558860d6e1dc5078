"""Searching a camera's frames around the last faces (daemon.faces.track), with the real
detector: the region finds the face the whole frame finds, with the same crop; a glance
at an untracked frame finds a door-sized face and hands it to a region search; a face
that leaves the region costs a search, not a frame; and the whole frame is searched
often enough to find someone who steps in elsewhere or is too small for the glance."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.door.service import Service
from daemon.embeddings import load_encoder
from daemon.faces.align import prepare_faces
from daemon.faces.detect import GLANCE_SIDE, Face, FaceDetector
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
    # Two faces: one square around both, searched at 192 px a side, would shrink them (50 px
    # to 19): the whole frame is searched instead.
    assert region_around([_face(100, 100, 150, 150), _face(300, 100, 350, 150)], (480, 640)) is None
    # One large face keeps its region (200 px wide, searched at 67).
    assert region_around([_face(250, 120, 450, 380)], (480, 640)) == (64, 0, 636, 480)
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
    # glance + region, region, whole, region, region, whole, region
    assert tracker.searches == {"frame": 2, "region": 5, "glance": 1}


def test_a_glance_finds_an_untracked_face_and_its_region_gives_the_crop(detector):
    frame = door_frame(("Vladimir_Putin", 300, 150))
    tracker = FaceTracker()
    first = tracker.prepare(frame, detector)
    assert tracker.searches == {"frame": 0, "region": 1, "glance": 1}
    glimpsed = detector.detect(frame, max_side=GLANCE_SIDE)
    in_region = prepare_faces(frame, detector, region=region_around(glimpsed, frame.shape[:2]))
    assert len(first.crops) == 1
    np.testing.assert_array_equal(first.crops[0], in_region.crops[0])
    whole = prepare_faces(frame, detector)
    a, b = load_encoder().embed(np.stack([whole.crops[0], first.crops[0]]))
    assert np.linalg.norm(a - b) < 0.6, "the same face, far inside the match threshold (1.13)"


def test_a_frame_no_larger_than_the_glance_is_searched_whole(detector):
    frame = cv2.resize(door_frame(("Vladimir_Putin", 300, 150)), (GLANCE_SIDE, GLANCE_SIDE * 3 // 4))
    tracker = FaceTracker()
    found = tracker.prepare(frame, detector)
    assert tracker.searches == {"frame": 1, "region": 0, "glance": 0}
    np.testing.assert_array_equal(found.crops[0], prepare_faces(frame, detector).crops[0])


def test_an_empty_doorstep_costs_glances_and_a_whole_frame_now_and_then(detector):
    tracker = FaceTracker(full_frame_every=3)
    empty = door_frame()
    assert not any(tracker.prepare(empty, detector).detected for _ in range(6))
    assert tracker.searches == {"frame": 2, "region": 0, "glance": 4}


def test_a_face_too_small_for_the_glance_is_found_at_the_next_whole_frame_search(detector):
    frame = door_frame(("Donald_Rumsfeld", 300, 200), side=96)  # a ~40 px face, about 3 m away
    assert detector.detect(frame) and not detector.detect(frame, max_side=GLANCE_SIDE)
    tracker = FaceTracker(full_frame_every=4)
    counts = [len(tracker.prepare(frame, detector).detected) for _ in range(5)]
    assert counts == [0, 0, 0, 1, 1], "found whole on the fourth frame, then tracked"


def test_a_face_that_leaves_the_region_is_found_in_the_same_frame(detector):
    tracker = FaceTracker(full_frame_every=10)
    tracker.prepare(door_frame(("Jean_Chretien", 20, 20)), detector)
    moved = tracker.prepare(door_frame(("Jean_Chretien", 380, 220)), detector)
    assert len(moved.detected) == 1 and moved.detected[0].box[0] > 380
    # The old region is empty, so the frame is glanced at and the face searched where it went.
    assert tracker.searches == {"frame": 0, "region": 3, "glance": 2}
    tracker = FaceTracker(full_frame_every=10, glance_side=0)
    tracker.prepare(door_frame(("Jean_Chretien", 20, 20)), detector)
    moved = tracker.prepare(door_frame(("Jean_Chretien", 380, 220)), detector)
    assert len(moved.detected) == 1 and moved.detected[0].box[0] > 380
    assert tracker.searches == {"frame": 2, "region": 1, "glance": 0}


def test_someone_who_steps_in_elsewhere_is_found_at_the_next_whole_frame_search(detector):
    tracker = FaceTracker(full_frame_every=4)
    tracker.prepare(door_frame(("Jean_Chretien", 20, 20)), detector)
    both = door_frame(("Jean_Chretien", 20, 20), ("Donald_Rumsfeld", 380, 220))
    counts = [len(tracker.prepare(both, detector).detected) for _ in range(4)]
    assert counts == [1, 1, 2, 2], "the fourth frame since the first sight is searched whole"


def test_the_door_loop_tracks_and_glances_unless_told_not_to(tmp_path):
    frame = Frame(door_frame(("Vladimir_Putin", 300, 150)), 0, 0.0, "test")
    expected = {(True, True): {"frame": 0, "region": 3, "glance": 1},
                (True, False): {"frame": 1, "region": 2, "glance": 0},
                (False, True): {"frame": 3, "region": 0, "glance": 0}}
    for (track, glance), searches in expected.items():
        folder = tmp_path / f"{track}-{glance}"
        (folder / "frames").mkdir(parents=True)
        service = Service(service_config(folder, detection={"track": track, "glance": glance}),
                          stdout=io.StringIO())
        service.start()
        try:
            outcomes = [service.process_frame(frame) for _ in range(3)]
        finally:
            service.close()
        assert all(len(o.crops) == 1 for o in outcomes)
        assert service.health()["searches"] == searches, (track, glance)


def test_a_face_cut_by_the_region_edge_is_left_to_the_whole_frame_search(detector):
    frame = door_frame(("Vladimir_Putin", 300, 150))
    face = prepare_faces(frame, detector).detected[0]
    cut = int((face.box[0] + face.box[2]) / 2) + 10  # through the face, right of its nose
    for region in ((0, 0, cut, 480), (cut - 20, 0, 640, 480)):
        found = detector.detect(frame, region)
        assert found == [], region
