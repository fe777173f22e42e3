"""Quantities written one way: "four megabytes", "4MB", "4 MB" and "4-megabyte" all become
"4 mb", so that a claim that rewrites a passage's number or unit is compared with what
the passage says, not with how it spells it. Applied to the claim and the passage alike,
for comparison only (spans and the text shown are never rewritten).
"""

from __future__ import annotations

import re
from functools import lru_cache

# "one" is left alone: it is a pronoun more often than a number ("one of the options").
NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
                "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
                "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
UNITS = {
    "b": ("bytes", "byte"),
    "kb": ("kilobytes", "kilobyte", "kibibytes", "kibibyte", "kib", "kb", "k"),
    "mb": ("megabytes", "megabyte", "mebibytes", "mebibyte", "mib", "mb", "m"),
    "gb": ("gigabytes", "gigabyte", "gibibytes", "gibibyte", "gib", "gb", "g"),
    "tb": ("terabytes", "terabyte", "tebibytes", "tebibyte", "tib", "tb", "t"),
    "ms": ("milliseconds", "millisecond", "msecs", "msec", "ms"),
    "us": ("microseconds", "microsecond", "µs", "us"),
    "s": ("seconds", "second", "secs", "sec", "s"),
    "min": ("minutes", "minute", "mins", "min"),
    "h": ("hours", "hour", "hrs", "hr", "h"),
    "day": ("days", "day", "d"),
    "week": ("weeks", "week"),
    "%": ("percent", "per cent", "%"),
}
# A unit word after a number; the one-letter abbreviations only straight after digits ("8k", "2G").
_SPELLING = {variant: unit for unit, variants in UNITS.items() for variant in variants}
_LONG = sorted((v for v in _SPELLING if len(v) > 1 or v == "%"), key=len, reverse=True)
_SHORT = sorted(v for v in _SPELLING if len(v) == 1 and v != "%")
_WORD_NUMBER = re.compile(r"\b(" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")(?:[- ](" +
                          "|".join(w for w in ("one", *NUMBER_WORDS) if NUMBER_WORDS.get(w, 1) < 10) + r"))?"
                          r"(?:[- ](" + "|".join(SCALES) + r"))?\b", re.I)
_QUANTITY = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?:(?:\s|-)?(" + "|".join(map(re.escape, _LONG)) +
                       r")(?![\w%])|(" + "|".join(_SHORT) + r")(?!\w))", re.I)


# "one thirty-second", "two thirds": a fraction, not the number 30 or 2.
_ORDINAL_AFTER = re.compile(r"[- ]?(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\w+th)s?\b", re.I)
_COUNT_BEFORE = re.compile(r"\b(?:one|" + "|".join(NUMBER_WORDS) + r")\s+$", re.I)


def _spelled(match: re.Match) -> str:
    text = match.string
    if _ORDINAL_AFTER.match(text, match.end()) and _COUNT_BEFORE.search(text[max(0, match.start() - 12):match.start()]):
        return match.group(0)
    value = NUMBER_WORDS[match.group(1).lower()]
    if match.group(2):
        value += 1 if match.group(2).lower() == "one" else NUMBER_WORDS[match.group(2).lower()]
    if match.group(3):
        value *= SCALES[match.group(3).lower()]
    return str(value)


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """`text` with spelled-out numbers as digits and units after a number in one short
    form, separated from the number: "Four megabytes" -> "4 mb", "2-gigabyte" -> "2 gb"."""
    text = _WORD_NUMBER.sub(_spelled, text)
    return _QUANTITY.sub(lambda m: f"{m.group(1)} {_SPELLING[(m.group(2) or m.group(3)).lower()]}", text)
