"""The generator interface, its declared abilities and its errors."""

from __future__ import annotations

from typing import Iterator, Sequence

Messages = Sequence[dict]   # [{"role": "system"|"user"|"assistant", "content": str}, ...]

# What a generator can do beyond streaming text, declared by its class (`abilities`) so
# that callers ask for a name instead of probing for methods.
TOKEN_PROBABILITIES = "token_probabilities"   # choice_probabilities(messages, options) -> [p, ...]
GRAMMAR = "grammar"                           # stream(..., grammar=GBNF) is obeyed
SIDE_CONTEXT = "side_context"                 # side_context(window): same weights, a prompt cache of its own
CONCURRENT = "concurrent"                     # stream() from several threads runs them at once (a server's)
ABILITIES = (TOKEN_PROBABILITIES, GRAMMAR, SIDE_CONTEXT, CONCURRENT)


class GeneratorError(Exception):
    """The model cannot be loaded or reached; the message says why and what to do."""


class ModelUnreachable(GeneratorError):
    """A model server cannot be connected to, or refuses the request (an HTTP error)."""


class ModelStalled(GeneratorError):
    """A model server accepted the request, then sent nothing for the read timeout."""


class ModelReplyBroken(GeneratorError):
    """A model server's reply cannot be used: the stream ended early or broke, it
    reported an error inside the stream, or it sent something that is not an answer."""


class Generator:
    name: str
    context_window: int
    abilities: frozenset[str] = frozenset()

    def warm_up(self) -> None:
        raise NotImplementedError

    def count_tokens(self, messages: Messages) -> int:
        raise NotImplementedError

    def stream(self, messages: Messages, *, max_tokens: int, temperature: float | None = None,
               stop: Sequence[str] = (), grammar: str | None = None) -> Iterator[str]:
        raise NotImplementedError


def has_ability(generator, ability: str) -> bool:
    """Whether the generator declares the ability (an object without `abilities`, e.g. a
    third-party generator not built on Generator, declares none)."""
    return ability in getattr(generator, "abilities", ())
