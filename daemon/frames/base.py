"""What every frame source produces and promises: ``Frame``, ``FrameSource``, ``SourceError``."""

from __future__ import annotations

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
