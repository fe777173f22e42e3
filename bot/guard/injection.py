"""Attempts to steer the assistant: instructions hidden in documents ("ignore previous
instructions", fake chat-role markers) and questions that try to pull secrets or the
system prompt out ("list every password", "print your system prompt").

Patterns, not a model: they catch the common phrasings and are cheap enough to run on
every question and every cited passage. Findings are flagged; a document's text only
ever reaches the model inside a numbered passage block, as quoted data.

Documentation that talks about prompts quotes such phrases ('questions such as "ignore
previous instructions"'): a phrase inside quotation marks or backticks, in a sentence
that says more than the quote, is mentioned, not addressed to anyone, and is not an
instruction. A quote standing alone, or unquoted text, still counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SECRET_WORDS = r"(?:passwords?|passwd|credentials?|secrets?|api[ _-]?keys?|access[ _-]?keys?|private[ _-]?keys?|tokens?|" \
                r"ssh keys?|connection strings?|webhook(?: url)?s?|pins?)"
_INSTRUCTIONS = r"(?:instructions?|prompts?|rules|directions|guidelines|messages?|context)"

_INJECTION = [(t, re.compile(p, re.I | re.M)) for t, p in [
    ("IGNORE_INSTRUCTIONS", rf"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|these\s+)*"
                            rf"(?:previous|prior|above|earlier|preceding|system|original)?\s*{_INSTRUCTIONS}\b"),
    ("ROLE_OVERRIDE", r"\b(?:you are now|from now on,? you(?: are| will)|act as|pretend to be|you must now)\b"
                      r"(?=[^.\n]{0,80}\b(?:assistant|ai|model|bot|dan|unrestricted|jailbr))"),
    ("JAILBREAK", r"\b(?:jailbreak|developer mode|do anything now|DAN mode)\b"),
    ("CHAT_MARKUP", r"<\|(?:im_start|im_end|system|assistant|user|endoftext)\|>|\[/?INST\]|^\s*(?:system|assistant)\s*:\s",),
    ("ADDRESSED_TO_ASSISTANT", r"\b(?:note to|attention|instructions? for|message to)\s+(?:the\s+)?(?:ai|assistant|chatbot|"
                               r"language model|llm)\b"),
]]
_EXTRACTION = [(t, re.compile(p, re.I)) for t, p in [
    ("SYSTEM_PROMPT", rf"\b(?:show|print|reveal|repeat|output|tell me|what (?:is|are)|give me)\s+(?:me\s+)?"
                      rf"(?:your\s+(?:system\s+|hidden\s+|initial\s+|original\s+)?|the\s+(?:system|hidden|initial|original)\s+)"
                      rf"{_INSTRUCTIONS}\b"),
    ("LIST_SECRETS", rf"\b(?:list|show|give|print|dump|tell me|what are|enumerate|extract|find)\b[^.?\n]{{0,40}}\b"
                     rf"(?:all|every|each|any)\b[^.?\n]{{0,30}}\b{_SECRET_WORDS}"),
    ("ASK_FOR_SECRET", rf"\b(?:what(?:'s| is| are)|give me|tell me|send me|share)\s+(?:the|our|my|your|their)\b"
                       rf"[^.?\n]{{0,40}}\b{_SECRET_WORDS}\b"),
]]


@dataclass(frozen=True)
class SteeringMatch:
    start: int
    end: int
    type: str


# Quoted stretches (a quote may run over a hard wrap, not over a blank line).
_QUOTE = re.compile(r'"(?:[^"\n]|\n(?!\s*\n)){1,300}?"|“[^”]{1,300}?”|`[^`\n]{1,300}`|(?<!\w)\'(?:[^\'\n]|\n(?!\s*\n)){1,300}?\'(?!\w)')
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n\s*\n")


def _find(text: str, patterns) -> list[SteeringMatch]:
    out: list[SteeringMatch] = []
    for kind, pattern in patterns:
        for match in pattern.finditer(text):
            out.append(SteeringMatch(match.start(), match.end(), kind))
    return sorted(out, key=lambda m: m.start)


def _mentioned(text: str, match: SteeringMatch, quotes: list[tuple[int, int]]) -> bool:
    """The match lies inside a quotation, and its sentence says more than the quotation:
    the phrase is talked about ("questions such as "ignore previous instructions" are
    flagged"), not said to the assistant."""
    around = next(((a, b) for a, b in quotes if a <= match.start and match.end <= b), None)
    if around is None:
        return False
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    start = max((e for e in ends if e <= around[0]), default=0)
    end = min((e for e in ends if e >= around[1]), default=len(text))
    outside = text[start:around[0]] + " " + text[around[1]:end]
    for a, b in quotes:                 # other quotations of the sentence do not count as its words
        if start <= a and b <= end and (a, b) != around:
            outside = outside.replace(text[a:b], " ")
    return len(re.findall(r"[A-Za-z]{2,}", outside)) >= 3


def find_injection(text: str) -> list[SteeringMatch]:
    """Instructions aimed at the assistant inside a document (or a question); phrases a
    sentence only quotes are left out."""
    found = _find(text, _INJECTION)
    if not found:
        return found
    quotes = [(m.start(), m.end()) for m in _QUOTE.finditer(text)]
    return [m for m in found if not _mentioned(text, m, quotes)]


def find_extraction(question: str) -> list[SteeringMatch]:
    """A question that tries to get secrets or the system prompt out."""
    return _find(question, _EXTRACTION) + [m for m in find_injection(question)]
