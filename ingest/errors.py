"""What can go wrong with a collection, told as one line that names it and says what to do.

StoreError and its kinds are what ingest/store.py raises; `storage_faults(name, folder)`
turns what the disk and SQLite raise (a full disk, a read-only home, a damaged database
file) into a StorageFault, so every command ends with that line and exit code 5 instead
of a traceback, and other collections are not affected. `os_reason(exc)` is the one-line
reason given for a document file that cannot be read (loaders and pipeline).
"""

from __future__ import annotations

import errno
import sqlite3
from contextlib import contextmanager
from pathlib import Path


class StoreError(Exception):
    """A collection that cannot be opened or written; the message is for the user."""


class CollectionNotFound(StoreError):
    pass


class CollectionLocked(StoreError):
    pass


class EmbeddingMismatch(StoreError):
    pass


class StorageFault(StoreError):
    """The disk or the database file failed: full, read-only, damaged. `kind` says which."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def os_reason(exc: OSError) -> str:
    """One line for an OSError met reading a file, for "failed: <file>: <reason>". The file
    was there when listed or stat'ed, so a FileNotFoundError here means it went since."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, FileNotFoundError):
        return "file vanished during the run"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return (exc.strerror or type(exc).__name__).lower()


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def fault_kind(exc: BaseException) -> str | None:
    """"full", "read-only", "damaged", "io" for a storage fault; None for anything else."""
    if isinstance(exc, sqlite3.DatabaseError):
        text = str(exc).lower()
        if "malformed" in text or "not a database" in text or "encrypted" in text:
            return "damaged"
        if "full" in text:
            return "full"
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return "read-only"
        if "disk i/o" in text:
            return "io"
        return "damaged" if type(exc) is sqlite3.DatabaseError else None
    if isinstance(exc, OSError):
        if exc.errno in _FULL:
            return "full"
        if exc.errno in _READ_ONLY:
            return "read-only"
        if exc.errno == errno.EIO:
            return "io"
    return None


def fault_message(kind: str, name: str, folder: Path, exc: BaseException) -> str:
    detail = getattr(exc, "strerror", None) or str(exc)
    if kind == "full":
        return (f"collection '{name}': the disk holding {folder} is full ({detail}); free some space and run "
                f"again (what was committed before stays; nothing is half-written)")
    if kind == "read-only":
        return (f"collection '{name}': cannot write in {folder} ({detail}); it can be read (ask, retrieve, "
                f"sources) but not changed until the folder is writable")
    if kind == "damaged":
        return (f"collection '{name}' is damaged ({folder / 'docent.sqlite'}: {detail}); move that folder "
                f"away and ingest the documents again to rebuild it (other collections are not affected)")
    return f"collection '{name}': the disk failed reading or writing {folder} ({detail})"


@contextmanager
def storage_faults(name: str, folder: Path):
    """Turn a storage fault raised inside into a StorageFault naming the collection."""
    try:
        yield
    except StoreError:
        raise
    except (sqlite3.DatabaseError, OSError) as exc:
        kind = fault_kind(exc)
        if kind is None:
            raise
        raise StorageFault(fault_message(kind, name, Path(folder), exc), kind) from None
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise StorageFault(database_message(name, exc), "database") from None


def is_database_error(exc: BaseException) -> bool:
    """An error from PostgreSQL or its driver (the postgres store), told without importing psycopg."""
    return any(cls.__module__.split(".")[0] == "psycopg" and cls.__name__ == "Error" for cls in type(exc).__mro__)


def database_message(name: str, exc: BaseException) -> str:
    """The one line for a database that failed mid-way: gone, out of space, a statement refused."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ == "OperationalError" or "connection" in reason.lower():
        return (f"collection '{name}': lost the connection to its database ({reason}); what was committed "
                f"before stays, nothing is half-written: run the command again when the database is back")
    return f"collection '{name}': the database refused a change ({reason}); what was committed before stays"
