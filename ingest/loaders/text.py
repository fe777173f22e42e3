"""Plain text: decoded (UTF-8, BOMs, else detected), nothing else to find."""

from __future__ import annotations

from ingest.document import ExtractedDocument
from ingest.loaders.base import Loader, nonempty
from ingest.textdecode import decode_text


def load(data: bytes) -> ExtractedDocument:
    return ExtractedDocument(nonempty(decode_text(data)), "text")


LOADER = Loader("text", (".txt", ".text"), load)
