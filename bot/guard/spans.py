"""Spans of text the guard checks work with: overlap, keeping the best of overlapping
matches, replacing stretches of an answer and moving spans found before the edit."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
Edit = tuple[int, int, int]          # (start, end, length of what replaced it)


def overlaps(a, b) -> bool:
    """Two things with .start and .end share at least one character."""
    return a.start < b.end and b.start < a.end


def non_overlapping(matches: Sequence[T], priority: Callable[[T], object]) -> list[T]:
    """Of overlapping matches keep the one that sorts first by `priority`; in text order."""
    kept: list[T] = []
    for match in sorted(matches, key=priority):
        if not any(overlaps(match, k) for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def replace_spans(text: str, replacements: Sequence[tuple[int, int, str]]) -> tuple[str, list[Edit]]:
    """The text with each (start, end) stretch replaced (overlapping ones after the first
    are skipped), and the edits made, for shift_span."""
    out, edits, pos = [], [], 0
    for start, end, new in sorted(replacements):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(new)
        edits.append((start, end, len(new)))
        pos = end
    out.append(text[pos:])
    return "".join(out), edits


def shift_span(span: Sequence[int], edits: Sequence[Edit]) -> list[int]:
    """Where a span of the text before the edits lies in the edited text."""
    def move(position: int) -> int:
        delta = 0
        for start, end, length in edits:
            if end <= position:
                delta += length - (end - start)
            elif start < position:
                return start + delta + length      # inside a replaced stretch: its end
        return position + delta
    return [move(span[0]), move(span[1])]
