"""Writing the files of an evaluation so that a stopped or crashed run never leaves half
of one: the test set, its state, the rows kept on resume, the report."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes | str) -> Path:
    """Write to a scratch file beside `path`, then rename over it: the old file or the
    new one, never half of one. Readable by others, as a file written plainly would be."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(scratch, 0o666 & ~umask)         # mkstemp makes it private
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return path
