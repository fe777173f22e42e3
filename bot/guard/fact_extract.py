"""Extracting the hard facts of a claim (numbers, versions, dates, names, identifiers,
paths, quoted strings) and finding each in a passage, however it is written there
("1,000" and "1000", "APIs" for "API", "four" for "4")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.citations import strip_markers

NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
                "once": "1", "twice": "2", "single": "1", "double": "2", "half": "0.5", "first": "1",
                "second": "2", "third": "3", "hundred": "100", "thousand": "1000", "million": "1000000"}
MONTHS = frozenset("january february march april may june july august september october november december".split())
# Capitalised words that name no particular thing (a sentence may start with them anywhere
# in a list, or capitalise them for emphasis).
COMMON_CAPS = frozenset("""the a an this that these those it its if when then to in on for by with and or but not
no yes you your we our they their there here which what where who how why use set run see note also each every
all any some both either one two after before first next finally default example for yes true false none null
step steps i""".split())

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,:]\d+)*(?:%|[a-z]{0,3}\b)?", re.I)
_GROUPED = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,]\d)")
_TOKEN = re.compile(r"[\w$@~%+=:/\\.\-]+")
_QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”|`([^`\n]{1,120})`|(?<!\w)'([^'\n]{2,80})'(?!\w)")


@dataclass(frozen=True)
class Fact:
    kind: str       # number / quoted / identifier / name
    text: str       # as written in the claim


def facts(claim: str) -> list[Fact]:
    """The checkable facts of a claim, most specific first, without duplicates."""
    text = strip_markers(claim)
    out: list[Fact] = []
    for match in _QUOTED.finditer(text):
        quoted = next(g for g in match.groups() if g is not None).strip()
        if quoted:
            out.append(Fact("quoted", quoted))
    # Numbers with thousands separators first ("39,134"), then the remaining tokens.
    for match in _GROUPED.finditer(text):
        out.append(Fact("number", match.group(0)))
    text = _GROUPED.sub(" ", text)
    words = [(m.group(0), m.start()) for m in _TOKEN.finditer(text)]
    for index, (raw, start) in enumerate(words):
        token = raw.strip(".,:;!?-/\\'\"")
        if not token or any(token in f.text for f in out if f.kind == "quoted"):
            continue
        if _is_identifier(token):
            out.append(Fact("identifier", token))
        elif re.fullmatch(r"[-+]?\d+(?:[.,:]\d+)*%?", token):
            out.append(Fact("number", token))
        elif token[0].isupper() and token.lower() not in COMMON_CAPS and not _sentence_start(text, start) \
                and token.lower() not in MONTHS | set(NUMBER_WORDS):
            out.append(Fact("name", token))
    seen, unique = set(), []
    for fact in out:
        if (fact.kind, fact.text.lower()) not in seen:
            seen.add((fact.kind, fact.text.lower()))
            unique.append(fact)
    return unique


def _is_identifier(token: str) -> bool:
    """Paths, file names, flags, env vars, snake_case, camelCase, versions like v1.2."""
    if len(token) < 2:
        return False
    if re.search(r"[a-z][A-Z]", token) or re.fullmatch(r"--?[A-Za-z][\w-]*", token):
        return True
    if re.search(r"\w[_/\\]\w|\w\.\w|\w:+\w", token) and not re.fullmatch(r"[\d.,:]+%?", token):
        return True                       # paths, files, versions, "V:0", "std::vector" (not times: 10:30)
    if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", token) and not token.isdigit():
        return True
    if re.search(r"\d", token) and re.search(r"\w-\w", token):
        return True                       # dates and hyphenated names with digits: 2010-07-22, utf-8, x86-64
    return bool(re.fullmatch(r"(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9]+", token)) and not re.fullmatch(r"\d+(st|nd|rd|th|s|px|ms|kb|mb|gb|tb|k|m|x)", token, re.I)


def _sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'(*`[")
    return not before or before[-1] in ".!?:\n•-" or bool(re.search(r"(^|\n)\s*(\d+[.)]|[-*+])$", before))


@lru_cache(maxsize=1024)
def _normalised(passage: str) -> str:
    return " ".join(passage.lower().replace("’", "'").replace("“", '"').replace("”", '"').split())


@lru_cache(maxsize=1024)
def numbers_in(passage: str) -> frozenset[str]:
    """Every number a passage gives, in digits or words, as number_key writes it."""
    found = set()
    for match in _NUMBER.finditer(passage):
        value = re.match(r"[-+]?\d+(?:[.,:]\d+)*", match.group(0)).group(0).lstrip("+")
        found.add(number_key(value))
    for word in re.findall(r"[a-z]+", passage.lower()):
        if word in NUMBER_WORDS:
            found.add(NUMBER_WORDS[word])
    return frozenset(found)


def number_key(value: str) -> str:
    """"1,000" and "1000" are one number; "3.0" and "3" too."""
    value = value.rstrip("%")
    if re.fullmatch(r"\d{1,3}(,\d{3})+", value):
        value = value.replace(",", "")
    if re.fullmatch(r"\d+\.0+", value):
        value = value.split(".")[0]
    return value


def found_in(fact: Fact, passage: str) -> bool:
    """The passage holds the fact, however it writes it."""
    norm = _normalised(passage)
    if fact.kind == "number":
        return number_key(fact.text) in numbers_in(passage)
    needle = _normalised(fact.text)
    if fact.kind == "quoted":
        return needle in norm or _normalised(needle.strip(" .")) in norm
    if re.search(rf"(?<![\w]){re.escape(needle)}", norm):
        return True
    # A plural or possessive of something the passage names ("APIs", "Postgres's").
    stem = re.sub(r"('s|s|es)$", "", needle)
    return len(stem) >= 3 and stem != needle and re.search(rf"(?<![\w]){re.escape(stem)}", norm) is not None
