"""The state directory's lock: ``<state_dir>/integd.lock``, held with an exclusive ``flock`` by a running daemon
(from before the store opens until after it closes) and by ``integd restore`` while it swaps the database.

So a restore never replaces the store under a live daemon, and a daemon never starts on a half-restored
directory. ``flock`` locks belong to the open file: the kernel drops them when the process dies, so a crash
leaves no stale lock to clean up. The file stays empty (the holder's pid comes from /proc/locks).

Exceptions::

    StoreError (integd.store.db)
     └── StateDirInUse     another process holds the lock; the message names the directory and its pid

>>> # with StateLock(state_dir): ...   # or lock.acquire() ... lock.release()
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from integd.store.db import StoreError

LOCK_NAME = "integd.lock"


class StateDirInUse(StoreError):
    """Another integd (or a restore) holds the state directory's lock."""


def _flock_holder(inode: int) -> str:
    """The pid holding a flock on ``inode``, from /proc/locks (the file stays empty: starting changes nothing)."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()   # "1: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF"
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                    return fields[4]
    except OSError:
        return "unknown"   # no /proc (or hidden by the sandbox): the message just cannot name the pid
    return "unknown"


class StateLock:
    """An exclusive, non-blocking ``flock`` on ``<state_dir>/integd.lock``.

    Example::

        with StateLock(paths.state_dir):
            replace_the_database()
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise StateDirInUse at once (never waits)."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _flock_holder(os.fstat(fd).st_ino)
            os.close(fd)
            raise StateDirInUse(f"state directory {self.path.parent} is in use by another integd process "
                                f"(pid {holder}): stop it first") from None
        except OSError:
            os.close(fd)
            raise
        if os.geteuid() == 0:
            # `sudo integd restore` may be the first to create the file: it must stay openable by the daemon's
            # user, who owns the state directory. (Never reached by the daemon itself, which runs unprivileged
            # under a unit whose system-call filter refuses chown.)
            st = os.stat(self.path.parent)
            os.fchown(fd, st.st_uid, st.st_gid)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: removing it would race with the next holder."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)   # closing the last descriptor of the open file drops the flock

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
