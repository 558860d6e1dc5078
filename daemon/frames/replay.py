"""Replay a folder of still images as if they came from a camera (demos, tests, field bugs)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from daemon.frames.base import Frame, FrameSource, Pacer, SourceError
from daemon.images import IMAGE_SUFFIXES, ImageError, load_image

log = logging.getLogger(__name__)


def _natural_key(path: Path) -> list:
    """Sort "frame2.png" before "frame10.png", as a person would."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (not in sub-folders), in natural name order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


class ReplaySource(FrameSource):
    """Images from a folder, one per read(), paced at ``fps`` when ``realtime``
    (``fps=0``: as fast as they are read, like ``realtime=False``).

    Unreadable images are skipped with a warning. With ``loop`` the folder starts
    again after the last image; otherwise read() returns None there.
    """

    def __init__(self, path: str | Path, fps: float = 10.0, loop: bool = False, realtime: bool = True):
        if not str(path).strip():  # Path("") would quietly mean the current folder
            raise ValueError("replay needs the path of a folder of images")
        if fps < 0:
            raise ValueError(f"fps cannot be negative, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.loop = loop
        self.realtime = realtime and fps > 0
        self.name = f"replay {self.path}"
        self._files: list[Path] | None = None
        self._position = 0          # next file in self._files
        self._frames_this_pass = 0  # to notice a folder in which nothing is readable
        self._index = 0
        self._pacer = Pacer(0.0)

    def open(self) -> None:
        if not self.path.is_dir():
            what = "is not a folder" if self.path.exists() else "does not exist"
            raise SourceError(f"replay folder {self.path} {what}")
        try:
            files = list_images(self.path)
        except OSError as exc:
            raise SourceError(f"cannot list replay folder {self.path}: {exc.strerror or exc}") from exc
        if not files:
            raise SourceError(f"replay folder {self.path} has no images "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._files = files
        self._position = self._frames_this_pass = self._index = 0
        self._pacer = Pacer(self.fps if self.realtime else 0.0)
        log.info("%s: %d images at %s%s", self.name, len(files),
                 f"{self.fps:.3g} fps" if self.realtime else "full speed", ", looping" if self.loop else "")

    def read(self) -> Frame | None:
        if self._files is None:
            raise SourceError(f"{self.name} is not open")
        while True:
            if self._position >= len(self._files):
                if self._frames_this_pass == 0:
                    # Otherwise loop=True would spin forever on a folder of broken files.
                    raise SourceError(f"none of the {len(self._files)} images in {self.path} could be read")
                if not self.loop:
                    return None
                self._position = self._frames_this_pass = 0
            path = self._files[self._position]
            self._position += 1
            try:
                image = load_image(path)
            except ImageError as exc:
                log.warning("%s: skipping %s", self.name, exc)
                continue
            self._frames_this_pass += 1
            self._pacer.wait()
            frame = Frame(image=image, index=self._index, timestamp=time.time(), source=self.name)
            self._index += 1
            return frame

    def close(self) -> None:
        self._files = None
