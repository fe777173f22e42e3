"""Step 5: the model's answer streamed to the screen as it is written, with dangling
citation markers held back and secrets masked on the way; or held whole until the
answer is checked, when the policy might withhold it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator as Gen

from bot.citations import CitationFilter
from bot.guard.leaks import StreamRedactor
from bot.steps.result import Event
from docent.timing import elapsed_ms


@dataclass(frozen=True)
class Generated:
    raw: str                     # what the model wrote, whole
    shown: str                   # what reached the screen while streaming
    first_ms: float              # time to the first piece, from `started`
    tokens: int                  # pieces streamed


def generate(generator, messages: list[dict], *, max_tokens: int, grammar: str | None, passages: int,
             mask_secrets: bool, hold: bool, started: float) -> Gen[Event, None, Generated]:
    """Yields "token" events (none when `hold`); returns what was generated."""
    shown = CitationFilter(range(1, passages + 1))
    masked = StreamRedactor() if mask_secrets else None
    pieces: list[str] = []
    emitted: list[str] = []
    first = None
    for piece in generator.stream(messages, max_tokens=max_tokens, grammar=grammar):
        if first is None:
            first = elapsed_ms(started, 1)
        pieces.append(piece)
        visible = shown.feed(piece)
        visible = masked.feed(visible) if masked is not None else visible
        if visible and not hold:
            emitted.append(visible)
            yield Event("token", visible)
    tail = shown.finish()
    tail = masked.feed(tail) + masked.finish() if masked is not None else tail
    if tail and not hold:
        emitted.append(tail)
        yield Event("token", tail)
    return Generated("".join(pieces).strip(), "".join(emitted).strip(),
                     first if first is not None else elapsed_ms(started, 1), len(pieces))
