"""What every source hands the pipeline: items to read, the keys it owns, its state.

A source is where files come from: a folder (`folder.py`), a git branch (`git.py`), a
documentation site (`site.py`). The pipeline does not care which: it asks a source for
its items, reads the ones whose version changed, removes the stored keys the source owns
but no longer yields, and saves the source's state in the same commit as the files.

    source = open_source("git+file:///srv/git/handbook.git@main", workdir)
    for item in source.items(): ...      # Item(key, name, version, read)
    source.owns(key)                     # a stored key this source is responsible for
    source.complete                      # False: a budget or a fault cut the listing short,
                                         #   so keys it did not yield stay in the index
    source.state()                       # JSON, kept with the collection for the next sync
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol


class SourceError(Exception):
    """A source that cannot be read at all (a repository that does not clone, a site that
    does not answer): one line naming it and the reason. The collection is left as it was."""


@dataclass(frozen=True)
class Item:
    """One file of a source.

    `key` is what the index stores as the file's path (an absolute path, or a URL-like
    name); `name` is a file name whose suffix picks the loader. `version` is a change
    token the source knows without reading the bytes (a git blob id, a page's hash kept
    from the last crawl when the server answered 304): equal to the stored content hash
    means unchanged, and nothing is read. `read(max_bytes)` returns the bytes, raising
    ingest.document.LoadError (or OSError) with a one-line reason."""

    key: str
    name: str
    read: Callable[[int | None], bytes]
    version: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    origin: dict = field(default_factory=dict)   # JSON-able: commit, url; stored with the file


class Source(Protocol):
    spec: str                 # remembered by the collection: `docent sync` opens it again from this
    kind: str

    def items(self) -> Iterator[Item]: ...

    def owns(self, key: str) -> bool: ...

    @property
    def complete(self) -> bool: ...

    def state(self) -> dict: ...
