"""A video file as the door's camera (`facegate run --camera clip.avi`): a missing file
is an immediate error, the end is logged and shown in health, and --realtime plays it at
its own frame rate so that voting and cooldowns see real time."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from daemon.frames import OpenCVSource
from daemon.door.service import Service
from daemon_helpers import PixelEncoder, ServiceThread, copy_photos, person_photos, service_config

REPO = Path(__file__).resolve().parent.parent
PERSON = "Jean_Chretien"


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """A small MJPG .avi from the given frames (made in the test, never committed)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi files"
    for frame in frames:
        writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def door(tmp_path: Path, face_fixtures: Path, fps: float, repeat: int, **source) -> tuple[Service, io.StringIO]:
    photos = person_photos(face_fixtures, PERSON)[:2]
    copy_photos(photos, tmp_path / "people" / PERSON)
    # The enrolled photos themselves, which PixelEncoder recognises (through MJPG's loss).
    video = write_video(tmp_path / "door.avi", [cv2.imread(str(p)) for p in photos] * repeat, fps)
    out = io.StringIO()
    cfg = service_config(tmp_path, gallery={"photos": str(tmp_path / "people")},
                         source={"kind": "opencv", "device": str(video), **source},
                         decision={"k": 2, "n": 3, "cooldown_s": 1.0})
    return Service(cfg, encoder=PixelEncoder(), stdout=out), out


def test_the_end_of_a_video_is_logged_and_health_shows_the_source_idle(tmp_path, face_fixtures, caplog):
    service, out = door(tmp_path, face_fixtures, fps=10.0, repeat=2)
    with caplog.at_level(logging.INFO):
        running = ServiceThread(service)  # without --once: the daemon stays up after the end
        try:
            assert running.wait_until(lambda s: s.health()["source"]["idle"], timeout=60)
            time.sleep(1.0)  # the idle loop reads the source again every 0.2 s
            assert service.counters.frames == 4
            health = service.health()
            assert health["source"]["idle"] and health["source"]["name"] == f"video file {tmp_path / 'door.avi'}"
        finally:
            running.stop()
    ends = [r.getMessage() for r in caplog.records if "end of the recording" in r.getMessage()]
    assert ends == [f"video file {tmp_path / 'door.avi'}: end of the recording after 4 frame(s); "
                    "no more frames will come"], "logged once, not at every idle poll"


def test_realtime_plays_a_video_at_its_own_frame_rate(tmp_path):
    video = write_video(tmp_path / "clip.avi", [np.full((48, 64, 3), v, np.uint8) for v in range(0, 240, 40)],
                        fps=10.0)
    for realtime in (True, False):
        source = OpenCVSource(video, realtime=realtime)
        source.open()
        start = time.monotonic()
        while source.read() is not None:
            pass
        elapsed = time.monotonic() - start
        source.close()
        if realtime:
            assert elapsed >= 0.5, "five frame periods of 100 ms between six frames"
        else:
            assert elapsed < 0.4, "as fast as it decodes"


def test_realtime_video_lets_the_cooldown_pass_as_it_would_at_a_door(tmp_path, face_fixtures):
    """4 s of the same person at 3 fps with a 1 s cooldown: more than one unlock, as a
    camera would give; the whole clip takes (at least) its own length to play."""
    service, out = door(tmp_path, face_fixtures, fps=3.0, repeat=6, realtime=True)
    service.start()
    start = time.monotonic()
    try:
        service.run(exit_at_end=True)
    finally:
        service.close()
    assert time.monotonic() - start >= 11 / 3.0
    unlocks = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(unlocks) >= 2 and {u["person_id"] for u in unlocks} == {PERSON}


def test_a_missing_video_file_with_once_exits_at_once(tmp_path):
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "daemon", "run", "--camera", str(tmp_path / "door.mp4"),
                             "--state-dir", str(tmp_path / "state"), "--once"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().endswith(f"video file not found: {tmp_path / 'door.mp4'}")
    assert time.monotonic() - start < 60
