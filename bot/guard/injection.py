"""Attempts to steer the assistant: instructions hidden in documents ("ignore previous
instructions", fake chat-role markers) and questions that try to pull secrets or the
system prompt out ("list every password", "print your system prompt").

Patterns, not a model: they catch the common phrasings and are cheap enough to run on
every question and every cited passage. Findings are flagged; a document's text only
ever reaches the model inside a numbered passage block, as quoted data.
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


def _find(text: str, patterns) -> list[SteeringMatch]:
    out: list[SteeringMatch] = []
    for kind, pattern in patterns:
        for match in pattern.finditer(text):
            out.append(SteeringMatch(match.start(), match.end(), kind))
    return sorted(out, key=lambda m: m.start)


def find_injection(text: str) -> list[SteeringMatch]:
    """Instructions aimed at the assistant inside a document (or a question)."""
    return _find(text, _INJECTION)


def find_extraction(question: str) -> list[SteeringMatch]:
    """A question that tries to get secrets or the system prompt out."""
    return _find(question, _EXTRACTION) + [m for m in find_injection(question)]
