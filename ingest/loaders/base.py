"""What every loader shares: the `Loader` declaration and small text helpers.

A third-party loader may use these too (`from ingest.loaders.base import Blocks, nonempty`).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

from ingest.document import ExtractedDocument, Heading, LoadError


@dataclass(frozen=True)
class Loader:
    """One format. `name` becomes ExtractedDocument.format and what format_for() answers;
    `suffixes` are lower case with the dot (several parts allowed: ".rst.txt"); `load`
    turns a file's bytes into an ExtractedDocument and raises LoadError, with a one-line
    reason, for anything wrong with them (never a parser's own exception)."""

    name: str
    suffixes: tuple[str, ...]
    load: Callable[[bytes], ExtractedDocument]


# Who hears how a long load is going (the pipeline's progress bar), per thread: a loader
# calls tell("OCR page 3 of 40") between slow steps; nothing happens when no one listens.
_listener: ContextVar[Callable[[str], None] | None] = ContextVar("docent_load_listener", default=None)


@contextmanager
def reporting(listener: Callable[[str], None] | None):
    """Loads inside this block (on this thread) tell `listener` how they are going."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def tell(note: str) -> None:
    """One line on a long load's progress, for whoever is listening (see reporting)."""
    listener = _listener.get()
    if listener is not None:
        try:
            listener(note)
        except Exception:         # a progress display that fails must not fail the file
            pass


# Office files and EPUBs are zips: a zip bomb stops at these, before a parser inflates it.
MAX_UNPACKED_ENTRY = 50_000_000       # bytes, one entry
MAX_UNPACKED_TOTAL = 200_000_000      # bytes, all entries


def open_zip(data: bytes, what: str):
    """The zip in `data`, once its entries are known to unpack within the limits: their
    claimed sizes, then the real ones, inflated a megabyte at a time (a claim can lie, and
    zipfile's read() inflates up to 2 GB before it cuts an entry at its claim). `what`
    names the format in the one-line reasons ("corrupt Word file: ...")."""
    import io
    import zipfile

    try:
        book = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:
        raise LoadError(f"corrupt {what}: {short(exc)}") from None
    try:
        infos = book.infolist()
        if any(i.file_size > MAX_UNPACKED_ENTRY for i in infos) or sum(i.file_size for i in infos) > MAX_UNPACKED_TOTAL:
            raise LoadError(f"too large when unpacked (over {MAX_UNPACKED_TOTAL // 1_000_000} MB, "
                            f"or an entry over {MAX_UNPACKED_ENTRY // 1_000_000} MB)")
        for info in infos:
            with book.open(info) as entry:
                while entry.read(1 << 20):    # past its claim: zipfile stops, and a CRC error follows
                    pass
    except LoadError:
        book.close()
        raise
    except Exception as exc:                 # a damaged entry, a bad CRC, an unsupported method
        book.close()
        raise LoadError(f"corrupt {what}: {short(exc)}") from None
    return book


def short(exc: BaseException) -> str:
    """A parser exception as a short one-liner (no traceback, no multi-line dumps)."""
    msg = " ".join(str(exc).split())
    msg = msg or type(exc).__name__
    return msg if len(msg) <= 100 else msg[:97] + "..."


def collapse(s: str) -> str:
    return " ".join(s.split())


def nonempty(text: str, reason: str = "empty file") -> str:
    """`text` without trailing whitespace; LoadError(reason) when nothing is left."""
    text = text.rstrip()
    if not text.strip():
        raise LoadError(reason)
    return text


def column_names(header: list[str]) -> list[str]:
    """A table's header row as names; an empty header cell becomes "column N"."""
    return [name or f"column {n}" for n, name in enumerate(header, start=1)]


def named_row(names: list[str], row: list[str]) -> str:
    """One row as "Header: value; Header2: value2.": a cell keeps its meaning in any chunk
    (CSV, spreadsheets and slide tables read rows this way). Empty cells are left out."""
    return "; ".join(f"{names[i] if i < len(names) else f'column {i + 1}'}: {value}"
                     for i, value in enumerate(row) if value) + "."


def header_line(names: list[str]) -> str:
    """A table with a header and no rows still says which columns there are."""
    return "Columns: " + ", ".join(names) + "."


def line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


class Blocks:
    """Paragraph blocks joined by blank lines, with heading offsets tracked as they are added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.headings: list[Heading] = []

    def add(self, text: str, level: int | None = None, anchor: str | None = None) -> None:
        start = self.length + (2 if self.parts else 0)
        if level is not None:
            self.headings.append(Heading(start, level, text.split("\n", 1)[0], anchor))
        self.parts.append(text)
        self.length = start + len(text)

    def text(self) -> str:
        return "\n\n".join(self.parts)
