"""Blink cue: the eyes close and open again while the person is being recognised.

A printed photo cannot blink. (A video replayed on a phone can: see docs/security.md.)
A blink is an eye aspect ratio (EAR, Soukupová & Čech, CVWW 2016) that goes from open,
to closed, to open again within the liveness window. "Closed" means *both* eyes are
below the threshold: spontaneous blinks are bilateral, while landmark noise on a bent
or tilted print usually drags down one eye at a time. Thresholds come from still
images of open and closed eyes (docs/liveness.md), with a gap between "closed" and
"open" so that noise around one threshold cannot make a blink by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.liveness.cue import CueResult, FacePoints, Reading
from daemon.liveness.eyes import EyeLandmarker

MIN_PRESENCE = 0.5  # the mesh model's own "this is a face" probability


@dataclass(frozen=True)
class BlinkThresholds:
    closed_ear: float  # both eyes at or below: closed
    open_ear: float    # the more open eye at or above: open

    @classmethod
    def from_config(cls, cfg) -> "BlinkThresholds":
        """From a daemon.config.LivenessConfig (where the defaults are)."""
        return cls(closed_ear=cfg.blink_closed_ear, open_ear=cfg.blink_open_ear)


def eye_value(ear_right: float, ear_left: float) -> float:
    """The one number a frame contributes: the more open eye's EAR, so a frame reads
    "closed" only when both eyes are closed."""
    return max(ear_right, ear_left)


def find_blink(readings: list[Reading], thresholds: BlinkThresholds) -> CueResult:
    """Open -> closed -> open, in time order. Readings are :func:`eye_value` values."""
    state, closed_at, lowest = "want_open", None, float("inf")
    for r in readings:
        lowest = min(lowest, r.value)
        if state == "want_open" and r.value >= thresholds.open_ear:
            state = "want_closed"
        elif state == "want_closed" and r.value <= thresholds.closed_ear:
            state, closed_at = "want_reopen", r
        elif state == "want_reopen" and r.value >= thresholds.open_ear:
            return CueResult(True, f"blink (both eyes closed at EAR {closed_at.value:.3f}, open again "
                                   f"{r.t - closed_at.t:.2f} s later)", {"closed_ear": round(closed_at.value, 4)})
    lowest_text = f"{lowest:.3f}" if readings else "n/a"
    why = {"want_open": "eyes never seen open", "want_closed": "no eye closure",
           "want_reopen": "eyes closed, not yet reopened"}[state]
    return CueResult(False, f"{why} (lowest EAR {lowest_text} in {len(readings)} frame(s))",
                     {"lowest_ear": round(lowest, 4) if readings else None})


class BlinkCue:
    """Face mesh + iris landmarks -> per-frame eye openness -> blink within the window."""

    name = "blink"

    def __init__(self, thresholds: BlinkThresholds, landmarker: EyeLandmarker | None = None,
                 num_threads: int = 1):
        self.thresholds = thresholds
        self.landmarker = landmarker or EyeLandmarker(num_threads=num_threads)

    def measure(self, image: np.ndarray, face: FacePoints) -> float | None:
        reading = self.landmarker.read(image, face.box, face.right_eye, face.left_eye)
        if reading.presence < MIN_PRESENCE:
            return None  # the mesh does not see a face here: no evidence either way
        return eye_value(reading.ear_right, reading.ear_left)

    def judge(self, readings: list[Reading]) -> CueResult:
        return find_blink(readings, self.thresholds)
