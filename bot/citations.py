"""Citation markers [n] in an answer: parsed, checked against the passages, cleaned.

A marker may name several passages ([1, 3] or [1][3]). A number that points at no
passage is removed from the text and reported as a finding (kind `dangling_citation`),
both in the final answer and while it streams (CitationFilter holds back a "[" until the
marker is complete, so a dangling marker never reaches the screen).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = re.compile(r"\s?\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")


@dataclass(frozen=True)
class Marker:
    start: int
    end: int
    numbers: tuple[int, ...]


def find_markers(text: str) -> list[Marker]:
    return [Marker(m.start(), m.end(), tuple(int(n) for n in re.findall(r"\d+", m.group(1))))
            for m in MARKER.finditer(text)]


def clean(text: str, valid: range | set[int]) -> tuple[str, list[dict]]:
    """The text with every number outside `valid` dropped from its marker (the marker
    goes when nothing is left), and one finding per dropped number."""
    findings, out, pos = [], [], 0
    for marker in find_markers(text):
        out.append(text[pos:marker.start])
        good = [n for n in marker.numbers if n in valid]
        for n in marker.numbers:
            if n not in valid:
                findings.append({
                    "kind": "dangling_citation", "severity": "low", "span": [marker.start, marker.end],
                    "message": f"the answer cited [{n}], but there is no passage {n}; the marker was removed",
                    "evidence": None, "action": "redacted", "score": 1.0,
                    "confidence": "high"})
        if good:
            lead = " " if text[marker.start].isspace() else ""
            out.append(lead + "".join(f"[{n}]" for n in dict.fromkeys(good)))
        pos = marker.end
    out.append(text[pos:])
    return "".join(out), findings


def strip_markers(text: str) -> str:
    """The text without any citation marker (to compare its words with a passage's)."""
    return MARKER.sub("", text)


def cited_numbers(text: str) -> list[int]:
    """Passage numbers in order of first citation."""
    seen: dict[int, None] = {}
    for marker in find_markers(text):
        for n in marker.numbers:
            seen.setdefault(n, None)
    return list(seen)


class CitationFilter:
    """Streaming twin of clean(): feed pieces of text, get back what is safe to show."""

    def __init__(self, valid: range | set[int]):
        self.valid = valid
        self._held = ""

    def feed(self, piece: str) -> str:
        self._held += piece
        out = []
        while self._held:
            bracket = self._held.find("[")
            if bracket < 0:
                out.append(self._held)
                self._held = ""
                break
            out.append(self._held[:bracket])
            self._held = self._held[bracket:]
            close = self._held.find("]")
            if close < 0:
                # Still possibly a marker: keep holding while it looks like one.
                if re.fullmatch(r"\[[\d\s,;]*", self._held) and len(self._held) < 24:
                    break
                out.append(self._held[0])
                self._held = self._held[1:]
                continue
            marker, self._held = self._held[:close + 1], self._held[close + 1:]
            cleaned, _ = clean(marker, self.valid)
            out.append(cleaned)
        return "".join(out)

    def finish(self) -> str:
        rest, self._held = self._held, ""
        return rest
