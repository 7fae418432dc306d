"""One driver per output folder: an exclusive ``fcntl.flock`` on ``OUT/.lock``, held while the store is open.

The kernel drops the lock when its holder exits, however it exits (SIGKILL and out-of-memory included), so a
stale lock never blocks a rerun. The holder writes its pid into the file so that a second driver can name it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

LOCK_NAME = ".lock"


class FolderInUseError(RuntimeError):
    """Another process holds the output folder's lock.

    Attributes:
        pid: the holder's pid as it wrote it (None if it could not be read).
    """

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.folder, self.pid = folder, pid
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"results folder in use by {holder}: {folder} (one sweep per folder; wait for it to end, or use --out)"
        )


class FolderLock:
    """The exclusive lock of ``folder``; :meth:`acquire` raises :class:`FolderInUseError` at once if it is held."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderInUseError(self.path.parent, _read_pid(self.path)) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
