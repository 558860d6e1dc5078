"""Private state on disk: folders 0700, files 0600, however the program was started.

The door's gallery and the enrollment server's store hold biometric data. systemd's
StateDirectoryMode makes the folder private, but a hand-run daemon (or one started by
another init system) must not depend on it, nor on the umask. A folder that others may
write to is refused outright: whoever can write there could swap the database.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

log = logging.getLogger(__name__)


class StateDirError(RuntimeError):
    """A state folder that cannot be made private."""


def private_dir(path: str | Path) -> Path:
    """Create ``path`` mode 0700 or check the existing folder: refuse one that is group-
    or world-writable, and narrow one that others can read to 0700."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise StateDirError(f"state folder {path}: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise StateDirError(f"state folder {path} is not a folder")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateDirError(f"state folder {path} is writable by other users (mode {mode:o}); it holds "
                            f"biometric data: `chmod 700 {path}` (and check who owns it) before starting")
    if mode & 0o077:
        try:
            os.chmod(path, 0o700)
            log.warning("state folder %s was readable by other users (mode %o); changed it to 700", path, mode)
        except OSError as exc:
            raise StateDirError(f"state folder {path} is readable by other users (mode {mode:o}) and cannot be "
                                f"made private: {exc.strerror or exc}") from exc
    return path


def private_file(path: str | Path) -> Path:
    """Make sure ``path`` exists with mode 0600 before a database opens it (SQLite gives its
    -wal and -shm files the mode of the database file)."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def move_aside(database: str | Path) -> str:
    """Rename an unreadable SQLite file (and its -wal/-shm) to ``*.corrupt-<time>``, never
    deleting it: it may still be worth recovering by hand. Returns the new name of the file."""
    database = Path(database)
    suffix = f".corrupt-{int(time.time())}"
    for extra in ("", "-wal", "-shm"):
        part = database.with_name(database.name + extra)
        if part.exists():
            part.rename(part.with_name(part.name + suffix))
    return database.name + suffix
