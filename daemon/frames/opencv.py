"""Frames through OpenCV: a USB camera (index or /dev/videoN), an RTSP/HTTP stream, or a video file."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2

from daemon.frames.base import Frame, FrameSource, Pacer, SourceError

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """Hide the password in ``rtsp://user:secret@host/...`` so it never reaches a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class OpenCVSource(FrameSource):
    """``cv2.VideoCapture`` behind the FrameSource interface.

    ``device`` is a camera index (``0`` or ``"0"``), a device path (``/dev/video0``), a
    stream URL (anything with ``://``), or a video file path. ``size`` and ``fps`` are
    requests to a camera; the driver picks its nearest mode and frames are not resized.
    A video file ends with None; a camera or stream that gives no frame raises SourceError.
    A video file is read as fast as it decodes, or with ``realtime`` at its own frame rate.
    """

    def __init__(self, device: int | str | os.PathLike, size: tuple[int, int] | None = None,
                 fps: float | None = None, timeout: float = 10.0, realtime: bool = False):
        if isinstance(device, os.PathLike):
            device = os.fspath(device)
        if isinstance(device, str) and not device.strip():
            raise ValueError("opencv needs a camera index, device path, stream URL or video file")
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)  # config files often say "0"
        self.device = device
        self.size = size
        self.fps = fps
        self.timeout = timeout  # seconds to connect to / wait on a network stream
        self.realtime = realtime
        if isinstance(device, int) or device.startswith("/dev/"):
            self.kind = "camera"
            self.name = f"camera {device}"
        elif "://" in device:
            self.kind = "stream"
            self.name = f"stream {redact_url(device)}"
        else:
            self.kind = "file"
            self.name = f"video file {device}"
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._pacer = Pacer(0.0)

    def open(self) -> None:
        self.close()
        if self.kind == "file" and not Path(self.device).is_file():
            raise SourceError(f"{self.name} does not exist")
        try:
            capture = self._create_capture()
        except cv2.error as exc:
            raise SourceError(f"{self.name} could not be opened: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            hint = " (is it connected, and is the user in the 'video' group?)" if self.kind == "camera" else ""
            raise SourceError(f"{self.name} could not be opened{hint}")
        if self.kind == "camera":
            self._configure_camera(capture)
        self._capture = capture
        self._index = 0
        fps = capture.get(cv2.CAP_PROP_FPS)
        paced = self.kind == "file" and self.realtime
        if paced and not fps > 0:
            log.warning("%s does not say its frame rate; playing it at 25 fps", self.name)
            fps = 25.0
        self._pacer = Pacer(fps if paced else 0.0)
        log.info("%s opened: %dx%d at %.3g fps%s", self.name, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), fps,
                 "" if self.kind != "file" else ", played in real time" if paced else ", read as fast as it decodes")

    def _create_capture(self) -> cv2.VideoCapture:
        if self.kind == "stream":
            # Without timeouts a dead RTSP server can block open() or read() for a long time.
            ms = int(self.timeout * 1000)
            return cv2.VideoCapture(self.device, cv2.CAP_FFMPEG,
                                    [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if isinstance(self.device, str) and self.kind == "camera":
            return cv2.VideoCapture(self.device, cv2.CAP_V4L2)  # else OpenCV tries FFmpeg on /dev/videoN
        return cv2.VideoCapture(self.device)

    def _configure_camera(self, capture: cv2.VideoCapture) -> None:
        # A one-frame driver queue means read() returns what the camera sees now,
        # not what it saw a few frames ago while we were busy recognising a face.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.size:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps:
            capture.set(cv2.CAP_PROP_FPS, self.fps)

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"{self.name} is not open")
        try:
            ok, image = self._capture.read()
        except cv2.error as exc:
            raise SourceError(f"{self.name} failed: {exc}") from exc
        if not ok or image is None:
            if self.kind == "file":
                return None
            raise SourceError(f"{self.name} returned no frame")
        self._pacer.wait()
        frame = Frame(image=image, index=self._index, timestamp=time.time(), source=self.name)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
