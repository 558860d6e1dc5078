"""Raspberry Pi camera modules (CSI ribbon cable) through picamera2 / libcamera."""

from __future__ import annotations

import logging
import time

import numpy as np

from daemon.frames.base import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)

INSTALL_HINT = ("picamera2 is not installed: on Raspberry Pi OS run 'sudo apt install python3-picamera2' "
                "(it cannot be installed with pip on x86), and create facegate's virtualenv with "
                "--system-site-packages so that it can see the apt package")


class PiCameraSource(FrameSource):
    """A libcamera camera as BGR frames. picamera2 is imported only in open(),
    so the rest of facegate works on machines without it."""

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float | None = None, camera_num: int = 0):
        self.size = (int(size[0]), int(size[1]))
        self.fps = fps
        self.camera_num = camera_num
        self.name = f"picamera2 {camera_num}"
        self._camera = None
        self._index = 0

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError as exc:  # also raised when picamera2 is there but libcamera is not
            raise SourceError(f"{INSTALL_HINT} ({exc})") from exc
        camera = None
        try:
            camera = Picamera2(self.camera_num)
            controls = {}
            if self.fps:
                frame_us = int(1_000_000 / self.fps)
                controls["FrameDurationLimits"] = (frame_us, frame_us)
            # libcamera's "RGB888" is stored B, G, R in memory: exactly OpenCV's BGR.
            # queue=False makes capture_array() wait for a fresh frame instead of
            # handing back one that sat in a buffer while we were busy.
            config = camera.create_video_configuration(main={"size": self.size, "format": "RGB888"},
                                                       controls=controls, queue=False)
            camera.configure(config)
            camera.start()
        except Exception as exc:  # picamera2 raises RuntimeError, IndexError ... when no camera answers
            if camera is not None:
                _close_quietly(camera)
            raise SourceError(f"{self.name} could not be started: {exc}") from exc
        self._camera = camera
        self._index = 0
        log.info("%s started at %dx%d", self.name, *self.size)

    def read(self) -> Frame | None:
        if self._camera is None:
            raise SourceError(f"{self.name} is not open")
        try:
            image = self._camera.capture_array("main")
        except Exception as exc:  # same reason as in open(): picamera2 has no error type of its own
            raise SourceError(f"{self.name} returned no frame: {exc}") from exc
        frame = Frame(image=np.ascontiguousarray(image), index=self._index, timestamp=time.time(),
                      source=self.name)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._camera is not None:
            _close_quietly(self._camera)
            self._camera = None


def _close_quietly(camera) -> None:
    try:
        camera.stop()
        camera.close()
    except Exception as exc:  # a camera that is already gone cannot be closed cleanly
        log.debug("closing picamera2 failed: %s", exc)
