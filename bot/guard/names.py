"""Names of people that a small NER model misses or invents, fixed with rules that hold
for documents in general (not for one data set):

- a PERSON span that is really a place or an organisation (a street type, a company
  suffix, a digit in it) is dropped;
- a name written after words that introduce a person ("my name is", "Dear", "Mr",
  "Owner:", "approved by") is a person;
- once a name is found, its other mentions in the same text are too ("... starring Key");
- in a list of single capitalised words ("Morrison, Rogers and Torres") where one is a
  person, the others are;
- a known first name that the tagger reads as a proper noun is a person, with the
  capitalised words after it ("Scott is ...", "Maja S Hermansen"), and a list of known
  first names is one even in lower case ("silvana, adam, chad and caleb");
- one word that is no known name but an English word, or two run together ("Wisdom",
  "Flightaware"), is a product or a company.
The name and word lists are in bot/guard/name_lists.py.
"""

from __future__ import annotations

import re

from bot.guard import name_lists

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
            and plausible(m.group()) and not used_as_a_term(m.group(), text) and not ordinary_word(m.group())]


_LIST = re.compile(r"[^\W\d_]+(?:[ \t]*,[ \t]*[^\W\d_]+)*,?[ \t]+(?:and|&|or)[ \t]+[^\W\d_]+")


def listed_with(text: str, names: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Single capitalised words listed with a one-word name found: the rest of the list."""
    out = []
    for match in _LIST.finditer(text):
        items = [(m.start() + match.start(), m.end() + match.start())
                 for m in re.finditer(r"[^\W\d_][^\W\d_'’-]*", match.group(0))
                 if m.group(0) not in ("and", "or")]
        if any(s <= a and b <= e for a, b in items for s, e in names) \
                and all(text[a].isupper() and plausible(text[a:b]) and not ordinary_word(text[a:b]) for a, b in items):
            out += [(a, b) for a, b in items if not any(s <= a < e for s, e in names)]
    return out


# spaCy entities a first name may be part of without being a person's: "San Francisco",
# "Reed Elsevier and T Rowe Price", "French".
_PLACES = {"GPE", "LOC", "FAC"}
_NOT_PEOPLE_ENTITIES = _PLACES | {"ORG", "PRODUCT", "WORK_OF_ART", "EVENT", "LAW"}
_HOUSE_NUMBER_BEFORE = re.compile(r"\d[\w-]*[ \t]+(?:[^\W\d_]+\.?[ \t]+){0,2}$")


def known_first_names(text: str, doc) -> list[tuple[int, int]]:
    """A known first name that the tagger reads as a proper noun and that is not an
    ordinary word, with the capitalised words after it on its line. Not inside a longer
    place or organisation, a nationality or a language, and not beside a house number or
    before a place (then it names a street or a town: "6138 Via Roma", "Salvador, Brazil")."""
    first, common = name_lists.first_names(), name_lists.ordinary_words()
    entities = doc.ents           # spaCy's own labels (presidio renames them)
    out: list[tuple[int, int]] = []
    for token in doc:
        word = token.text
        if len(word) < 2 or not word[0].isupper() or word.isupper() or token.is_stop or token.pos_ != "PROPN" \
                or word.lower() not in first or word.lower() in common:
            continue
        line_end = text.find("\n", token.idx)
        span = _capitalised_run(text, token.idx, min(token.idx + 80, len(text) if line_end < 0 else line_end))
        if not span:
            continue
        start, end = span
        if text[end - 2:end] in ("'s", "’s"):
            end -= 2
        if any(out_start < end and start < out_end for out_start, out_end in out) \
                or any(e.start_char < start < e.end_char and e.label_ in _NOT_PEOPLE_ENTITIES
                       or e.start_char < end and start < e.end_char and e.label_ in ("NORP", "LANGUAGE")
                       for e in entities) \
                or any(end <= e.start_char <= end + 3 and e.label_ in _PLACES
                       and re.fullmatch(r"[ \t,]*", text[end:e.start_char]) for e in entities) \
                or _HOUSE_NUMBER_BEFORE.search(text[max(0, start - 30):start]) or re.match(r"[ \t]+\d", text[end:end + 3]):
            continue
        value = text[start:end]
        if plausible(value) and not used_as_a_term(value, text):
            out.append((start, end))
    return out


_INITIALLED = re.compile(r"(?<![\w.-])([^\W\d_]{2,})[ \t]+([^\W\d_])\.?[ \t]+([^\W\d_]{2,}(?:[-'’][^\W\d_]+)?)(?![\w-])")


def initialled_names(text: str) -> list[tuple[int, int]]:
    """A name with a middle initial: "Maja S Hermansen", "Faina D. Yefremova": two
    capitalised words that are not ordinary words around a capital letter."""
    common = name_lists.ordinary_words()
    out = []
    for match in _INITIALLED.finditer(text):
        first, initial, last = match.group(1), match.group(2), match.group(3)
        if initial.isupper() and all(w[0].isupper() and not w.isupper() and w.lower() not in common
                                     and w.lower() not in _NOT_NAMES for w in (first, last)) \
                and plausible(match.group(0)):
            out.append(match.span())
    return out


def listed_first_names(text: str) -> list[tuple[int, int]]:
    """A list of three or more words, most of them known names and half of them only
    first names (not surnames, not ordinary words), in any case: "they had 6: silvana,
    adam, christopher, chad and caleb"."""
    first, last, common = name_lists.first_names(), name_lists.surnames(), name_lists.ordinary_words()
    out = []
    for match in _LIST.finditer(text):
        items = [(m.start() + match.start(), m.end() + match.start())
                 for m in re.finditer(r"[^\W\d_][^\W\d_'’-]*", match.group(0))
                 if m.group(0).lower() not in ("and", "or")]
        words = [text[a:b].lower() for a, b in items]
        # Mostly known names, half of them only first names: "owens, duran and oneal"
        # (surnames) is a firm.
        known = sum(w in first or w in last for w in words)
        clear = sum(w in first and w not in last and w not in common for w in words)
        if len(items) >= 3 and known >= 0.75 * len(items) and clear >= max(2, len(items) / 2):
            out += items
    return out


def ordinary_word(value: str) -> bool:
    """One word that is no known name but an English word, or two run together:
    "Wisdom", "Discipline", "Flightaware", "Costquest" name a thing or a company."""
    word = value.strip().lower()
    if not word.isalpha() or word in name_lists.first_names() or word in name_lists.surnames():
        return False
    common = name_lists.ordinary_words()

    def known(w: str) -> bool:          # the word list has few plurals or inflections
        return w in common or any(w.endswith(end) and w[:-len(end)] in common and len(w) - len(end) >= 3
                                  for end in ("s", "es", "ed", "d", "ing"))
    return known(word) or any(word[:i] in common and known(word[i:]) for i in range(3, len(word) - 2))
