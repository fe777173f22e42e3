"""A folder (or one file) on this machine: the source `docent ingest PATH` always had.

Walks the folder with the collection's exclusions (ingest.manifest.discover); an item's
key is the file's absolute path. A folder that is missing when it is synced again (a
renamed or unmounted disk) is a SourceError: its files stay in the index rather than
all being removed at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ingest import loaders
from ingest.manifest import absolute, discover
from ingest.sources.base import Item, SourceError


class FolderSource:
    kind = "folder"

    def __init__(self, spec: str, exclude: tuple[str, ...] = ()):
        self.path = absolute(spec)
        self.spec = str(self.path)
        self.exclude = tuple(exclude)
        self._prefix = self.spec.rstrip(os.sep) + os.sep

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir() and not self.path.is_symlink()

    def files(self) -> list[Path]:
        """The files under the folder (or the one file), exclusions applied, in a stable order."""
        if not os.path.lexists(self.path):
            raise SourceError(f"{self.spec}: not found (renamed, deleted or not mounted); its files stay in the "
                              "index until it is back or removed with `docent remove`")
        return discover([self.path], self.exclude, lambda p: True).files

    def items(self) -> Iterator[Item]:
        for path in self.files():
            yield file_item(path)

    def owns(self, key: str) -> bool:
        return key.startswith(self._prefix) if self.is_folder else key == self.spec

    @property
    def complete(self) -> bool:
        return True

    def state(self) -> dict:
        return {}


def file_item(path: Path) -> Item:
    """A file on disk as an item: read (and checked) only when its content is needed."""
    try:
        mtime = os.lstat(path).st_mtime_ns
    except OSError:
        mtime = None
    return Item(str(path), path.name, lambda max_bytes: loaders.read_file(path, max_bytes), mtime_ns=mtime)
