"""When a stream of per-frame matches becomes an unlock.

One matching frame is not enough: a face half-turned or lit from the side can land
under the threshold for someone else once in a while. We unlock only when the same
person matched in ``k`` of the last ``n`` processed frames, and then not again for that
person until ``cooldown_s`` has passed, so someone standing at the door does not fire
an event per frame. A ``gate`` (liveness) may hold back an unlock the votes allow.
Pure logic: the caller passes the time in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Unlock:
    person_id: str
    frames_voted: int   # frames in the window in which this person matched
    distance: float     # the best (smallest) distance among those frames


class UnlockDecider:
    """k-of-n frame voting with a per-person cooldown."""

    def __init__(self, *, k: int, n: int, cooldown_s: float):
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= k <= n (got k={k}, n={n})")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0 (got {cooldown_s})")
        self.k, self.n, self.cooldown_s = k, n, cooldown_s
        self._window: deque[Mapping[str, float]] = deque(maxlen=n)
        self._last_unlock: dict[str, float] = {}

    def observe(self, matches: Mapping[str, float], now: float,
                gate: Callable[[Unlock], bool] | None = None) -> list[Unlock]:
        """Feed one processed frame: person id -> distance for everyone who matched in it
        (empty when no face matched; such frames count as votes against). Returns the
        unlocks this frame completes. ``gate(unlock)`` is asked about each unlock the
        votes allow; one it refuses is dropped and starts no cooldown, so a later frame
        can still unlock that person."""
        self._window.append(dict(matches))
        unlocks = []
        for person_id in matches:
            distances = [frame[person_id] for frame in self._window if person_id in frame]
            if len(distances) < self.k:
                continue
            last = self._last_unlock.get(person_id)
            if last is not None and now - last < self.cooldown_s:
                continue
            unlock = Unlock(person_id, len(distances), min(distances))
            if gate is not None and not gate(unlock):
                continue
            self._last_unlock[person_id] = now
            unlocks.append(unlock)
        self._forget_expired(now)
        return unlocks

    def _forget_expired(self, now: float) -> None:
        # Keeps memory bounded however many people pass by.
        if len(self._last_unlock) > 1024:
            self._last_unlock = {p: t for p, t in self._last_unlock.items() if now - t < self.cooldown_s}

