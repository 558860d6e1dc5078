"""Liveness without the door: eye aspect ratio, the blink and passive judges, the policy
(window, identity binding, bookkeeping), the decision gate, config and events. The eye
models are the shipped MediaPipe ones, run on the NUAA fixture frames."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.config import ConfigError, config_from_dict
from daemon.decision import UnlockDecider
from daemon.events import unlock_event
from daemon.faces.detect import FaceDetector
from daemon.liveness import FacePoints, LivenessGate, Reading, build_gate
from daemon.liveness.blink import BlinkCue, BlinkThresholds, eye_value, find_blink
from daemon.liveness.crops import Region, crop, to_image
from daemon.liveness.eyes import EyeLandmarker, eye_aspect_ratio
from daemon.liveness.passive import judge_live_probabilities, pad_region
from daemon.liveness.policy import box_iou
from daemon.matching import AMBIGUOUS, MATCH, UNKNOWN, MatchResult

LIVE = Path(__file__).resolve().parent / "fixtures" / "liveness"
T = BlinkThresholds(closed_ear=0.17, open_ear=0.21)


def readings(*values, start=0.0, step=0.5):
    return [Reading(start + i * step, v) for i, v in enumerate(values)]


# ---------------------------------------------------------------- eye aspect ratio

def eye_contour(gap: float, width: float = 1.0) -> np.ndarray:
    """71 points: corners 0 and 8, lower lid 1-7, upper lid 9-15 (iris model order), lids `gap` apart."""
    pts = np.zeros((71, 3))
    xs = np.linspace(0, width, 9)
    pts[0:9, 0] = xs
    pts[9:16, 0] = xs[1:8]
    pts[9:16, 1] = -gap  # upper lid above (image y grows downwards)
    return pts


def test_eye_aspect_ratio_is_the_lid_gap_over_the_eye_width():
    assert eye_aspect_ratio(eye_contour(0.3)) == pytest.approx(0.3)
    arched = eye_contour(0.0)
    arched[9:16, 1] = -np.array([0.1, 0.2, 0.3, 0.4, 0.3, 0.2, 0.1])  # lid pairs 2-6 are averaged
    assert eye_aspect_ratio(arched) == pytest.approx(np.mean([0.2, 0.3, 0.4, 0.3, 0.2]))
    assert eye_aspect_ratio(eye_contour(0.6, width=2.0)) == pytest.approx(0.3), "scale-free"
    assert eye_aspect_ratio(eye_contour(0.0)) == pytest.approx(0.0)


def test_a_frame_reads_closed_only_when_both_eyes_are_closed():
    assert eye_value(0.05, 0.30) == 0.30, "a wink (or one mis-read eye) is not a blink"
    assert eye_value(0.05, 0.08) == 0.08


@pytest.fixture(scope="module")
def fixture_faces():
    """(name, image, FacePoints) of every fixture frame, by the shipped detector."""
    detector = FaceDetector()
    out = {}
    for path in [*LIVE.glob("real_blink/*.jpg"), *LIVE.glob("print_attack/*.jpg"), *LIVE.glob("enroll/*/*.jpg")]:
        image = cv2.imread(str(path))
        face = max(detector.detect(image), key=lambda f: f.width * f.height)
        out[path.stem] = (image, FacePoints.of(face))
    return out


def test_the_mesh_and_iris_models_see_open_and_closed_eyes_in_real_frames(fixture_faces):
    landmarker = EyeLandmarker()
    read = {name: landmarker.read(image, f.box, f.right_eye, f.left_eye) for name, (image, f) in fixture_faces.items()}
    closed = read["0005_00_00_02_20"]
    assert eye_value(closed.ear_right, closed.ear_left) <= T.closed_ear, "picture 20: the eyes are shut"
    for name in ("0005_00_00_02_5", "0005_00_00_02_26", "0005_00_00_02_65", "0005_00_00_01_0"):
        r = read[name]
        assert eye_value(r.ear_right, r.ear_left) >= T.open_ear, name
    assert all(r.presence > 0.5 for r in read.values())
    # the mesh lands on the face: its eye corners lie inside the detector's box
    box = fixture_faces["0005_00_00_02_5"][1].box
    corners = read["0005_00_00_02_5"].mesh[[33, 133, 362, 263]]
    inside = (corners[:, 0] > box[0]) & (corners[:, 0] < box[2]) & (corners[:, 1] > box[1]) & (corners[:, 1] < box[3])
    assert inside.all()


def test_the_iris_model_contours_land_on_the_right_eye_corners_of_both_eyes(fixture_faces):
    """Each eye's refined contour starts and ends at that eye's mesh corners (the left eye is
    mirrored for the model and its points mirrored back)."""
    landmarker = EyeLandmarker()
    for name in ("0005_00_00_02_5", "0005_00_00_02_20", "0005_00_00_01_156"):
        image, f = fixture_faces[name]
        r = landmarker.read(image, f.box, f.right_eye, f.left_eye)
        for contour, (outer, inner) in ((r.eyes[0], (33, 133)), (r.eyes[1], (263, 362))):
            width = np.linalg.norm(r.mesh[outer] - r.mesh[inner])
            assert np.linalg.norm(contour[0] - r.mesh[outer]) < 0.2 * width, name
            assert np.linalg.norm(contour[8] - r.mesh[inner]) < 0.2 * width, name


def test_a_tilted_head_still_reads_open_and_closed(fixture_faces):
    """The face and eye crops are turned so the eyes are level, as the models were trained."""
    landmarker = EyeLandmarker()
    detector = FaceDetector()
    for name, is_open in (("0005_00_00_02_5", True), ("0005_00_00_02_20", False)):
        image = fixture_faces[name][0]
        h, w = image.shape[:2]
        tilted = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 35, 1.0), (w, h),
                                borderMode=cv2.BORDER_REPLICATE)
        face = max(detector.detect(tilted), key=lambda f: f.width * f.height)
        r = landmarker.read(tilted, face.box, face.landmarks[0], face.landmarks[1])
        value = eye_value(r.ear_right, r.ear_left)
        assert (value >= T.open_ear) if is_open else (value <= T.closed_ear), (name, value)


def test_crop_regions_map_points_back_exactly():
    region = Region((120.0, 80.0), 64.0, np.deg2rad(20))
    pts = np.array([[0.0, 0.0], [191.0, 191.0], [96.0, 10.0]])
    m = region.matrix(192)
    image_pts = to_image(pts, region, 192)
    back = image_pts @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(back, pts, atol=1e-9)
    image = np.zeros((200, 200, 3), np.uint8)
    image[80, 120] = 255  # the centre pixel lands in the middle of the crop
    assert crop(image, Region((120.0, 80.0), 8.0, 0.0), 8)[4, 4].max() > 0


def test_the_passive_region_follows_the_eyes_not_the_box():
    level = pad_region((100, 100), (140, 100))
    assert level.side == pytest.approx(4.5 * 40) and level.center == pytest.approx((120, 120))
    tilted = pad_region((100, 100), (100 + 40 * np.cos(0.3), 100 + 40 * np.sin(0.3)))
    assert tilted.angle == pytest.approx(0.3) and tilted.side == pytest.approx(180)


# ---------------------------------------------------------------- the judges

def test_a_blink_is_open_then_closed_then_open_again():
    assert find_blink(readings(0.28, 0.08, 0.27), T).passed
    assert find_blink(readings(0.28, 0.25, 0.15, 0.19, 0.26), T).passed, "closure may take frames"


@pytest.mark.parametrize("values, why", [
    ((0.28, 0.27, 0.26, 0.28), "no eye closure"),
    ((0.28, 0.08, 0.10), "eyes closed, not yet reopened"),
    ((0.08, 0.27), "no eye closure"),             # closed first: an open-eyed print swapped in after a shut-eyed one
    ((0.12, 0.08), "eyes never seen open"),
    ((0.28, 0.19, 0.27), "no eye closure"),       # a dip that stays above the closed threshold
    ((), "eyes never seen open"),
])
def test_no_blink_without_the_full_open_closed_open_sequence(values, why):
    result = find_blink(readings(*values), T)
    assert not result.passed and result.why.startswith(why)


def test_the_passive_judge_needs_enough_frames_and_a_high_enough_mean():
    assert judge_live_probabilities(readings(0.9, 0.8, 0.7), 0.5, 3).passed
    assert not judge_live_probabilities(readings(0.9, 0.9), 0.5, 3).passed, "too few frames"
    assert not judge_live_probabilities(readings(0.9, 0.2, 0.2), 0.5, 3).passed, "one lucky frame is not enough"
    assert judge_live_probabilities(readings(0.9, 0.8, 0.7), 0.5, 3).detail == {"score": 0.8, "frames": 3}


# ---------------------------------------------------------------- the policy

class ScriptedCue:
    """A cue whose per-frame value is read off the image (the policy tests need no model)."""

    def __init__(self, name, judge, fail_on=None):
        self.name, self._judge, self.fail_on = name, judge, fail_on

    def measure(self, image, face):
        if self.fail_on is not None and image[0, 0] == self.fail_on:
            raise RuntimeError("model exploded")
        return None if image[0, 0] == 0 else image[0, 0] / 100.0

    def judge(self, rs):
        return self._judge(rs)


def blink_gate(window_s=5.0, margin=0.1, fail_on=None) -> LivenessGate:
    return LivenessGate("blink", [ScriptedCue("blink", lambda rs: find_blink(rs, T), fail_on)], window_s, margin)


def frame(ear_percent: int) -> np.ndarray:
    return np.full((2, 2), ear_percent, np.uint8)


FACE = FacePoints((100.0, 100.0, 200.0, 200.0), np.array([130.0, 140.0]), np.array([170.0, 140.0]))


def matched(pid="alice", distance=0.4):
    return MatchResult(MATCH, pid, distance)


def test_evidence_is_filed_under_the_matched_person_and_judged_in_the_window():
    gate = blink_gate()
    for t, ear in ((0.0, 28), (1.0, 8), (2.0, 27)):
        gate.observe_frame(frame(ear), [(FACE, matched())], 0.6, t)
    assert gate.verdict("alice", 2.0).passed
    assert not gate.verdict("bob", 2.0).passed, "Alice's blink is no evidence for Bob"
    assert not gate.verdict("alice", 6.5).passed, "the blink is older than the window"


def test_faces_of_nobody_cost_nothing():
    gate = blink_gate()
    gate.observe_frame(frame(28), [(FACE, MatchResult(UNKNOWN, "alice", 1.2)), (FACE, MatchResult(UNKNOWN, None, 9))],
                       0.6, 0.0)
    assert gate.counters.checked_faces == 0


def test_a_closed_eye_frame_just_missing_the_threshold_still_counts_where_the_person_just_was():
    gate = blink_gate(margin=0.1)
    gate.observe_frame(frame(28), [(FACE, matched())], 0.6, 0.0)
    gate.observe_frame(frame(8), [(FACE, MatchResult(UNKNOWN, "alice", 0.66))], 0.6, 0.5)
    gate.observe_frame(frame(27), [(FACE, matched())], 0.6, 1.0)
    assert gate.verdict("alice", 1.0).passed


@pytest.mark.parametrize("result, face, t, why", [
    (MatchResult(UNKNOWN, "alice", 0.75), FACE, 0.5, "too far from Alice even with the margin"),
    (MatchResult(UNKNOWN, "alice", 0.66), FacePoints((300.0, 100.0, 400.0, 200.0), FACE.right_eye, FACE.left_eye),
     0.5, "somewhere else in the frame"),
    (MatchResult(UNKNOWN, "alice", 0.66), FACE, 6.0, "Alice was last matched longer ago than the window"),
    (MatchResult(AMBIGUOUS, "bob", 0.5, "alice", 0.52), FACE, 0.5, "nearest is Bob"),
])
def test_a_face_that_did_not_match_counts_for_no_one_otherwise(result, face, t, why):
    gate = blink_gate(margin=0.1)
    gate.observe_frame(frame(28), [(FACE, matched())], 0.6, 0.0)
    gate.observe_frame(frame(8), [(face, result)], 0.6, t)
    gate.observe_frame(frame(27), [(FACE, matched())], 0.6, t + 0.1)
    assert not gate.verdict("alice", t + 0.1).passed, why


def test_an_unlock_uses_up_the_evidence_and_a_refused_presentation_is_counted_when_it_ends():
    gate = blink_gate()
    for t, ear in ((0.0, 28), (1.0, 8), (2.0, 27)):
        gate.observe_frame(frame(ear), [(FACE, matched())], 0.6, t)
    assert gate.decide("alice", 2.0).passed
    assert not gate.decide("alice", 2.5).passed, "a second unlock needs a second blink"
    assert gate.counters.passed_presentations == 1 and gate.counters.refused_unlocks == 1
    gate.observe_frame(frame(28), [(FACE, matched())], 0.6, 3.0)
    gate.observe_frame(frame(28), [(FACE, matched("carol"))], 0.6, 3.0)  # matched, never due to unlock
    assert gate.expire(5.0) == [] and gate.counters.rejected_presentations == 0, "still there"
    assert gate.expire(8.1) == ["alice"], "gone longer than the window, no unlock; Carol never refused"
    assert gate.counters.rejected_presentations == 1
    assert gate.expire(20.0) == [], "counted once"


def test_a_cue_that_fails_leaves_no_reading_and_raises_nothing(caplog):
    gate = blink_gate(fail_on=99)
    with caplog.at_level(logging.WARNING):
        gate.observe_frame(frame(99), [(FACE, matched())], 0.6, 0.0)
        gate.observe_frame(frame(0), [(FACE, matched())], 0.6, 0.5)  # unusable reading
    assert gate.counters.errors == 1 and gate.counters.unusable_readings == 1
    assert "liveness cue blink failed" in caplog.text
    assert not gate.verdict("alice", 1.0).passed


def test_both_needs_every_cue_and_reports_each():
    passive = ScriptedCue("passive", lambda rs: judge_live_probabilities(rs, 0.5, 1))
    blink = ScriptedCue("blink", lambda rs: find_blink(rs, T))
    gate = LivenessGate("both", [blink, passive], 5.0)
    for t, v in ((0.0, 28), (1.0, 8), (2.0, 27)):  # "passive" reads 0.28, 0.08, 0.27: mean 0.21 < 0.5
        gate.observe_frame(frame(v), [(FACE, matched())], 0.6, t)
    v = gate.verdict("alice", 2.0)
    assert not v.passed and v.results["blink"].passed and not v.results["passive"].passed
    assert v.to_event()["passed"] == ["blink"]
    assert "blink passed" in v.explain() and "passive failed" in v.explain()


def test_gate_construction_refuses_a_mode_without_its_cues():
    with pytest.raises(ValueError, match="needs the cues"):
        LivenessGate("both", [ScriptedCue("blink", None)], 5.0)
    with pytest.raises(ValueError, match="mode off means no gate"):
        LivenessGate("off", [], 5.0)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


# ---------------------------------------------------------------- decision, config, events

def test_a_refused_unlock_starts_no_cooldown():
    decider = UnlockDecider(k=2, n=3, cooldown_s=10.0)
    refuse = lambda unlock: False  # noqa: E731
    assert decider.observe({"alice": 0.4}, 0.0, gate=refuse) == []
    assert decider.observe({"alice": 0.4}, 0.1, gate=refuse) == [], "the vote says yes, liveness says no"
    unlocks = decider.observe({"alice": 0.4}, 0.2, gate=lambda u: True)
    assert [u.person_id for u in unlocks] == ["alice"], "the next frame may unlock at once"
    assert decider.observe({"alice": 0.4}, 0.3, gate=lambda u: True) == [], "now the cooldown runs"


def test_liveness_config_is_checked_and_errors_name_the_key():
    cfg = config_from_dict({"liveness": {"mode": "both", "window_s": 3}}, env={})
    assert cfg.liveness.mode == "both" and cfg.liveness.window_s == 3.0
    for raw, message in (({"mode": "blinky"}, "liveness.mode must be one of off, blink, passive, both"),
                         ({"blink_closed_ear": 0.3, "blink_open_ear": 0.2}, "liveness.blink_open_ear must be above"),
                         ({"window_s": 0}, "liveness.window_s"),
                         ({"passive_threshold": 1.5}, "liveness.passive_threshold"),
                         ({"passive_model": "/nope.tflite"}, "liveness.passive_model: cannot read"),
                         ({"windows": 3}, "unknown key liveness.windows")):
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            config_from_dict({"liveness": raw}, env={})


def test_mode_off_builds_no_gate_and_unlock_events_keep_their_old_keys():
    assert build_gate(config_from_dict({"liveness": {"mode": "off"}}, env={}).liveness).health() == {"mode": "off"}
    common = dict(device_id="d", site="s", person_id="p", name="P", distance=0.4, frames_voted=3, model_id="m",
                  ts=0.0)
    assert set(unlock_event(**common)) == {"event", "event_id", "device_id", "site", "person_id", "name",
                                           "distance", "frames_voted", "model_id", "ts"}
    live = {"mode": "blink", "passed": ["blink"], "cues": {"blink": {"passed": True}}}
    assert unlock_event(**common, liveness=live)["liveness"] == live


def test_the_blink_cue_builds_from_config_with_its_thresholds():
    gate = build_gate(config_from_dict({"liveness": {"mode": "blink", "blink_closed_ear": 0.15}}, env={}).liveness)
    (cue,) = gate.cues
    assert isinstance(cue, BlinkCue) and cue.thresholds == BlinkThresholds(0.15, 0.21)


def test_closed_eyes_in_still_photos_read_closed_in_both_eyes():
    """CEW faces whose left eye reads closed only if it is mirrored for the iris model (which
    knows image-left eyes only), as MediaPipe does."""
    landmarker, detector = EyeLandmarker(), FaceDetector()
    for path in sorted((LIVE / "closed_eyes").glob("*.jpg")):
        image = cv2.imread(str(path))
        pad = max(image.shape[:2]) // 2  # tight crops: the detector needs a margin
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        face = max(detector.detect(image), key=lambda f: f.width * f.height)
        r = landmarker.read(image, face.box, face.landmarks[0], face.landmarks[1])
        assert max(r.ear_right, r.ear_left) <= T.closed_ear, (path.name, r.ear_right, r.ear_left)
