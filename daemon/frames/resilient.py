"""Keep a frame source running through unplugged cameras and dropped streams."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

from daemon.frames.base import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)


class ResilientSource(FrameSource):
    """Wraps a source; when it fails, closes it, waits and opens it again, forever.

    The wait doubles after each consecutive failure, from ``initial_backoff`` up to
    ``max_backoff`` seconds, shortened by up to ``jitter`` (a fraction) at random so that
    several cameras on one network do not retry in lockstep. A frame resets it.

    Camera failures never escape: open() records them, and read() blocks until a frame
    arrives, returning None only at the real end of a recording or once stop()/close()
    was called (which are final: a later open() raises SourceError). Errors that are not
    SourceError (bugs) are not caught.

    ``clock`` and ``sleep`` can be replaced in tests; the default sleep is an Event wait
    that stop() cuts short. ``heartbeat`` (e.g. a systemd watchdog ping) is called at
    least every ``heartbeat_interval`` seconds while waiting to retry, because a daemon
    waiting for its camera is alive, not hung.
    """

    def __init__(self, source: FrameSource, initial_backoff: float = 0.5, max_backoff: float = 30.0, *,
                 jitter: float = 0.2, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] | None = None,
                 heartbeat: Callable[[], object] | None = None, heartbeat_interval: float = 1.0,
                 rng: random.Random | None = None):
        if not 0 < initial_backoff <= max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self.source = source
        self.name = source.name
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.heartbeat_interval = heartbeat_interval
        self._clock = clock
        self._stopped = threading.Event()
        self._sleep = sleep or self._stopped.wait
        self._heartbeat = heartbeat
        self._rng = rng or random.Random()
        self._is_open = False
        self.failures = 0                    # consecutive failures since the last frame
        self.reopen_count = 0                # times the source was opened again after a failure
        self.last_error: str | None = None   # kept after recovery, for status pages
        self.healthy = False                 # True once a frame has been read since the last failure
        self.down_since: float | None = None  # clock() at the first failure of the current outage
        self.frames = 0                      # frames read, in all
        self.ended = False                   # a recording (video file, replay) reached its end: idle

    @property
    def closed(self) -> bool:
        """True after stop() or close(): read() returns None from then on."""
        return self._stopped.is_set()

    @property
    def down_for(self) -> float:
        """Seconds since the current outage began; 0.0 while frames flow."""
        return 0.0 if self.down_since is None else self._clock() - self.down_since

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1, 2, ...), jittered."""
        return self._backoff_ceiling(failures) * (1.0 - self.jitter * self._rng.random())

    def _backoff_ceiling(self, failures: int) -> float:
        return min(self.max_backoff, self.initial_backoff * 2.0 ** min(failures - 1, 64))

    def open(self) -> None:
        """Try to open the source once; a failure is recorded and retried by read()."""
        if self.closed:
            raise SourceError(f"{self.name}: open() after stop() or close()")
        self._try_open()

    def read(self) -> Frame | None:
        while not self.closed:
            if not self._is_open:
                if self.failures:
                    self._wait(self.backoff(self.failures))
                    if self.closed:
                        break
                    self.reopen_count += 1
                if not self._try_open():
                    continue
            try:
                frame = self.source.read()
            except SourceError as exc:
                self._record_failure(exc)
                continue
            if frame is None:
                if not self.ended:
                    log.info("%s: end of the recording after %d frame(s); no more frames will come",
                             self.name, self.frames)
                    self.ended = True
                return None
            self._record_frame()
            return frame
        return None

    def stop(self) -> None:
        """Make read() return None soon, from any thread (a signal handler, a shutdown hook).
        It does not close the source: the thread that reads calls close()."""
        self._stopped.set()

    def close(self) -> None:
        self._stopped.set()
        self._close_source()

    def _try_open(self) -> bool:
        try:
            self.source.open()
        except SourceError as exc:
            self._record_failure(exc)
            return False
        self._is_open = True
        return True

    def _record_failure(self, exc: SourceError) -> None:
        message = str(exc)
        # One warning per outage (or per new kind of error) rather than one every retry.
        level = logging.WARNING if self.failures == 0 or message != self.last_error else logging.DEBUG
        self.failures += 1
        self.last_error = message
        self.healthy = False
        if self.down_since is None:
            self.down_since = self._clock()
        log.log(level, "%s: %s; retrying in up to %.1f s", self.name, message,
                self._backoff_ceiling(self.failures))
        self._close_source()

    def _record_frame(self) -> None:
        if self.failures:
            log.info("%s: back after %.1f s and %d reopen(s)", self.name, self.down_for, self.reopen_count)
        self.failures = 0
        self.down_since = None
        self.healthy = True
        self.ended = False
        self.frames += 1

    def _close_source(self) -> None:
        self._is_open = False
        try:
            self.source.close()
        except Exception as exc:  # a device that just vanished may not close cleanly; we reopen anyway
            log.debug("%s: close failed: %s", self.name, exc)

    def _wait(self, seconds: float) -> None:
        remaining = seconds
        while remaining > 0 and not self.closed:
            step = min(remaining, self.heartbeat_interval) if self._heartbeat else remaining
            if self._heartbeat:
                self._heartbeat()
            self._sleep(step)
            remaining -= step
