"""What the door counts and times for its health record (schema in docs/mqtt.md)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

# faces = detect + quality gate + align
STAGES = ("capture", "faces", "embed", "match", "liveness", "decide")


class StageTimer:
    """Per-stage latency: a moving average in ms for health, and totals for benchmarks.
    A service takes one from its caller (``Service(..., timer=)``) to be measured."""

    def __init__(self, alpha: float = 0.05):
        self.alpha = alpha
        self.mean_ms: dict[str, float] = {}
        self.total_s: Counter = Counter()
        self.count: Counter = Counter()

    def add(self, stage: str, seconds: float) -> None:
        ms = seconds * 1000.0
        old = self.mean_ms.get(stage)
        self.mean_ms[stage] = ms if old is None else old + self.alpha * (ms - old)
        self.total_s[stage] += seconds
        self.count[stage] += 1

    def clear(self) -> None:
        """Start the totals again (e.g. after a warm-up)."""
        self.total_s.clear()
        self.count.clear()

    def snapshot(self) -> dict[str, float]:
        """The moving averages, in ms, for the health record."""
        return {s: round(self.mean_ms[s], 3) for s in STAGES if s in self.mean_ms}

    def average_ms(self) -> dict[str, float]:
        """The mean of every measurement since the last clear(), in ms."""
        return {s: round(self.total_s[s] / max(self.count[s], 1) * 1000, 3) for s in STAGES}


@dataclass
class Counters:
    frames: int = 0
    faces: int = 0
    frame_errors: int = 0
    skipped_faces: Counter = field(default_factory=Counter)
    results: Counter = field(default_factory=Counter)      # match / unknown / ambiguous
    events: Counter = field(default_factory=Counter)
    withheld_unlocks: int = 0                               # on_expired_manifest = "deny" and no fresh manifest


class FrameRate:
    """Frames per second over the last ``window`` frames."""

    def __init__(self, window: int = 120):
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> None:
        self._times.append(now)

    def fps(self) -> float:
        times = self._times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])
