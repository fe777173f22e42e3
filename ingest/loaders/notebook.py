"""Jupyter notebooks (.ipynb, nbformat 4): markdown cells as they are (their headings are
the sections), code cells as fenced code in the notebook's language, in cell order.
Outputs are dropped: results, tracebacks and images say little about how things work, and
they hold data (tokens printed while debugging, customer rows) no one meant to index."""

from __future__ import annotations

import dataclasses
import json

from ingest.document import ExtractedDocument, LoadError
from ingest.loaders import markdown
from ingest.loaders.base import Loader, short
from ingest.textdecode import decode_text


def load(data: bytes) -> ExtractedDocument:
    try:
        notebook = json.loads(decode_text(data))
    except ValueError as exc:
        raise LoadError(f"not a notebook: invalid JSON ({short(exc)})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise LoadError("not a notebook: no list of cells (docent reads nbformat 4; "
                        "an older notebook is upgraded by opening and saving it in Jupyter)")
    language = _language(notebook.get("metadata"))
    parts = []
    for cell in notebook["cells"]:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(line for line in source if isinstance(line, str))
        if not isinstance(source, str) or not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(source.strip())
        elif cell.get("cell_type") == "code":
            parts.append(f"```{language}\n{source.rstrip()}\n```")
        # raw cells: text for other tools (LaTeX, reST) and no part of the notebook's story
    if not parts:
        raise LoadError("empty notebook: no markdown or code cell holds text")
    return dataclasses.replace(markdown.load("\n\n".join(parts).encode("utf-8")), format="notebook")


def _language(metadata) -> str:
    if not isinstance(metadata, dict):
        return ""
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        value = metadata.get(key)
        if isinstance(value, dict) and isinstance(value.get(field), str) and value[field].isidentifier():
            return value[field]
    return ""


LOADER = Loader("notebook", (".ipynb",), load)
