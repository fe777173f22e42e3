"""Names of people that a small NER model misses or invents, fixed with rules that hold
for documents in general (not for one data set):

- a PERSON span that is really a place or an organisation (a street type, a company
  suffix, a digit in it) is dropped;
- a name written after words that introduce a person ("my name is", "Dear", "Mr",
  "Owner:", "approved by") is a person;
- once a name is found, its other mentions in the same text are too ("... starring Key");
- in a list of single capitalised words ("Morrison, Rogers and Torres") where one is a
  person, the others are.
"""

from __future__ import annotations

import re

# After a cue, up to four words (or initials) are read; the name is the run of them that
# is capitalised (checked in code: Python's re has no class for upper-case letters).
_WORD = r"[^\W\d_]+(?:['’-][^\W\d_]+)*\.?"
_FOLLOWING = rf"{_WORD}(?:[ \t]+{_WORD}){{0,3}}"
_CUE_WORDS = (
    r"my name is|his name is|her name is|their name is|name is|named|called|calls me|maiden name is|"
    r"last name is|first name is|dear|hi|hello|hey|mr|mrs|ms|miss|mx|dr|prof|sir|madam|"
    r"(?:written|directed|authored|approved|reviewed|signed|created|owned|maintained|assigned to|reported|"
    r"requested|prepared|presented|sung|performed|produced|edited|led) by|"
    r"speak (?:to|with)|talk to|follow up with|attn")
_FIELDS = (r"name|full name|author|owner|contact|assignee|reviewer|approver|signed|from|to|cc|manager|"
           r"user|customer|employee|patient|client")
_CUES = re.compile(rf"(?i)(?:(?:\b(?:{_CUE_WORDS})\b[.:]?,?[ \t]+)+|(?:^|\n)[ \t]*(?:{_FIELDS})[ \t]*:[ \t]*)"
                   rf"(?=(?P<name>{_FOLLOWING}))")
_PARTICLES = {"van", "von", "de", "da", "di", "du", "del", "della", "der", "den", "le", "la", "bin", "ibn", "al", "y", "e"}
_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam"}


# Words that end the name of a place or an organisation, not of a person.
_NOT_A_PERSON = {
    "street", "st", "road", "rd", "avenue", "ave", "lane", "ln", "drive", "dr", "way", "court",
    "terrace", "square", "place", "plaza", "boulevard", "blvd", "highway", "parkway", "alley",
    "strasse", "straße", "gasse", "weg", "platz", "straat", "laan", "plein", "gade", "vej", "gatan",
    "katu", "tie", "rua", "rue", "via", "vicolo", "viale", "piazza", "calle", "avenida", "ulica",
    "apt", "apartment", "suite", "box", "floor", "building", "po",
    "inc", "incorporated", "ltd", "limited", "llc", "llp", "plc", "gmbh", "ag", "sa", "bv", "nv",
    "corp", "corporation", "company", "co", "group", "holdings", "partners", "associates",
    "foundation", "institute", "university", "college", "school", "bank", "hospital", "orchestra",
    "band", "club", "society", "agency", "department", "ministry", "council", "committee",
    "switzerland", "germany", "france", "italy", "spain", "sweden", "norway", "denmark", "finland",
    "england", "scotland", "ireland", "canada", "australia", "usa", "america",
}
# Words spaCy takes for names at the start of a sentence or in a heading.
_NOT_NAMES = {
    "the", "a", "an", "this", "that", "these", "those", "it", "he", "she", "they", "we", "you", "i",
    "what", "who", "why", "how", "when", "where", "which", "maybe", "yes", "no", "hi", "hello",
    "dear", "thanks", "team", "all", "everyone", "there", "folks", "guys", "user", "customer", "agent", "answer", "question", "name", "note", "warning",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
}


def _words(value: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", value.lower())


# A word inside a name may have a capital after a prefix (McDonald, MacLeod, DeVito,
# LeBlanc, O'Neil); other inner capitals are code (reinstallAndRemoveTimer, MustRegister).
_INNER_CAPITAL = re.compile(r"(?<!^Mc)(?<!^Mac)(?<!^De)(?<!^Le)(?<!^La)(?<!^Di)(?<!^Da)(?<!^Van)(?<!^Von)"
                            r"(?<=[^\W\d_])(?-i:[A-Z])")


def plausible(value: str) -> bool:
    """Could this span name a person? Not if it has digits or code characters, a dot or
    an inner capital inside a word, or ends like a street or a company; one word alone
    must be capitalised and not written all in capitals (HEAD, COPY)."""
    if re.search(r"\d|[_/\\=<>{}()\[\]@#$%^&*|`~;]|\w\.\w{2}|^-", value) or not re.search(r"[^\W\d_]", value):
        return False
    parts = value.split()
    if any(_INNER_CAPITAL.search(part) for part in parts if not part.isupper()):      # "II", "JR" pass
        return False
    if len(parts) == 1 and (not value[0].isupper() or (value.isupper() and len(value) > 1)):
        return False
    # Names are written all capitalised or all in lower case ("git rebase", "non-Git VCS"
    # are not names), particles aside (Ludwig van Beethoven).
    cased = [p[0].isupper() for p in parts if p.lower() not in _PARTICLES]
    if len(parts) > 1 and any(cased) and not all(cased):
        return False
    if not any(cased) and (re.search(r"\s-|--", value) or len(parts) > 3):      # "git log --merge"
        return False
    words = _words(value)
    return bool(words) and not any(w in _NOT_A_PERSON for w in words) and not all(w in _NOT_NAMES for w in words)


def used_as_a_term(value: str, text: str) -> bool:
    """A one-word "name" the same text also writes in lower case (Prometheus beside
    prometheus.yml, Max beside max) is a product or a word, not a person."""
    if len(value.split()) != 1:
        return False
    return re.search(rf"(?<![\w-]){re.escape(value.lower())}(?![\w-])", text) is not None


def _capitalised_run(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The leading words of text[start:end] that are capitalised names or initials."""
    stop = start
    for word in re.finditer(r"\S+", text[start:end]):
        value = word.group(0).rstrip(".,;:!?")
        if not value or not value[0].isupper() or value.lower() in _TITLES:
            break
        initial = len(value) == 1 and word.group(0) == value + "."
        stop = start + word.start() + len(value) + initial
        if value != word.group(0) and not initial:          # punctuation ends the name
            break
    if stop == start:
        return None
    while text[start:stop].split()[-1].endswith("."):      # a name does not end with an initial
        stop = start + text[start:stop].rstrip(".").rfind(" ")
        if stop <= start:
            return None
    return start, stop


def cued(text: str) -> list[tuple[int, int]]:
    """Names written after words that introduce a person."""
    out = []
    for match in _CUES.finditer(text):
        span = _capitalised_run(text, *match.span("name"))
        if span and plausible(text[span[0]:span[1]]):
            out.append(span)
    return out


def other_mentions(text: str, names: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Further mentions of the words of names already found (a surname on its own later)."""
    words = {w for s, e in names for w in re.findall(r"[^\W\d_]{3,}", text[s:e])
             if w[0].isupper() and w.lower() not in _NOT_NAMES and w.lower() not in _NOT_A_PERSON}
    if not words:
        return []
    pattern = re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                         + r")(?![\w-])")
    return [(m.start(), m.end()) for m in pattern.finditer(text)
            if not any(s <= m.start() < e for s, e in names)
            and plausible(m.group()) and not used_as_a_term(m.group(), text)]


_LIST = re.compile(r"[^\W\d_]+(?:[ \t]*,[ \t]*[^\W\d_]+)*,?[ \t]+(?:and|&|or)[ \t]+[^\W\d_]+")


def listed_with(text: str, names: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Single capitalised words listed with a one-word name found: the rest of the list."""
    out = []
    for match in _LIST.finditer(text):
        items = [(m.start() + match.start(), m.end() + match.start())
                 for m in re.finditer(r"[^\W\d_][^\W\d_'’-]*", match.group(0))
                 if m.group(0) not in ("and", "or")]
        if any(s <= a and b <= e for a, b in items for s, e in names) \
                and all(text[a].isupper() and plausible(text[a:b]) for a, b in items):
            out += [(a, b) for a, b in items if not any(s <= a < e for s, e in names)]
    return out
