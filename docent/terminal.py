"""Text from documents and models on its way to a terminal: made safe to print.

A file name, a passage or a model's answer can hold newlines that break a table row,
escape sequences that recolour or retitle the terminal (ESC [ ... m, ESC ] ... BEL), and
bidirectional controls that reorder what is read. Every human-readable output passes
such text through `printable()`.
"""

from __future__ import annotations

import unicodedata


def printable(text: str, lines: bool = False) -> str:
    """The text with control and format characters written as escapes (\\x1b, \\n, \\u202e);
    `lines`: newlines and tabs stay (an answer's paragraphs), everything else is escaped."""
    keep = "\n\t" if lines else ""
    return "".join(ch if ch in keep or (ch.isprintable() and unicodedata.category(ch) != "Cf")
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fail(message: str, code: int) -> None:
    """End a command with one line on stderr ("docent: ...") and the exit status."""
    import sys

    import click
    click.echo(f"docent: {printable(message)}", err=True)
    sys.exit(code)
