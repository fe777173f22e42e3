"""Word-overlap measures: the cheap signals (and the trivial baseline the guard's
benchmark reports beside every figure)."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.citations import strip_markers

from docent.words import STOP_WORDS as CONTENT_STOP


def content_tokens(text: str, stop: frozenset = CONTENT_STOP, min_len: int = 2) -> list[str]:
    """Lower-case words worth comparing, in order, with their repeats."""
    words = (w.rstrip(".-/") for w in re.findall(r"[^\W_][\w.\-/]*", text.lower()))
    return [w for w in words if w not in stop and len(w) >= min_len]


@lru_cache(maxsize=2048)
def content_words(text: str, stop: frozenset = CONTENT_STOP, min_len: int = 2) -> frozenset[str]:
    """Lower-case words worth comparing (cached: passages are compared sentence by sentence)."""
    return frozenset(content_tokens(text, stop, min_len))


def stem(word: str) -> str:
    """A light suffix stripper ("ended", "ending", "ends" -> "end"); enough to match a
    sentence's words with a passage's inflections without a stemming library."""
    for suffix in ("ingly", "edly", "ing", "ied", "ies", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[:-len(suffix)]
            return base + "y" if suffix in ("ied", "ies") else base.rstrip("e")
    return word.rstrip("e") if len(word) > 3 else word


def share_found(words: frozenset[str], present: frozenset[str]) -> float:
    """Share of `words` found in `present`, a word also counting when its stem matches
    a present word's or its first five letters start one ("rotates" ~ "rotation")."""
    if not words:
        return 1.0
    prefixes = {w[:5] for w in present}
    stems = {stem(w) for w in present}
    return sum(1 for w in words if w in present or w[:5] in prefixes or stem(w) in stems) / len(words)


@lru_cache(maxsize=2048)
def passage_words(passage: str) -> frozenset[str]:
    """A passage's content words, and the parts of those joined by a dot or a slash:
    "Goth.Antonia" (sentences glued together by a text extractor) holds "goth",
    "config/app.yml" holds "config"."""
    words = content_words(passage)
    parts = {part for w in words if "." in w or "/" in w for part in re.split(r"[./]", w)}
    return words | {p for p in parts if len(p) >= 2 and p not in CONTENT_STOP}


def support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words (or their 5-letter stems) found in the passage."""
    return share_found(content_words(strip_markers(sentence)), passage_words(passage))
