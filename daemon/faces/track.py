"""Searching a camera's frames where the faces are: a glance and a region, not the whole frame.

A person at the door stays in view for many frames. After a frame with faces, the next
frame is searched only in a square around them (``FaceDetector.detect``'s ``region``:
192x192 pixels instead of the 480x384 a 640x480 frame is searched at, about a fifth of
the detector's cost). With nobody tracked, the frame is first glanced at (the whole frame
shrunk to ``GLANCE_SIDE``, 0.44x the pixels of the whole-frame search); the faces it
shows are then searched in their region, as a tracked face is, and a glance that shows
nobody ends the frame. The whole frame is searched every ``full_frame_every`` frames
(and whenever the glance shows faces too far apart for one region), so a face too small
for the glance (under about 60 px) or someone who steps in beside a tracked person is
found within that many frames. A tracked face that leaves its region is glanced for at
once, in the same frame. A square so wide that its search would shrink the faces (people
standing apart) is searched as the whole frame.

Crops still come from ``prepare_faces`` (the one crop path); only the detector's search
area changes, never the crop of a given search. A face of up to ~87 px is searched at
its own resolution in its region, as every training image is; larger ones are shrunk as a
whole frame would be. A frame no larger than the glance is searched whole, so a photo-sized
frame gets exactly its photo's crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daemon.faces.align import PreparedFaces, prepare_faces
from daemon.faces.detect import GLANCE_SIDE, REGION_SIDE, Face, FaceDetector

# Region side / the larger side of the faces' joint box: room for a step between frames.
CONTEXT = 2.2
# A region covering this share of the frame or more is searched as the whole frame.
MAX_REGION_SHARE = 0.9
# A region is searched at REGION_SIDE pixels: one so wide (people apart) that it would shrink
# a face below this width (or below its own) is searched as the whole frame, whose landmarks
# are finer (two 100 px faces 300 px apart were shrunk to 25 px and their crops moved).
MIN_REGION_FACE_PX = 56


def region_around(faces: list[Face], frame_size: tuple[int, int], context: float = CONTEXT
                  ) -> tuple[int, int, int, int] | None:
    """A square (x0, y0, x1, y1) around the faces' joint box, clipped to the frame; None
    when there are no faces, or it would cover nearly the whole frame or shrink a face
    below MIN_REGION_FACE_PX in its search."""
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
    narrowest = float((boxes[:, 2] - boxes[:, 0]).min())
    if narrowest * min(1.0, REGION_SIDE / max(x1 - x0, y1 - y0)) < min(narrowest, MIN_REGION_FACE_PX):
        return None
    return x0, y0, x1, y1


@dataclass
class FaceTracker:
    """Per camera: where to search the next frame. Not for photos (each is on its own).

    ``full_frame_every=1`` searches every whole frame (no region, no glance);
    ``glance_side=0`` turns the glance off (an untracked frame is searched whole)."""

    full_frame_every: int = 10
    glance_side: int = GLANCE_SIDE
    context: float = CONTEXT
    # Detector runs by kind: the whole frame, a region, a glance.
    searches: dict[str, int] = field(default_factory=lambda: {"frame": 0, "region": 0, "glance": 0})
    _region: tuple[int, int, int, int] | None = None
    _since_full: int = 0

    def prepare(self, image: np.ndarray, detector: FaceDetector, **kwargs) -> PreparedFaces:
        """prepare_faces on a frame: its tracked region, else a glance, else the whole frame."""
        found = None
        if self._since_full < self.full_frame_every - 1:
            found = self._without_whole_frame(image, detector, kwargs)
        if found is None:
            found = prepare_faces(image, detector, **kwargs)
            self.searches["frame"] += 1
            self._since_full = 0
        else:
            self._since_full += 1
        self._region = region_around(found.detected, image.shape[:2], self.context)
        return found

    def _in_region(self, image, detector, region, kwargs) -> PreparedFaces:
        self.searches["region"] += 1
        return prepare_faces(image, detector, region=region, **kwargs)

    def _without_whole_frame(self, image, detector, kwargs) -> PreparedFaces | None:
        """The frame's faces found by a region search, nobody (the glance shows no face),
        or None: search the whole frame."""
        if self._region:
            found = self._in_region(image, detector, self._region, kwargs)
            if found.detected:
                return found
        if not self.glance_side or max(image.shape[:2]) <= self.glance_side:
            return None  # the glance would be the whole-frame search
        self.searches["glance"] += 1
        glimpsed = detector.detect(image, max_side=self.glance_side)
        if not glimpsed:
            return PreparedFaces()  # nobody near the door: the whole frame waits its turn
        region = region_around(glimpsed, image.shape[:2], self.context)
        if region is None:
            return None
        found = self._in_region(image, detector, region, kwargs)
        return found if found.detected else None
