"""Tell systemd how the daemon is doing (sd_notify), with the standard library only.

Under ``Type=notify`` systemd sets $NOTIFY_SOCKET; we send it "READY=1" once the
camera and model are up, "WATCHDOG=1" regularly, "STATUS=..." for ``systemctl
status`` and "STOPPING=1" on shutdown. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1", or several "KEY=value" lines) to systemd.

    Returns True if it was sent, False when not run by systemd or on any socket error
    (logged at debug): a status message is never worth crashing the door daemon for.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    elif not address.startswith("/"):
        log.debug("NOTIFY_SOCKET %r is not a unix socket path; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except (OSError, ValueError) as exc:  # ValueError: a state that cannot be encoded
        log.debug("sd_notify %r to %r failed: %s", state, address, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between "WATCHDOG=1" pings: half of systemd's WatchdogSec, or None when
    no watchdog is set for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None  # the variable was meant for a parent process, not us
        microseconds = int(usec) if usec else 0
    except ValueError:
        log.debug("ignoring malformed WATCHDOG_USEC=%r WATCHDOG_PID=%r", usec, pid)
        return None
    if microseconds <= 0:
        return None
    return microseconds / 2 / 1_000_000


class Watchdog:
    """Pings systemd's watchdog often enough (half its WatchdogSec); a no-op without one."""

    def __init__(self, clock=time.monotonic):
        self.interval_s = watchdog_interval()
        self._clock = clock
        self._next = 0.0

    def ping(self, status=None) -> None:
        """Send "WATCHDOG=1" if one is due, with ``status()`` (a callable) as STATUS."""
        if self.interval_s is None:
            return
        now = self._clock()
        if now >= self._next:
            self._next = now + self.interval_s
            notify("WATCHDOG=1" + (f"\nSTATUS={status()}" if status is not None else ""))
