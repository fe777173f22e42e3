"""Bytes to text: UTF-8 and byte-order marks first, detection for the rest, binary refused."""

from __future__ import annotations

import codecs

from ingest.document import LoadError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters that do not occur in text (tab, newline, carriage return and form feed do).
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13})


def decode_text(data: bytes) -> str:
    """Decode a text file's bytes. Raises LoadError("binary content, not text") for data
    that is not text in any encoding we can detect."""
    text = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise LoadError(f"undecodable text (damaged {encoding.upper()} file)") from None
            break
    if text is None:
        if _looks_binary(data):
            raise LoadError("binary content, not text")
        try:
            text = data.decode("utf-8")           # the common case: no detector needed
        except UnicodeDecodeError:
            text = _detect(data)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(sample.count(c) for c in _CONTROL)
    return controls > max(2, len(sample) // 100)


# On short Western-European text the detector often ranks a Baltic or Central-European
# code page first, with Windows-1252 a hair behind; 1252 is by far the likelier one in
# office documents, so it wins when it reads the bytes nearly as cleanly.
_PREFERRED = ("cp1252", "latin_1", "iso8859_15")
_PREFERENCE_MARGIN = 0.15


def _detect(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise LoadError("binary content, not text")
    best = matches[0]
    for encoding in _PREFERRED:
        for match in matches:
            if match.encoding == encoding and match.chaos <= best.chaos + _PREFERENCE_MARGIN:
                return str(match)
    return str(best)
