"""Verbatim overlap between an answer and restricted text: long runs of the same words.

A restricted chunk is never retrieved (leaks.exclude), but its words can still reach an
answer: a copy pasted into an unrestricted document, a model that saw it elsewhere. A
run of `N` words shared with a restricted chunk is reported (leaks.restricted = flag or
block). Eight words is longer than shared boilerplate ("for more information, see the")
and shorter than any sentence worth protecting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from bot.citations import strip_markers

N = 8


def shingles(text: str, n: int = N) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", strip_markers(text).lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass
class RestrictedIndex:
    """Every N-word run of the restricted chunks, with the file it came from."""
    runs: dict[tuple[str, ...], str]

    @classmethod
    def build(cls, chunks: Iterable[tuple[str, str]]) -> "RestrictedIndex":
        """`chunks`: (source path, text)."""
        runs: dict[tuple[str, ...], str] = {}
        for source, text in chunks:
            for run in shingles(text):
                runs.setdefault(run, source)
        return cls(runs)

    def shared(self, answer: str) -> tuple[int, str | None]:
        """How many of the answer's runs a restricted chunk holds, and one such file."""
        hits = [self.runs[run] for run in shingles(answer) if run in self.runs]
        return len(hits), (hits[0] if hits else None)
