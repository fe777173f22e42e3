"""`docent ingest PATH --watch`: keep a collection in step with folders as they change.

watchfiles (inotify, or polling where there is none) reports changes; they are gathered
for `sources.watch_debounce_ms`, then each changed file is read only once its size and
time have stopped changing for `sources.watch_settle_ms` (a file still being copied is
not read half-way; one that settles half-written fails to parse and is read again on its
next change). Editor swap and lock files and the collection's exclusions are ignored.
A watched folder that disappears (renamed, unmounted) is reported once and watched for;
when it is back it is synced in full. Ctrl-C ends the watch after committing what is done.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ingest import loaders
from ingest.manifest import absolute, discover, is_excluded
from ingest.sources.base import Item
from ingest.sources.folder import file_item

# Editors' and office suites' scratch files: never documents, often half-written.
EDITOR_SCRATCH = ("*.swp", "*.swx", "*.swo", "4913", ".#*", "#*#", "~$*", ".~lock.*", "*.crdownload", "*.part",
                  "*.partial", "*.kate-swp")
_SETTLE_LIMIT = 20          # settle checks per file before it is read anyway


@dataclass(frozen=True)
class Batch:
    """One debounced set of changes: files to read again, paths that are gone, and
    watched folders to read in full (they came back after being gone)."""
    changed: tuple[Path, ...]
    gone: tuple[str, ...]
    full: tuple[Path, ...] = ()


READY = Batch((), (), ())       # the first batch: the watch is on, read everything once


class ChangedFiles:
    """A batch as a source for the pipeline: the changed files, and the gone paths (a
    file, or a folder moved away: everything stored under it) as keys it owns."""

    kind = "folder"
    spec = "(changes)"

    def __init__(self, batch: Batch):
        self.batch = batch
        self._gone = set(batch.gone)
        self._prefixes = tuple(g.rstrip(os.sep) + os.sep for g in batch.gone)

    def items(self) -> Iterator[Item]:
        for path in self.batch.changed:
            yield file_item(path)

    def owns(self, key: str) -> bool:
        return key in self._gone or key.startswith(self._prefixes)

    @property
    def complete(self) -> bool:
        return True

    def state(self) -> dict:
        return {}


class Watcher:
    """Turns file-system events under `roots` into Batches (`batches()`), and notes
    (`on_note`) for what a user should hear: a folder gone or back."""

    def __init__(self, roots: Iterable[str | os.PathLike], exclude: Iterable[str], debounce_ms: int = 400,
                 settle_ms: int = 300, on_note: Callable[[str], None] = lambda _: None,
                 stop: threading.Event | None = None):
        self.roots = [absolute(r) for r in roots]
        self.exclude = tuple(exclude) + EDITOR_SCRATCH
        self.debounce_ms = debounce_ms
        self.settle = settle_ms / 1000
        self.on_note = on_note
        self.stop = stop or threading.Event()
        self.missing: set[Path] = set()
        self.returned: list[Path] = []     # roots that came back: the caller syncs them in full
        self.ready = False

    def _root_of(self, path: Path) -> Path | None:
        for root in self.roots:
            if path == root or root in path.parents:
                return root
        return None

    def _wanted(self, path: Path) -> bool:
        root = self._root_of(path)
        if root is None:
            return False
        return not is_excluded(path, root if root != path else root.parent, self.exclude)

    def _check_roots(self) -> bool:
        """Notes for roots that vanished or came back; True when the set of live roots changed."""
        changed = False
        for root in self.roots:
            there = root.exists()
            if not there and root not in self.missing:
                self.missing.add(root)
                self.on_note(f"{root}: gone (renamed, deleted or unmounted); its files stay in the index, "
                             "watching for it to come back")
                changed = True
            elif there and root in self.missing:
                self.missing.discard(root)
                self.returned.append(root)
                self.on_note(f"{root}: back; reading it again")
                changed = True
        return changed

    def batches(self) -> Iterator[Batch]:
        """Batches until `stop` is set. Raises KeyboardInterrupt on Ctrl-C (the caller commits)."""
        import watchfiles

        while not self.stop.is_set():
            self._check_roots()
            live = [r for r in self.roots if r not in self.missing]
            if self.returned:
                back, self.returned = self.returned, []
                yield Batch((), (), tuple(back))
            if not live:
                self.stop.wait(1.0)
                continue
            for changes in watchfiles.watch(*live, watch_filter=None, debounce=self.debounce_ms, step=50,
                                            stop_event=self.stop, rust_timeout=1000, yield_on_timeout=True,
                                            ignore_permission_denied=True):
                if not self.ready:            # watching from here on: the caller's first full read
                    self.ready = True         # can miss nothing written after it started
                    yield READY
                batch = self._batch(changes)
                if batch.changed or batch.gone:
                    yield batch
                if self._check_roots():
                    break                   # watch the roots that are there now

    def _batch(self, changes: set) -> Batch:
        changed: dict[Path, None] = {}
        gone: set[str] = set()
        for _, raw in changes:
            path = Path(raw)
            if not self._wanted(path):
                continue
            if os.path.lexists(path):
                if path.is_dir() and not path.is_symlink():     # a folder moved in: its files
                    for found in discover([path], self.exclude, lambda p: True).files:
                        if loaders.format_for(found) is not None:
                            changed[found] = None
                elif loaders.format_for(path) is not None:
                    changed[path] = None
            elif self._root_of(path).exists():      # a vanished root is not its files deleted
                gone.add(str(path))
        return Batch(tuple(self._settled(list(changed))), tuple(sorted(gone)))

    def _settled(self, paths: list[Path]) -> list[Path]:
        """The paths once their size and mtime hold still for `settle` seconds (a copy in
        progress); files that vanished meanwhile are dropped (their deletion comes next)."""
        if not self.settle or not paths:
            return [p for p in paths if p.exists()]
        last = {p: _stamp(p) for p in paths}
        for _ in range(_SETTLE_LIMIT):
            if self.stop.wait(self.settle):
                break
            now = {p: _stamp(p) for p in last}
            moving = [p for p in last if now[p] != last[p]]
            last = now
            if not moving:
                break
        return [p for p, stamp in last.items() if stamp is not None]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def keep_in_sync(ingestor, paths: list[str], collection: str | None, on_report: Callable, on_note: Callable[[str], None],
                 stop: threading.Event | None = None) -> None:
    """Once the watch is on, ingest `paths` (remembered as sources), then apply every batch of changes until
    `stop` is set or Ctrl-C (KeyboardInterrupt, raised after the current batch commits).
    A collection busy with another writer is retried, never dropped."""
    from ingest.errors import CollectionLocked
    from ingest.store import collection_dir

    cfg = ingestor.settings.sources
    name = collection or ingestor.settings.ingest.collection
    status = collection_dir(ingestor.home, name) / WATCH_FILE
    watcher = Watcher(paths, ingestor.settings.ingest.exclude, cfg.watch_debounce_ms, cfg.watch_settle_ms,
                      on_note, stop)
    try:
        for batch in watcher.batches():
            while True:
                try:
                    report = ingestor.ingest(paths, name) if batch is READY else ingestor.apply(batch, name)
                    break
                except CollectionLocked as exc:
                    on_note(f"{exc}; trying again in 2 s")
                    if watcher.stop.wait(2.0):
                        return
            on_report(report)
            _write_status(status, watcher.roots, None if batch is READY else time.time())
            if report.interrupted:
                raise KeyboardInterrupt
    finally:
        status.unlink(missing_ok=True)


WATCH_FILE = "watch.json"


def _write_status(path: Path, roots: list[Path], last_change: float | None) -> None:
    """What the window shows: who watches the collection, since when, the last change."""
    import json

    from docent.atomic import write_atomically

    previous = watching(path.parent) or {}
    data = {"pid": os.getpid(), "paths": [str(r) for r in roots], "started": previous.get("started", time.time()),
            "last_change": last_change or previous.get("last_change")}
    write_atomically(path, json.dumps(data).encode())


def watching(folder: Path) -> dict | None:
    """The watch status of a collection folder, or None when no live process watches it."""
    import json

    try:
        data = json.loads((Path(folder) / WATCH_FILE).read_text())
        os.kill(int(data["pid"]), 0)          # a watcher that died without cleaning up is not watching
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) else None
