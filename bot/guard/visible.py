"""Text as a model reads it: characters that show nothing or look like other letters are
the usual way to slip an instruction past a filter ("Іgnоrе" in Cyrillic letters, words
split by zero-width spaces, ASCII hidden in Unicode tag characters, which a person never
sees and a model may still read)."""

from __future__ import annotations

import re
import unicodedata

# Latin letters' look-alikes in other scripts (Cyrillic, Greek).
_LOOK_ALIKES = str.maketrans({
    "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԝ": "w", "ɡ": "g", "ӏ": "l", "ԁ": "d", "ѵ": "v",
    "ɑ": "a", "ո": "n", "ս": "u", "ᴠ": "v", "ʏ": "y",
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M", "О": "O", "Р": "P",
    "Ѕ": "S", "Т": "T", "Х": "X", "Ү": "Y", "Ԝ": "W",
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "τ": "t", "ι": "i", "κ": "k", "υ": "u", "ϲ": "c",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
})
_TAGS = range(0xE0000, 0xE0080)
TAG_CHARACTERS = re.compile("[\U000E0000-\U000E007F]")
# A run this long is a message, not an emoji flag's tag sequence (5-6 tags).
HIDDEN_MESSAGE = re.compile("[\U000E0020-\U000E007E]{12,}")


def visible(text: str) -> tuple[str, list[int]]:
    """The text as a model reads it, and where each of its characters came from (empty when
    the text is ASCII and returned as it is): ASCII hidden in tag characters shown,
    zero-width and other format characters dropped, look-alike letters and full-width
    forms made plain."""
    if text.isascii():
        return text, []
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        code = ord(ch)
        if code in _TAGS:
            if 0xE0020 <= code <= 0xE007E:
                out.append(chr(code - 0xE0000))
                origin.append(i)
            continue
        if unicodedata.category(ch) == "Cf":
            continue
        for c in ch if ch.isascii() else unicodedata.normalize("NFKC", ch.translate(_LOOK_ALIKES)):
            out.append(c)
            origin.append(i)
    return "".join(out), origin
