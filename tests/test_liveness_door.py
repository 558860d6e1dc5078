"""The door with liveness, end to end: the shipped detector, encoder, face-mesh, iris and
PAD models on NUAA frames of one enrolled subject (tests/fixtures/liveness), replayed
with their real timing (picture number / 20 fps).

- a real sequence in which the subject blinks unlocks;
- a print of the same subject, which the encoder matches (it unlocks with liveness off),
  does not;
- with liveness off the door behaves exactly as before.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.liveness_bench import NUAA_FPS, SequenceClock, TimedFrames
from daemon.door.service import Service
from daemon.embeddings import load_encoder
from daemon_helpers import service_config

LIVE = Path(__file__).resolve().parent / "fixtures" / "liveness"
PERSON = "nuaa_0005"
OLD_KEYS = {"event", "event_id", "device_id", "site", "person_id", "name", "distance", "frames_voted", "model_id", "ts"}


@pytest.fixture(scope="module")
def encoder(encoder_model):
    return load_encoder(encoder_model)


def timed_frames(folder: str) -> list:
    """The folder's frames at their capture times, then the empty doorway 10 s later (the
    person has left: their presentation ends)."""
    paths = sorted((LIVE / folder).glob("*.jpg"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    frames = [(int(p.stem.rsplit("_", 1)[1]) / NUAA_FPS, cv2.imread(str(p))) for p in paths]
    return frames + [(frames[-1][0] + 10.0, np.full_like(frames[0][1], 128))]


def run_door(tmp_path, encoder, frames, mode: str, **liveness):
    """Replay (seconds, image) frames, or a fixture folder's, through a door that knows the subject."""
    cfg = service_config(tmp_path, gallery={"photos": str(LIVE / "enroll")}, liveness={"mode": mode, **liveness})
    frames = timed_frames(frames) if isinstance(frames, str) else frames
    clock = SequenceClock(frames[0][0])
    out = io.StringIO()
    service = Service(cfg, source=TimedFrames(frames, clock), encoder=encoder, stdout=out, clock=clock)
    service.start()
    try:
        service.run(exit_at_end=True)
    finally:
        service.close()
    return service, [json.loads(line) for line in out.getvalue().splitlines()]


def unlocks(events) -> list[str]:
    return [e["person_id"] for e in events if e["event"] == "unlock"]


def test_the_print_is_matched_so_without_liveness_it_opens_the_door(tmp_path, encoder):
    """The premise of the next tests: the encoder recognises the printed photo."""
    service, events = run_door(tmp_path, encoder, "print_attack", "off")
    assert unlocks(events) == [PERSON]
    assert set(events[0]) == OLD_KEYS, "mode off: the unlock event is the one from before liveness"
    assert service.health()["liveness"] == {"mode": "off"}
    assert service.counters.results["match"] >= 3


def test_without_liveness_the_real_sequence_unlocks_as_before(tmp_path, encoder):
    service, events = run_door(tmp_path, encoder, "real_blink", "off")
    assert unlocks(events) == [PERSON] and "liveness" not in events[0]


def test_a_real_sequence_with_a_blink_unlocks_and_says_the_blink_passed(tmp_path, encoder):
    service, events = run_door(tmp_path, encoder, "real_blink", "blink")
    assert unlocks(events) == [PERSON]
    liveness = events[0]["liveness"]
    assert liveness["mode"] == "blink" and liveness["passed"] == ["blink"]
    assert liveness["cues"]["blink"]["passed"] and liveness["cues"]["blink"]["closed_ear"] <= 0.17
    health = service.health()["liveness"]
    assert health["passed_presentations"] == 1 and health["rejected_presentations"] == 0


def test_the_same_persons_print_does_not_unlock_and_is_counted_as_rejected(tmp_path, encoder, caplog):
    with caplog.at_level(logging.DEBUG, logger="daemon.door.service"):
        service, events = run_door(tmp_path, encoder, "print_attack", "blink")
    assert unlocks(events) == []
    health = service.health()["liveness"]
    assert health["refused_unlocks"] >= 1, "the vote wanted to unlock: liveness said no"
    assert health["rejected_presentations"] == 1, "the print's presentation ended refused"
    decisions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decision ")]
    assert len(decisions) == health["refused_unlocks"], "one -v line per decision"
    assert f"decision {PERSON}: matched in" in decisions[0] and "blink failed" in decisions[0]
    assert decisions[0].endswith("-> no unlock")


def test_without_the_closed_eye_frame_the_real_sequence_does_not_unlock(tmp_path, encoder):
    """The blink, not something else in the real frames, is what opens the door."""
    frames = [f for f in timed_frames("real_blink") if f[0] != 1.0]  # picture 20 (1.0 s): eyes shut
    service, events = run_door(tmp_path, encoder, frames, "blink")
    assert events == [] and service.counters.results["match"] >= 3


def test_a_grayscale_ir_camera_still_sees_the_blink(tmp_path, encoder):
    frames = [(t, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)) for t, image in timed_frames("real_blink")]
    _, events = run_door(tmp_path, encoder, frames, "blink")
    assert unlocks(events) == [PERSON]


def test_garbage_and_edge_of_frame_faces_do_not_stop_the_door_with_liveness_on(tmp_path, encoder):
    real = timed_frames("real_blink")
    t0 = real[0][0]
    shifted = cv2.warpAffine(real[0][1], np.float32([[1, 0, 110], [0, 1, 0]]), (320, 240))  # face cut by the edge
    garbage = [np.zeros((1, 1), np.uint8), np.zeros((4, 4, 5), np.uint8), np.full((240, 320, 3), 7, np.float32),
               shifted]
    frames = [(t0 - 1 + i * 0.1, g) for i, g in enumerate(garbage)] + real
    service, events = run_door(tmp_path, encoder, frames, "blink")
    assert service.counters.frame_errors >= 1 and service.counters.frames == len(frames)
    assert service.liveness.counters.errors == 0
    assert unlocks(events) == [PERSON]


@pytest.mark.parametrize("mode", ["passive", "both"])
def test_with_the_shipped_pad_network_the_real_sequence_unlocks_and_the_print_does_not(tmp_path, encoder, mode):
    """The wiring of the passive cue (crop, int8 model, threshold, window mean). The shipped
    network was trained on all of NUAA, these frames included, so this is no measure of how
    well it generalises: that is bench/liveness_bench.py's job (docs/liveness.md)."""
    service, events = run_door(tmp_path / "real", encoder, "real_blink", mode)
    assert unlocks(events) == [PERSON]
    assert events[0]["liveness"]["passed"] == (["passive"] if mode == "passive" else ["blink", "passive"])
    assert events[0]["liveness"]["cues"]["passive"]["score"] >= 0.5
    service, events = run_door(tmp_path / "print", encoder, "print_attack", mode)
    assert unlocks(events) == []
    assert service.health()["liveness"]["rejected_presentations"] == 1
