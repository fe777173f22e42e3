"""CSV and TSV: one line per row, each cell named by its column ("Team: eng; Start:
2024-03-01"), so a row keeps its meaning in whatever chunk it lands in; the header row
gives the names. The delimiter is sniffed (comma, semicolon, tab or bar)."""

from __future__ import annotations

import csv
import io

from ingest.document import ExtractedDocument, LoadError
from ingest.loaders.base import Loader, collapse, column_names, header_line, named_row, nonempty
from ingest.textdecode import decode_text

DELIMITERS = ",;\t|"
SNIFF_CHARS = 20_000


def load(data: bytes) -> ExtractedDocument:
    text = decode_text(data).lstrip("\ufeff")
    if "\x00" in text:
        raise LoadError("not a text table (binary data)")
    try:
        dialect = csv.Sniffer().sniff(text[:SNIFF_CHARS], delimiters=DELIMITERS)
    except csv.Error:
        dialect = csv.excel          # one column, or nothing to go by: commas
    try:
        rows = [[collapse(cell) for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:
        raise LoadError(f"not a readable table: {collapse(str(exc))}") from None
    rows = [row for row in rows if any(row)]
    if not rows:
        raise LoadError("empty file")
    names = column_names(rows[0])
    lines = [named_row(names, row) for row in rows[1:]] or [header_line(names)]
    return ExtractedDocument(nonempty("\n".join(lines)), "table", metadata={"columns": ", ".join(names)})


LOADER = Loader("table", (".csv", ".tsv"), load)
