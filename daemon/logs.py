"""Log setup for the ``facegate`` commands: timestamped lines on a terminal; under
systemd, lines the journal understands (``journalctl -p warning`` works)."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# sd-daemon(3) priorities: journald strips a leading "<N>" and stores it as the line's priority.
SD_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def sd_priority(levelno: int) -> int:
    """The syslog priority of a logging level (levels between the named ones round down)."""
    for level in sorted(SD_PRIORITY, reverse=True):
        if levelno >= level:
            return SD_PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>name: message`` on every line: the journal adds the time, and a traceback's
    lines keep the error's priority instead of falling back to info."""

    def __init__(self):
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{sd_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def under_journald(stream: TextIO) -> bool:
    """True when ``stream`` is the journal's socket: systemd sets JOURNAL_STREAM to its
    "device:inode", and a stream redirected elsewhere (a pipe, a file) no longer matches."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def quiet_native_logs(verbose: bool) -> None:
    """OpenCV warns from C++ on every failed camera open; the daemon already logs one
    warning per outage. ``-v``, or OPENCV_LOG_LEVEL in the environment, lets them through."""
    if verbose or "OPENCV_LOG_LEVEL" in os.environ:
        return
    os.environ["OPENCV_LOG_LEVEL"] = "ERROR"
    if "cv2" in sys.modules:  # the variable is only read when cv2 is imported
        import cv2
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def configure(verbose: bool, stream: TextIO | None = None) -> None:
    """Logs go to stderr, so stdout stays machine-readable (embeddings, events)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if under_journald(stream) else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    quiet_native_logs(verbose)
