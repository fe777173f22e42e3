"""Excel (.xlsx, .xlsm): one section per visible sheet, headed by its name. As with CSV
tables, the sheet's first non-empty row names the columns and every later row is one line
with each cell named ("Owner: Dana; Due: 2024-03-01."), so a row keeps its meaning in
whatever chunk it lands in. Cached formula results are read, not the formulas. Hidden
sheets are left out: they are mostly scratch work and lookup lists. openpyxl, read-only."""

from __future__ import annotations

import datetime as dt
import io
import warnings

from ingest.document import ExtractedDocument, LoadError
from ingest.loaders.base import Blocks, Loader, collapse, column_names, header_line, named_row, open_zip, short

# An OLE compound file: what Office writes for a password-protected .xlsx, and an .xls.
OLE_MAGIC = b"\xd0\xcf\x11\xe0"
MAX_ROWS = 200_000


def load(data: bytes) -> ExtractedDocument:
    if data.startswith(OLE_MAGIC):
        raise LoadError("encrypted or old-format (.xls) Excel file")
    # "no default style", unknown extensions: openpyxl warns and reads on; so do we.
    warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
    open_zip(data, "Excel file").close()        # a zip bomb stops here, before the parser inflates it
    try:
        import openpyxl
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:        # not a zip, not a workbook, bad XML
        raise LoadError(f"corrupt Excel file: {short(exc)}") from None
    try:
        out = Blocks()
        sheets: list[str] = []
        budget = MAX_ROWS
        for sheet in book.worksheets:
            if sheet.sheet_state != "visible":
                continue
            lines, budget = _sheet_lines(sheet, budget)
            if lines:
                sheets.append(sheet.title)
                out.add(collapse(sheet.title) or f"Sheet {len(sheets)}", level=1)
                out.add("\n".join(lines))
        title = collapse(book.properties.title or "") or None
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"corrupt Excel file: {short(exc)}") from None
    finally:
        book.close()                # read-only mode keeps the archive open until closed
    if not sheets:
        raise LoadError("no data in the sheets")
    return ExtractedDocument(out.text(), "spreadsheet", out.headings, title=title,
                             metadata={"sheets": ", ".join(sheets)})


def _sheet_lines(sheet, budget: int) -> tuple[list[str], int]:
    """The sheet's rows as lines, and the row budget left for the sheets after it."""
    sheet.reset_dimensions()        # the stored used range may be stale: read every row there is
    names: list[str] | None = None
    lines = []
    for row in sheet.iter_rows(values_only=True):
        cells = [_cell(value) for value in row]
        if not any(cells):
            continue
        budget -= 1
        if budget < 0:
            raise LoadError(f"too many rows (over {MAX_ROWS:,}; split the workbook or export the part that matters)")
        if names is None:
            names = column_names(cells)
            continue
        lines.append(named_row(names, cells))
    if names is not None and not lines:          # a header alone says which columns there are
        lines = [header_line(names)]
    return lines, budget


def _cell(value) -> str:
    """A cell as a person reads it: dates in ISO form, 3.0 as 3, no float noise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():           # Excel has no date type: a date is a midnight
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if value.second else "minutes")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"                  # Excel's own precision: 0.1+0.2 shows as 0.3
    return collapse(str(value))


LOADER = Loader("spreadsheet", (".xlsx", ".xlsm"), load)
