"""The liveness policy: which cues an unlock needs, and the evidence window.

Evidence is kept per *person*: only faces that matched someone are measured, and their
readings are filed under the person they matched. A closed-eye frame often misses the
match threshold (the eyes are much of what the encoder looks at), so a face also counts
for a person it did not quite match when it is that person's face a moment later: the
person was matched within the window, the face's nearest person is still them, no more
than ``evidence_margin`` beyond the threshold, and it overlaps where they just were.

When the k-of-n vote wants to unlock a person, every cue of the mode judges that
person's readings of the last ``window_s`` seconds; all must pass. So the live evidence
comes from the same faces, inside the same window, as the match. A refused unlock
starts no cooldown: the next frame may still unlock (the person blinks a second later).
Evidence is used up by an unlock.

A *presentation* is a person's run of matches. One that was refused and then ends
(no match of that person for ``window_s``) without an unlock counts as a rejected
presentation in health.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from daemon.liveness.cue import Cue, CueResult, FacePoints, Reading
from daemon.matching import MATCH, MatchResult

log = logging.getLogger(__name__)

MODES = {"off": (), "blink": ("blink",), "passive": ("passive",), "both": ("blink", "passive")}
MAX_READINGS = 256  # per person and cue: a window at 30 fps for 8 s; bounds memory
MIN_FOLLOW_IOU = 0.3  # a face this much overlapping the person's last matched box is "where they just were"


@dataclass(frozen=True)
class Verdict:
    mode: str
    results: dict[str, CueResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results.values())

    def explain(self) -> str:
        return "; ".join(f"{name} {'passed' if r.passed else 'failed'}: {r.why}"
                         for name, r in self.results.items())

    def to_event(self) -> dict:
        """The unlock event's ``liveness`` object: which cues passed, and their numbers."""
        return {"mode": self.mode, "passed": [n for n, r in self.results.items() if r.passed],
                "cues": {n: {"passed": r.passed, **r.detail} for n, r in self.results.items()}}


@dataclass
class _Track:
    """One person's current presentation."""

    readings: dict[str, deque] = field(default_factory=dict)
    last_seen: float = 0.0
    refused: int = 0
    box: tuple | None = None      # where the person's face last matched
    matched_at: float | None = None


@dataclass
class LivenessCounters:
    checked_faces: int = 0
    unusable_readings: int = 0       # a cue could not read the face (e.g. the mesh saw no face)
    errors: int = 0                  # a cue raised; the frame went on without its reading
    refused_unlocks: int = 0         # frames where the vote said unlock and liveness said no
    rejected_presentations: int = 0  # presentations that ended refused, without an unlock
    passed_presentations: int = 0    # unlocks


class LivenessGate:
    """Collects readings of matched faces and judges them when an unlock is due."""

    def __init__(self, mode: str, cues: list[Cue], window_s: float, evidence_margin: float = 0.0):
        if mode not in MODES or mode == "off":
            raise ValueError(f"liveness mode must be one of {', '.join(m for m in MODES if m != 'off')} "
                             f"(got {mode!r}); mode off means no gate at all")
        names = [c.name for c in cues]
        if sorted(names) != sorted(MODES[mode]):
            raise ValueError(f"mode {mode!r} needs the cues {MODES[mode]}, got {names}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 (got {window_s})")
        self.mode, self.cues, self.window_s, self.evidence_margin = mode, cues, window_s, evidence_margin
        self.counters = LivenessCounters()
        self._tracks: dict[str, _Track] = {}

    def observe_frame(self, image: np.ndarray, faces: list[tuple[FacePoints, MatchResult]], threshold: float,
                      now: float) -> None:
        """Measure the faces of one frame that matched someone, or that follow a person just
        matched (see the module docstring); every other face costs nothing."""
        for face, result in faces:
            person_id = self.whose(face, result, threshold, now)
            if person_id is not None:
                self.observe(person_id, image, face, now, matched=result.status == MATCH)

    def whose(self, face: FacePoints, result: MatchResult, threshold: float, now: float) -> str | None:
        """The person whose evidence this face is, or None."""
        if result.status == MATCH:
            return result.person_id
        track = self._tracks.get(result.person_id) if result.person_id is not None else None
        if (track is None or track.box is None or track.matched_at is None
                or now - track.matched_at > self.window_s):
            return None
        if result.distance <= threshold + self.evidence_margin and box_iou(face.box, track.box) >= MIN_FOLLOW_IOU:
            return result.person_id
        return None

    def observe(self, person_id: str, image: np.ndarray, face: FacePoints, now: float,
                matched: bool = True) -> None:
        """Measure a face that matched ``person_id`` in this frame. Never raises: a cue that
        fails leaves no reading (no evidence), the frame and the match go on."""
        track = self._tracks.setdefault(person_id, _Track())
        track.last_seen = now
        if matched:
            track.box, track.matched_at = face.box, now
        self.counters.checked_faces += 1
        for cue in self.cues:
            try:
                value = cue.measure(image, face)
            except Exception as exc:  # a liveness model must never stop recognition
                self.counters.errors += 1
                log.warning("liveness cue %s failed on a face of %s: %r", cue.name, person_id, exc)
                continue
            if value is None or not np.isfinite(value):
                self.counters.unusable_readings += 1
                continue
            track.readings.setdefault(cue.name, deque(maxlen=MAX_READINGS)).append(Reading(now, float(value)))

    def verdict(self, person_id: str, now: float) -> Verdict:
        """Judge the person's readings of the last window_s seconds with every cue."""
        track = self._tracks.get(person_id)
        since = now - self.window_s
        results = {}
        for cue in self.cues:
            readings = [r for r in (track.readings.get(cue.name, ()) if track else ()) if r.t >= since]
            results[cue.name] = cue.judge(readings)
        return Verdict(self.mode, results)

    def decide(self, person_id: str, now: float) -> Verdict:
        """verdict() plus the bookkeeping of an unlock the vote wants: a pass uses up the
        evidence, a refusal is counted."""
        v = self.verdict(person_id, now)
        track = self._tracks.setdefault(person_id, _Track(last_seen=now))
        if v.passed:
            self.counters.passed_presentations += 1
            self._tracks.pop(person_id, None)  # a new unlock needs new evidence
        else:
            self.counters.refused_unlocks += 1
            track.refused += 1
        return v

    def expire(self, now: float) -> list[str]:
        """End presentations not seen for window_s; returns the people whose ended refused."""
        rejected = []
        for person_id, track in list(self._tracks.items()):
            if now - track.last_seen > self.window_s:
                del self._tracks[person_id]
                if track.refused:
                    rejected.append(person_id)
        self.counters.rejected_presentations += len(rejected)
        return rejected

    def health(self) -> dict:
        c = self.counters
        return {"mode": self.mode, "window_s": self.window_s, "checked_faces": c.checked_faces,
                "unusable_readings": c.unusable_readings, "errors": c.errors,
                "refused_unlocks": c.refused_unlocks, "rejected_presentations": c.rejected_presentations,
                "passed_presentations": c.passed_presentations}


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class LivenessOff:
    """``mode = "off"``: no cue runs and every unlock the votes allow goes through."""

    mode = "off"

    def observe_frame(self, image: np.ndarray, faces: list, threshold: float, now: float) -> None:
        pass

    def expire(self, now: float) -> list[str]:
        return []

    def decide(self, person_id: str, now: float) -> None:
        """No verdict: the door decides on the votes alone."""
        return None

    def health(self) -> dict:
        return {"mode": "off"}
