"""Frame sources against real files, real OpenCV and a small flaky source."""

from __future__ import annotations

import importlib.util
import random
import threading
import time

import cv2
import numpy as np
import pytest

from daemon.frames import (Frame, FrameSource, OpenCVSource, PiCameraSource, ReplaySource,
                           ResilientSource, SourceError, open_source)
from daemon.frames.opencv import redact_url


def gray_level(frame: Frame) -> int:
    return int(round(float(frame.image.mean())))


def write_images(folder, levels, suffix=".png"):
    """One flat 32x24 image per grey level, named so that their order is known."""
    folder.mkdir(exist_ok=True)
    for i, level in enumerate(levels):
        assert cv2.imwrite(str(folder / f"img{i}{suffix}"), np.full((24, 32, 3), level, np.uint8))
    return folder


def read_all(source: FrameSource, limit: int = 100) -> list[Frame]:
    frames = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


# --- replay -------------------------------------------------------------------

def test_replay_yields_frames_in_name_order_then_none(tmp_path):
    folder = write_images(tmp_path / "frames", [10 * i for i in range(12)])
    source = ReplaySource(folder, realtime=False)
    source.open()
    frames = read_all(source)
    # Natural order: img2 before img10.
    assert [gray_level(f) for f in frames] == [10 * i for i in range(12)]
    assert [f.index for f in frames] == list(range(12))
    assert all(f.source == source.name and f.image.dtype == np.uint8 for f in frames)
    assert source.read() is None
    source.close()


def test_replay_paces_frames_at_the_requested_rate(tmp_path):
    folder = write_images(tmp_path / "frames", [0, 50, 100, 150, 200])
    source = ReplaySource(folder, fps=40.0)
    source.open()
    start = time.monotonic()
    frames = read_all(source)
    elapsed = time.monotonic() - start
    assert len(frames) == 5
    # Four frame periods of 25 ms; sleeps never return early, so only a lower bound.
    assert elapsed >= 0.09
    assert frames[-1].timestamp - frames[0].timestamp >= 0.09


def test_replay_fps_zero_means_as_fast_as_possible(tmp_path):
    source = ReplaySource(write_images(tmp_path / "frames", [0, 100]), fps=0)
    assert not source.realtime
    source.open()
    assert len(read_all(source)) == 2
    with pytest.raises(ValueError):
        ReplaySource(tmp_path, fps=-1)


def test_replay_loop_wraps_around(tmp_path):
    folder = write_images(tmp_path / "frames", [0, 100, 200])
    source = ReplaySource(folder, loop=True, realtime=False)
    source.open()
    frames = [source.read() for _ in range(7)]
    assert [gray_level(f) for f in frames] == [0, 100, 200, 0, 100, 200, 0]
    assert [f.index for f in frames] == list(range(7))


def test_replay_skips_a_corrupt_image_and_keeps_going(tmp_path, caplog):
    folder = write_images(tmp_path / "frames", [0, 100, 200])
    (folder / "img1.jpg").write_bytes(b"this is not a jpeg at all")  # sorts between img1.png and img2
    (folder / "notes.txt").write_text("not an image, not even tried")
    source = ReplaySource(folder, realtime=False)
    source.open()
    with caplog.at_level("WARNING"):
        frames = read_all(source)
    assert [gray_level(f) for f in frames] == [0, 100, 200]
    assert "img1.jpg" in caplog.text


def test_replay_reads_grayscale_images(tmp_path):
    folder = tmp_path / "gray"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.pgm"), np.full((24, 32), 77, np.uint8))
    source = ReplaySource(folder, realtime=False)
    source.open()
    frame = source.read()
    assert frame.image.shape == (24, 32) and gray_level(frame) == 77


def test_replay_folder_missing_or_empty_raises_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        ReplaySource(tmp_path / "nowhere").open()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(SourceError, match="has no images"):
        ReplaySource(tmp_path / "empty").open()


def test_replay_of_only_broken_images_raises_instead_of_spinning(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"garbage")
    (folder / "b.png").write_bytes(b"")
    source = ReplaySource(folder, loop=True, realtime=False)
    source.open()
    with pytest.raises(SourceError, match="none of the 2 images"):
        source.read()


def test_replay_read_before_open_raises(tmp_path):
    with pytest.raises(SourceError, match="not open"):
        ReplaySource(write_images(tmp_path / "f", [0])).read()


# --- OpenCV -------------------------------------------------------------------

@pytest.fixture
def video_file(tmp_path):
    """A real 6-frame MJPG .avi whose frames get brighter one by one."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi files"
    for level in range(20, 240, 40):
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    return path


def test_opencv_reads_a_video_file_then_returns_none(video_file):
    source = OpenCVSource(str(video_file))
    source.open()
    frames = read_all(source)
    assert len(frames) == 6
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    levels = [gray_level(f) for f in frames]
    assert levels == sorted(levels) and abs(levels[0] - 20) < 6 and abs(levels[-1] - 220) < 6
    assert [f.index for f in frames] == list(range(6))
    assert source.read() is None
    source.close()
    source.close()  # twice is fine


def test_opencv_can_reopen_a_video_file(video_file):
    source = OpenCVSource(video_file)  # a Path works as well as a str
    source.open()
    read_all(source)
    source.open()
    assert len(read_all(source)) == 6


@pytest.mark.parametrize("device", [57, "57", "/dev/video57"])
def test_opencv_missing_camera_raises_source_error(device):
    source = OpenCVSource(device)
    assert source.name.startswith("camera ")
    with pytest.raises(SourceError, match="could not be opened"):
        source.open()


def test_opencv_unreachable_stream_raises_source_error():
    # Port 9 (discard) is closed on test machines: the connection is refused at once.
    source = OpenCVSource("rtsp://viewer:hunter2@127.0.0.1:9/stream", timeout=2.0)
    with pytest.raises(SourceError) as error:
        source.open()
    assert "hunter2" not in str(error.value) and "viewer:***@127.0.0.1:9" in str(error.value)


def test_opencv_missing_video_file_raises_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        OpenCVSource(str(tmp_path / "missing.avi")).open()


def test_redact_url_hides_only_the_password():
    assert redact_url("rtsp://admin:secret@10.0.0.2:554/s1") == "rtsp://admin:***@10.0.0.2:554/s1"
    assert redact_url("http://cam.local/mjpg") == "http://cam.local/mjpg"


# --- picamera2 ----------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None,
                    reason="picamera2 is installed here (a Raspberry Pi?)")
def test_picamera2_without_the_package_explains_how_to_install_it():
    source = PiCameraSource()
    with pytest.raises(SourceError, match=r"sudo apt install python3-picamera2"):
        source.open()
    source.close()


# --- factory ------------------------------------------------------------------

def test_open_source_builds_without_opening(tmp_path):
    replay = open_source("replay", path=tmp_path / "not-yet", fps=5.0)  # no error until open()
    assert isinstance(replay, ReplaySource) and replay.fps == 5.0
    assert isinstance(open_source("opencv", device=0), OpenCVSource)
    assert isinstance(open_source("picamera2", size=(320, 240)), PiCameraSource)
    for source in (replay, open_source("opencv", device=0), open_source("picamera2")):
        assert isinstance(source, FrameSource)


def test_open_source_refuses_an_empty_path_or_device():
    with pytest.raises(ValueError, match="folder"):
        open_source("replay", path="")
    with pytest.raises(ValueError, match="camera index"):
        open_source("opencv", device=" ")


def test_open_source_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match="replay, opencv, picamera2"):
        open_source("webcam")


# --- resilient ----------------------------------------------------------------

class FlakySource(FrameSource):
    """A real source that fails to open ``open_failures`` times, and whose read()
    fails at the reads numbered in ``read_failures`` (counted over its whole life)."""

    def __init__(self, open_failures=0, read_failures=(), frames=None):
        self.name = "flaky"
        self.open_failures = open_failures
        self.read_failures = set(read_failures)
        self.frames = frames  # None: endless
        self.opens = self.closes = self.reads = self.sent = 0
        self.is_open = False

    def open(self):
        self.opens += 1
        if self.opens <= self.open_failures:
            raise SourceError(f"flaky open failure {self.opens}")
        self.is_open = True

    def read(self):
        assert self.is_open, "read() on a closed source"
        self.reads += 1
        if self.reads in self.read_failures:
            raise SourceError(f"flaky read failure at read {self.reads}")
        if self.frames is not None and self.sent >= self.frames:
            return None
        self.sent += 1
        return Frame(np.zeros((8, 8), np.uint8), self.sent - 1, time.time(), self.name)

    def close(self):
        self.closes += 1
        self.is_open = False


class FakeTime:
    """clock() and sleep() that move together without real waiting."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def resilient(source, fake, **options):
    return ResilientSource(source, clock=fake.clock, sleep=fake.sleep, **options)


def test_resilient_recovers_from_failed_opens():
    fake = FakeTime()
    source = resilient(FlakySource(open_failures=3), fake, jitter=0.0)
    source.open()  # fails, but does not raise
    assert not source.healthy and source.last_error == "flaky open failure 1"
    assert source.name == "flaky"
    frame = source.read()
    assert frame is not None and frame.index == 0
    assert source.reopen_count == 3
    assert source.healthy and source.failures == 0 and source.down_since is None
    assert source.last_error == "flaky open failure 3"  # kept for status pages
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_resilient_survives_mid_stream_failures_and_resets_backoff():
    fake = FakeTime()
    flaky = FlakySource(read_failures={3, 6, 7})
    source = resilient(flaky, fake, jitter=0.0)
    source.open()
    frames = [source.read() for _ in range(6)]
    assert all(f is not None for f in frames)
    assert source.reopen_count == 3
    # read 3 fails after two good frames: wait 0.5; reads 6 and 7 fail back to back: 0.5 then 1.0.
    assert fake.sleeps == [0.5, 0.5, 1.0]
    assert flaky.closes == 3 and source.healthy


def test_resilient_reports_how_long_the_source_has_been_down():
    fake = FakeTime()
    source = resilient(FlakySource(open_failures=1), fake, jitter=0.0)
    source.open()
    fake.now += 4.0
    assert source.down_for == 4.0
    source.read()
    assert source.down_for == 0.0


def test_resilient_backoff_doubles_up_to_the_cap():
    fake = FakeTime()
    source = resilient(FlakySource(open_failures=9), fake, initial_backoff=0.5, max_backoff=8.0, jitter=0.0)
    source.open()
    assert source.read() is not None
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]


def test_resilient_jitter_only_shortens_the_wait():
    source = ResilientSource(FlakySource(), initial_backoff=1.0, max_backoff=30.0, jitter=0.2,
                             rng=random.Random(7))
    waits = [source.backoff(n) for n in range(1, 10) for _ in range(20)]
    ceilings = [min(30.0, 2.0 ** (n - 1)) for n in range(1, 10) for _ in range(20)]
    assert all(0.8 * c <= w <= c for w, c in zip(waits, ceilings))
    assert len(set(waits)) > 100  # actually random
    assert source.backoff(10_000) <= 30.0  # no overflow after a very long outage


def test_resilient_passes_the_end_of_a_recording_through(tmp_path):
    fake = FakeTime()
    source = resilient(ReplaySource(write_images(tmp_path / "f", [0, 100]), realtime=False), fake)
    source.open()
    assert [gray_level(f) for f in read_all(source)] == [0, 100]
    assert source.read() is None and source.reopen_count == 0 and fake.sleeps == []


def test_resilient_keeps_retrying_a_missing_folder_until_it_appears(tmp_path):
    folder = tmp_path / "later"
    fake = FakeTime()

    def sleep_then_create(seconds):
        fake.sleep(seconds)
        if len(fake.sleeps) == 4:
            write_images(folder, [42])

    source = ResilientSource(ReplaySource(folder, realtime=False), clock=fake.clock, sleep=sleep_then_create)
    source.open()
    assert "does not exist" in source.last_error
    assert gray_level(source.read()) == 42
    assert source.reopen_count == 4


def test_resilient_calls_the_heartbeat_while_waiting():
    fake = FakeTime()
    beats = []
    source = resilient(FlakySource(open_failures=1), fake, initial_backoff=5.0, jitter=0.0,
                       heartbeat=lambda: beats.append(fake.now), heartbeat_interval=2.0)
    source.open()
    source.read()
    assert fake.sleeps == [2.0, 2.0, 1.0]
    assert len(beats) == 3


def test_resilient_stop_interrupts_a_long_backoff_wait():
    source = ResilientSource(FlakySource(open_failures=10**6), initial_backoff=60.0, max_backoff=60.0)
    source.open()
    threading.Timer(0.2, source.stop).start()
    start = time.monotonic()
    assert source.read() is None  # real Event wait, cut short by stop()
    assert time.monotonic() - start < 10.0
    assert source.closed
    source.close()
    with pytest.raises(SourceError):
        source.open()


def test_resilient_after_close_reads_none_and_closes_the_source():
    fake = FakeTime()
    flaky = FlakySource()
    source = resilient(flaky, fake)
    source.open()
    assert source.read() is not None
    source.close()
    assert source.closed and not flaky.is_open
    assert source.read() is None


def test_resilient_does_not_hide_bugs():
    class Broken(FlakySource):
        def read(self):
            raise ZeroDivisionError("a bug, not a camera problem")

    source = resilient(Broken(), FakeTime())
    source.open()
    with pytest.raises(ZeroDivisionError):
        source.read()
