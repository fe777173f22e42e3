"""The one way docent replaces a file: write a scratch file beside it, flush it to disk,
rename it over the target, then flush the folder. A crash leaves the old file or the new
one, never half of one; a failed write leaves neither a scratch file nor a changed target.
Used for the FAISS files of a collection, uploads, the joined bundled model and the files
of an evaluation."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCRATCH_SUFFIX = ".tmp"


def scratch_for(path: Path) -> Path:
    """A hidden scratch name beside `path`, unique to this call ("vectors-3.faiss" ->
    ".vectors-3.faiss.<hex>.tmp"): writers in several processes never share one."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{SCRATCH_SUFFIX}")


def is_scratch(path: Path, of: str = "") -> bool:
    """A scratch file left by a crash (of a target whose name ends with `of`)."""
    name = path.name
    return name.startswith(".") and name.endswith(SCRATCH_SUFFIX) and of in name


def fsync_path(path: Path, folder: bool = False) -> None:
    """Flush a file's data, or a folder's entries (so that a rename survives a power cut),
    to disk. A folder that cannot be synced (some filesystems refuse) is let be; a file
    that cannot is an error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """`with replacing(target) as scratch:` write `scratch` (any way: a handle, a library
    that takes a path); on leaving the block it replaces `target`. An exception in the
    block removes the scratch file and leaves `target` as it was."""
    path = Path(path)
    scratch = scratch_for(path)
    try:
        yield scratch
        fsync_path(scratch)
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, folder=True)


def write_atomically(path: Path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` through `replacing`."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with replacing(path) as scratch:
        scratch.write_bytes(data)
    return path
