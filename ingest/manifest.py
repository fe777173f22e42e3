"""Which files to look at and what changed since the last run.

The manifest itself is the `files` table of the collection (path -> content hash,
status); this module finds the files on disk and hashes what the pipeline compares.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable



@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)        # supported files, in a stable order
    unsupported: list[Path] = field(default_factory=list)  # skipped: extension we do not read
    roots: list[Path] = field(default_factory=list)        # folders walked (deletions are looked for there)


def absolute(path: str | os.PathLike) -> Path:
    """The path as ingested: absolute, but symlinks kept (a link is its own entry)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def is_excluded(path: Path, root: Path, patterns: Iterable[str]) -> bool:
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    parts = rel.parts
    for pattern in patterns:
        if fnmatch.fnmatch(str(rel), pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def discover(paths: Iterable[str | os.PathLike], exclude: Iterable[str], is_supported) -> Discovery:
    """Walk folders (not following symlinked folders, which could loop) and sort files into
    supported and unsupported. A path given explicitly is taken even if a pattern excludes it."""
    found = Discovery()
    seen: set[Path] = set()
    exclude = tuple(exclude)

    def take(path: Path) -> None:
        if path in seen:
            return
        seen.add(path)
        (found.files if is_supported(path) else found.unsupported).append(path)

    for given in paths:
        path = absolute(given)
        if path.is_dir() and not path.is_symlink():
            found.roots.append(path)
            for dirpath, dirnames, filenames in os.walk(path):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not is_excluded(here / d, path, exclude))
                for name in sorted(filenames):
                    candidate = here / name
                    if not is_excluded(candidate, path, exclude):
                        take(candidate)
        else:
            take(path)
    return found


def content_hash(data: bytes) -> str:
    """The stored hash of a file's bytes: equal hashes, unchanged file, nothing to do."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def chunk_hash(embedded_text: str) -> str:
    return hashlib.blake2b(embedded_text.encode("utf-8"), digest_size=16).hexdigest()
