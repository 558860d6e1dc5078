"""Frame sources behind one interface: ``open_source(kind, **options)``.

Every source is opened with open(), read frame by frame with read() (None at the end
of a recording) and released with close(); failures raise SourceError. Wrap a live
camera in ResilientSource to reconnect on its own.
"""

from __future__ import annotations

from daemon.frames.base import Frame, FrameSource, SourceError
from daemon.frames.opencv import OpenCVSource
from daemon.frames.picamera import PiCameraSource
from daemon.frames.replay import ReplaySource
from daemon.frames.resilient import ResilientSource

SOURCES = {
    "replay": ReplaySource,
    "opencv": OpenCVSource,
    "picamera2": PiCameraSource,
}


def open_source(kind: str, **options) -> FrameSource:
    """Build (but do not open) a source: ``open_source("opencv", device=0, size=(640, 480))``."""
    try:
        source_class = SOURCES[kind]
    except KeyError:
        raise ValueError(f"unknown frame source {kind!r}; choose one of {', '.join(SOURCES)}") from None
    return source_class(**options)


def configured_source(s) -> FrameSource:
    """The source a ``[source]`` config section (daemon.config.SourceConfig) describes, built
    but not opened."""
    if s.kind == "replay":
        return open_source("replay", path=s.path, fps=s.fps or 1.0, loop=s.loop, realtime=s.fps > 0)
    if s.kind == "opencv":
        return open_source("opencv", device=s.device, size=(s.width, s.height), realtime=s.realtime)
    return open_source(s.kind, size=(s.width, s.height))


__all__ = ["SOURCES", "Frame", "FrameSource", "OpenCVSource", "PiCameraSource", "ReplaySource",
           "ResilientSource", "SourceError", "configured_source", "open_source"]
