"""Bytes to text: UTF-8 and byte-order marks first, detection for the rest, binary refused."""

from __future__ import annotations

import codecs

from ingest.document import LoadError

# UTF-32 LE before UTF-16 LE: its BOM starts with the UTF-16 one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters that do not occur in text (tab, newline, carriage return and form feed do).
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13})
_SAMPLE = 8192
_CP1252_MARGIN = 0.1      # chaos (0..1) that 1252 may lose by and still win


def decode_text(data: bytes) -> str:
    """Decode a text file's bytes, newlines normalised to "\\n". Raises
    LoadError("binary content, not text") for data that is not text in any encoding we
    can detect."""
    text = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise LoadError(f"undecodable text (damaged {encoding.upper()} file)") from None
            break
    if text is None:
        if looks_binary(data):
            raise LoadError("binary content, not text")
        try:
            text = data.decode("utf-8")           # the common case: no detector needed
        except UnicodeDecodeError:
            text = _detect(data)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def looks_binary(data: bytes) -> bool:
    """NUL anywhere (text without a UTF-16/32 BOM has none), or >1% control characters."""
    if b"\x00" in data:
        return True
    sample = data[:_SAMPLE]
    controls = sum(sample.count(c) for c in _CONTROL)
    return controls > max(2, len(sample) // 100)


def _detect(data: bytes) -> str:
    from charset_normalizer import from_bytes

    # Without a BOM we never take UTF-16/32 (short Latin-1 text can "decode" as UTF-16).
    matches = [m for m in from_bytes(data) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        raise LoadError("binary content, not text")
    # On short Western-European text the detector often ranks a Baltic or Central-European
    # code page first, with Windows-1252 a little behind (or giving the very same text);
    # 1252 is by far the likelier in office files, so it wins when it reads nearly as cleanly.
    best = matches[0]
    if any("cp1252" in m.could_be_from_charset and m.chaos <= best.chaos + _CP1252_MARGIN for m in matches):
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:        # bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D: not 1252 after all
            pass
    return str(best)
