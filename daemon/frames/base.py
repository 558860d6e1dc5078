"""What every frame source produces and promises: ``Frame``, ``FrameSource``, ``SourceError``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class SourceError(RuntimeError):
    """A camera, stream or folder that cannot be opened or stopped delivering frames."""


@dataclass
class Frame:
    """One image from a source."""

    image: np.ndarray   # uint8 BGR (H, W, 3) or grayscale (H, W)
    index: int          # 0, 1, 2 ... counted by the source since open()
    timestamp: float    # wall-clock seconds (time.time()) when the frame was captured
    source: str         # the source's name, for logs


class Pacer:
    """Hands out a recording's frames at ``fps`` (0: as fast as they are read), so that
    voting and cooldowns see the same timing as from a live camera."""

    def __init__(self, fps: float):
        self.fps = float(fps)
        self._next_due = time.monotonic()

    def wait(self) -> None:
        """Sleep until the next frame is due."""
        if self.fps <= 0:
            return
        now = time.monotonic()
        if now < self._next_due:
            time.sleep(self._next_due - now)
            now = self._next_due
        # Scheduled from the later of plan and reality, so a slow reader gets an even
        # pace afterwards rather than a burst of catch-up frames.
        self._next_due = max(self._next_due, now) + 1.0 / self.fps


@runtime_checkable
class FrameSource(Protocol):
    """A camera or a recording. Use it from one thread: open(), read() ... read(), close()."""

    name: str

    def open(self) -> None:
        """Start the device or stream; SourceError if it cannot be opened."""
        ...

    def read(self) -> Frame | None:
        """The next frame (blocking); None at the real end of a recording; SourceError on failure."""
        ...

    def close(self) -> None:
        """Release the device. Safe to call twice, or after a failed open()."""
        ...
