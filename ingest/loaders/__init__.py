"""File -> ExtractedDocument, by format: the loader registry.

Each format is a module here declaring a `Loader` (name, suffixes, load); the one routing
table, suffix -> Loader, is built from those declarations and from third-party loaders,
the `docent.loaders` entry points of installed packages:

    [project.entry-points."docent.loaders"]     # in the plugin's pyproject.toml
    xyz = "xyz_loader:LOADER"                   # a Loader, or a callable returning one

Plugins are looked up on first use (not at import) and the table is cached;
`reset_registry()` forgets it. Built-ins always win: a plugin that claims a suffix docent
reads itself, or one an earlier plugin took, does not get it (a one-line warning says so)
and keeps its other suffixes. A plugin that fails to import or is no Loader is skipped
with a one-line warning naming it; the other formats go on working.

Every bad input raises LoadError with a one-line reason (the caller adds the file name);
a plugin's other exceptions are turned into one. Parsers are imported inside the loaders
that need them, so importing this package stays cheap.
"""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

from ingest.document import ExtractedDocument, LoadError
from ingest.errors import os_reason
from ingest.loaders import docx, email, epub, html, markdown, notebook, ocr, pdf, pptx, rst, table, text, xlsx
from ingest.loaders.base import Loader, reporting, short

ENTRY_POINT_GROUP = "docent.loaders"
BUILTIN: tuple[Loader, ...] = (markdown.LOADER, text.LOADER, rst.LOADER, html.LOADER, pdf.LOADER, docx.LOADER,
                                notebook.LOADER, table.LOADER, ocr.LOADER, pptx.LOADER, xlsx.LOADER,
                                email.LOADER, email.MBOX_LOADER, epub.LOADER)

log = logging.getLogger(__name__)
_lock = threading.RLock()    # helper threads ask too; re-entrant in case a plugin asks while loading
_table: dict[str, Loader] | None = None


def registry() -> dict[str, Loader]:
    """The routing table, suffix -> Loader (built-ins, then plugins). Do not change it."""
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = _build()
    return _table


def reset_registry() -> None:
    """Forget the table, so the next use looks for plugins again (tests, after installing one)."""
    global _table
    with _lock:
        _table = None


def __getattr__(name: str):
    if name == "FORMATS":                # suffix -> format name; computed, as plugins come late
        return {suffix: loader.name for suffix, loader in registry().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def loader_for(path: Path) -> Loader | None:
    """The loader for a file's name: the longest registered suffix it ends with (".rst.txt"
    before ".txt"), after a non-empty stem (".md" alone is a hidden file, not markdown)."""
    name = Path(path).name.lower()
    table = registry()
    dot = name.find(".", 1)
    while dot > 0:
        if name[dot:] in table:
            return table[name[dot:]]
        dot = name.find(".", dot + 1)
    return None


def format_for(path: Path) -> str | None:
    """The format name for a file's extension, or None when it is not supported."""
    loader = loader_for(path)
    return loader.name if loader else None


def load_file(path: Path, max_bytes: int | None = None) -> ExtractedDocument:
    """Read and parse one file. Raises LoadError (only) for anything wrong with it."""
    path = Path(path)
    if loader_for(path) is None:
        raise LoadError(f"unsupported file type ({path.suffix or 'no extension'})")
    return load_bytes(path.name, read_file(path, max_bytes))


def load_bytes(name: str, data: bytes) -> ExtractedDocument:
    """Parse a file's bytes by its name's suffix (a git blob, a fetched page). LoadError only."""
    loader = loader_for(Path(name))
    if loader is None:
        raise LoadError(f"unsupported file type ({Path(name).suffix or 'no extension'})")
    doc = loader.load(data)
    doc.headings.sort(key=lambda h: h.start)
    return doc


def check_file(path: Path, max_bytes: int | None = None):
    """stat() a file we are about to read; LoadError if it is missing, not a regular file,
    too large or empty. Cheap: the pipeline calls it before hashing."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoadError("broken symlink (target missing)" if path.is_symlink() else "file not found") from None
    except OSError as exc:
        raise LoadError(os_reason(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise LoadError("is a directory")
    if not stat.S_ISREG(st.st_mode):       # a FIFO or device would block or never end
        raise LoadError("not a regular file")
    check_size(st.st_size, max_bytes)
    return st


def check_size(size: int, max_bytes: int | None) -> None:
    """LoadError for content too large or empty, wherever it comes from (a file, a blob, a page)."""
    if max_bytes is not None and size > max_bytes:
        raise LoadError(f"too large: {size / 1e6:.1f} MB (limit {max_bytes / 1e6:.3g} MB; see ingest.max_file_mb)")
    if size == 0:
        raise LoadError("empty file")


def read_file(path: Path, max_bytes: int | None = None) -> bytes:
    """A file's bytes after check_file; LoadError (only) with a one-line reason."""
    check_file(path, max_bytes)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(os_reason(exc)) from None


# ---------------------------------------------------------------- the table and its plugins

def _build() -> dict[str, Loader]:
    table = {suffix: loader for loader in BUILTIN for suffix in loader.suffixes}
    for ep_name, loader in _plugins():
        taken = [s for s in loader.suffixes if s in table]
        for suffix in loader.suffixes:
            table.setdefault(suffix, loader)
        if taken:
            owners = ", ".join(f"{s} ({table[s].name})" for s in taken)
            log.warning("loader plugin %r not used for %s: taken first (built-in loaders win)", ep_name, owners)
    return table


def _plugins() -> list[tuple[str, Loader]]:
    from importlib.metadata import entry_points

    try:
        eps = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:               # an unreadable dist-info must not cost the built-ins
        log.warning("loader plugins not looked up: %s", short(exc))
        return []
    found = []
    for ep in eps:
        try:
            obj = ep.load()
            if not isinstance(obj, Loader) and callable(obj):
                obj = obj()
            found.append((ep.name, _as_loader(obj)))
        except Exception as exc:           # one broken plugin must not stop the others
            log.warning("loader plugin %r (%s) skipped: %s: %s", ep.name, ep.value, type(exc).__name__, short(exc))
    return found


def _as_loader(obj) -> Loader:
    """A plugin's object as a Loader whose load() raises LoadError only."""
    name, suffixes, load = (getattr(obj, a, None) for a in ("name", "suffixes", "load"))
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    if not (isinstance(name, str) and name and callable(load) and isinstance(suffixes, (tuple, list, set))
            and suffixes and all(isinstance(s, str) and s.startswith(".") and len(s) > 1 for s in suffixes)):
        raise TypeError(f"{obj!r} is not a Loader (name, suffixes such as '.xyz', load(bytes))")

    def guarded(data: bytes) -> ExtractedDocument:
        try:
            doc = load(data)
        except LoadError:
            raise
        except Exception as exc:           # the pipeline expects LoadError for a bad file, nothing else
            raise LoadError(f"{name} loader failed: {type(exc).__name__}: {short(exc)}") from None
        if not isinstance(doc, ExtractedDocument):
            raise LoadError(f"{name} loader returned {type(doc).__name__}, not an ExtractedDocument")
        return doc

    return Loader(name, tuple(s.lower() for s in suffixes), guarded)


__all__ = ["Loader", "reporting", "BUILTIN", "ENTRY_POINT_GROUP", "FORMATS", "registry", "reset_registry",
           "loader_for", "format_for", "load_file", "load_bytes", "read_file", "check_file", "check_size"]
