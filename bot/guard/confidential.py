"""Text marked confidential: classification headers, CONFIDENTIAL / INTERNAL ONLY stamps,
"do not distribute", front-matter such as `sensitivity: restricted`.

Upper-case stamps count anywhere; the lower-case word only in a marking ("This document
is confidential", "Classification: Confidential"), so prose about "confidential
computing" or "confidentiality" is not taken for a marking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEVELS = "confidential|restricted|internal(?: use)?(?: only)?|secret|top secret|private|sensitive|proprietary"
_MARKERS = [(t, re.compile(p, f)) for t, p, f in [
    ("CONFIDENTIAL_STAMP", r"\b(?:STRICTLY |HIGHLY |COMPANY )?CONFIDENTIAL\b|\bTOP SECRET\b|\bINTERNAL(?: USE)? ONLY\b|"
                           r"\bPROPRIETARY(?: AND CONFIDENTIAL)?\b|\bNOT FOR (?:PUBLIC )?(?:DISTRIBUTION|RELEASE)\b|"
                           r"\bFOR INTERNAL USE\b|\bRESTRICTED\b(?= *(?:$|[-:–—]))", re.M),
    ("CLASSIFICATION_HEADER", rf"^[ \t#>*_]*(?:classification|security classification|sensitivity|data classification|"
                              rf"confidentiality|distribution)\s*[:=]\s*[\"']?(?:{LEVELS})\b", re.I | re.M),
    ("CONFIDENTIAL_NOTICE", r"\b(?:this|the) (?:document|page|file|information|material|presentation|report|email|"
                            r"message)s? (?:is|are|contains?) (?:strictly |highly )?(?:confidential|proprietary|"
                            r"for internal use only|restricted)\b|\bdo not (?:distribute|share|forward|copy|disclose)\b|"
                            r"\b(?:internal|confidential) (?:use )?only\b", re.I),
    ("CONFIDENTIAL_FRONT_MATTER", rf"^(?:confidential|internal)\s*:\s*(?:true|yes)\b", re.I | re.M),
]]


@dataclass(frozen=True)
class ConfidentialMatch:
    start: int
    end: int
    type: str
    score: float


def find_markings(text: str) -> list[ConfidentialMatch]:
    out: list[ConfidentialMatch] = []
    for kind, pattern in _MARKERS:
        for match in pattern.finditer(text):
            if not any(match.start() < m.end and m.start < match.end() for m in out):
                out.append(ConfidentialMatch(match.start(), match.end(), kind, 0.9))
    return sorted(out, key=lambda m: m.start)
