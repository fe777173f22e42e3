"""The one writer of a collection: an exclusive, non-blocking flock on `write.lock`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ingest.errors import CollectionLocked


class WriterLock:
    """The kernel drops the lock if the process dies; the holder's pid is written inside
    so a second writer can say who holds it."""

    def __init__(self, path: Path, name: str):
        self.path, self.name, self._fd = path, name, None

    def try_acquire(self) -> bool:
        """Take the lock; False (instead of an error) when another process holds it."""
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode(), 0)
        self._fd = fd
        return True

    def acquire(self) -> None:
        if not self.try_acquire():
            raise CollectionLocked(
                f"collection '{self.name}' is being written by another docent process ({self.holder()}); "
                f"wait for it to finish and run again") from None

    def holder(self) -> str:
        try:
            with open(self.path, "rb") as fh:
                return fh.read(200).decode("utf-8", "replace").strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            import fcntl
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
