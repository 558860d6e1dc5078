"""Searching a camera's frames where the faces were: a region, not the whole frame.

A person at the door stays in view for many frames. After a frame with faces, the next
frame is searched only in a square around them (``FaceDetector.detect``'s ``region``:
192x192 pixels instead of the 480x384 a 640x480 frame is searched at, about a fifth of
the detector's cost). The whole frame is searched again every ``full_frame_every``
frames, so someone who steps in elsewhere is found within that many frames, and at once
whenever the region holds no face: a tracked face that leaves costs one extra search,
never a missed frame.

Crops still come from ``prepare_faces`` (the one crop path); only the detector's search
area changes. A face of up to ~87 px is searched at its own resolution there, as every
training image is, larger ones are shrunk as a whole frame would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daemon.faces.align import PreparedFaces, prepare_faces
from daemon.faces.detect import Face, FaceDetector

# Region side / the larger side of the faces' joint box: room for a step between frames.
CONTEXT = 2.2
# A region covering this share of the frame or more is searched as the whole frame.
MAX_REGION_SHARE = 0.9


def region_around(faces: list[Face], frame_size: tuple[int, int], context: float = CONTEXT
                  ) -> tuple[int, int, int, int] | None:
    """A square (x0, y0, x1, y1) around the faces' joint box, clipped to the frame; None
    when there are no faces or it would cover nearly the whole frame."""
    if not faces:
        return None
    h, w = frame_size
    boxes = np.array([f.box for f in faces], np.float64)
    bx0, by0 = boxes[:, 0].min(), boxes[:, 1].min()
    bx1, by1 = boxes[:, 2].max(), boxes[:, 3].max()
    half = context * max(bx1 - bx0, by1 - by0) / 2
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) >= MAX_REGION_SHARE * w * h:
        return None
    return x0, y0, x1, y1


@dataclass
class FaceTracker:
    """Per camera: where to search the next frame. Not for photos (each is on its own)."""

    full_frame_every: int = 10
    context: float = CONTEXT
    searches: dict[str, int] = field(default_factory=lambda: {"frame": 0, "region": 0})
    _region: tuple[int, int, int, int] | None = None
    _since_full: int = 0

    def prepare(self, image: np.ndarray, detector: FaceDetector, **kwargs) -> PreparedFaces:
        """prepare_faces on a frame, searching the tracked region when there is one."""
        region = self._region if self._since_full < self.full_frame_every - 1 else None
        found = None
        if region:
            found = prepare_faces(image, detector, region=region, **kwargs)
            self.searches["region"] += 1
        if found is None or not found.detected:
            region, found = None, prepare_faces(image, detector, **kwargs)
            self.searches["frame"] += 1
        self._since_full = 0 if region is None else self._since_full + 1
        self._region = region_around(found.detected, image.shape[:2], self.context)
        return found
