"""Exact checks: the hard facts of a claim (numbers, versions, dates, names, identifiers,
paths, quoted strings) must appear in the passages it cites, and the passage sentence
the claim restates must not say the opposite (a different number, a negation, an
antonym such as enable/disable).

Cheap and precise: a fact that is in no cited passage is almost always a hallucination
or a wrong citation. What these checks cannot see (a paraphrase that changes the
meaning without changing a fact) is left to the other signals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator, Sequence

from bot.citations import strip_markers
from bot.guard.lexical import CONTENT_STOP, content_words, share_found, stem
from bot.guard.sentences import ABBREVIATIONS, unwrap

NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
                "once": "1", "twice": "2", "single": "1", "double": "2", "half": "0.5", "first": "1",
                "second": "2", "third": "3", "hundred": "100", "thousand": "1000", "million": "1000000"}
NEGATORS = frozenset("not no never none nothing neither nor cannot without unable n't isn't aren't wasn't weren't "
                     "don't doesn't didn't won't can't couldn't shouldn't mustn't".split())
ANTONYMS = [("enable", "disable"), ("enabled", "disabled"), ("allow", "deny"), ("allowed", "denied"),
            ("true", "false"), ("before", "after"), ("increase", "decrease"), ("increases", "decreases"),
            ("minimum", "maximum"), ("min", "max"), ("required", "optional"), ("mandatory", "optional"),
            ("start", "stop"), ("starts", "stops"), ("open", "close"), ("read", "write"), ("input", "output"),
            ("include", "exclude"), ("included", "excluded"), ("inside", "outside"), ("upper", "lower"),
            ("first", "last"), ("older", "newer"), ("earlier", "later"), ("more", "less"), ("larger", "smaller"),
            ("higher", "lower"), ("faster", "slower"), ("add", "remove"), ("added", "removed"),
            ("public", "private"), ("synchronous", "asynchronous"), ("sync", "async"), ("always", "never"),
            ("supported", "unsupported"), ("valid", "invalid"), ("success", "failure"), ("accept", "reject"),
            ("client", "server"), ("encrypt", "decrypt"), ("ascending", "descending"), ("import", "export")]
_OPPOSITES: dict[str, set[str]] = {}          # a word may have two ("optional": required, mandatory)
for _a, _b in ANTONYMS:
    _OPPOSITES.setdefault(_a, set()).add(_b)
    _OPPOSITES.setdefault(_b, set()).add(_a)
# One opposite per word, for the perturbation maker's replacements.
OPPOSITE = {word: sorted(opposites)[0] for word, opposites in _OPPOSITES.items()}
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


@dataclass
class ExactResult:
    facts: list[Fact] = field(default_factory=list)          # every checkable fact of the claim
    missing: list[Fact] = field(default_factory=list)        # facts found in none of the passages
    conflicts: list[str] = field(default_factory=list)       # why the passage says otherwise
    # Some conflict was read exactly (Conflict.exact), not one a rewording can produce.
    certain: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and not self.conflicts


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
def _numbers(passage: str) -> frozenset[str]:
    found = set()
    for match in _NUMBER.finditer(passage):
        value = re.match(r"[-+]?\d+(?:[.,:]\d+)*", match.group(0)).group(0).lstrip("+")
        found.add(_number_key(value))
    for word in re.findall(r"[a-z]+", passage.lower()):
        if word in NUMBER_WORDS:
            found.add(NUMBER_WORDS[word])
    return frozenset(found)


def _number_key(value: str) -> str:
    """"1,000" and "1000" are one number; "3.0" and "3" too."""
    value = value.rstrip("%")
    if re.fullmatch(r"\d{1,3}(,\d{3})+", value):
        value = value.replace(",", "")
    if re.fullmatch(r"\d+\.0+", value):
        value = value.split(".")[0]
    return value


def found_in(fact: Fact, passage: str) -> bool:
    norm = _normalised(passage)
    if fact.kind == "number":
        return _number_key(fact.text) in _numbers(passage)
    needle = _normalised(fact.text)
    if fact.kind == "quoted":
        return needle in norm or _normalised(needle.strip(" .")) in norm
    if re.search(rf"(?<![\w]){re.escape(needle)}", norm):
        return True
    # A plural or possessive of something the passage names ("APIs", "Postgres's").
    stem = re.sub(r"('s|s|es)$", "", needle)
    return len(stem) >= 3 and stem != needle and re.search(rf"(?<![\w]){re.escape(stem)}", norm) is not None


@dataclass(frozen=True)
class Conflict:
    """One way a claim says the opposite of a passage sentence. `exact`: read from an
    edit of the sentence (a number changed; a negator toggled in, or a word swapped for
    its opposite or another name in, a restatement that keeps the sentence's words in
    order), not from a rewording, which can produce the same look."""
    kind: str       # number / negation / opposite / name
    why: str
    exact: bool = False


def check(claim: str, passages: list[str]) -> ExactResult:
    """Facts of the claim that none of `passages` holds, and contradictions between the
    claim and the passage sentence it most resembles."""
    result = ExactResult(facts(claim))
    result.missing = [fact for fact in result.facts if not any(found_in(fact, p) for p in passages)]
    if any(quoted_in(claim, p) for p in passages):
        return result                  # a sentence the passage says word for word contradicts nothing
    claim_words = _words(strip_markers(claim))
    found: list[Conflict] = []
    aligned, share = best_sentence(claim, passages)
    if aligned is not None and share >= 0.5:
        found = conflicts(claim, aligned, result.facts, result.missing, close=share >= 0.7)
    if not found:
        # The sentence it restates may be cut wrongly in a hard-wrapped passage: read the whole.
        flipped = next((w for p in passages if (w := _negation_toggled(claim_words, _passage_words(p)))), None)
        if flipped:
            found = [Conflict("negation", f"'{flipped}' is negated in one of the claim and the passage, not the other",
                              exact=True)]
    if not found:
        changed = _number_changed(claim, passages)
        if changed:                    # a run of the passage, token for token, but a number
            found = [Conflict("number", f"{changed[0]} where the passage says {changed[1]}", exact=True)]
    result.conflicts = [c.why for c in found]
    result.certain = any(c.exact for c in found)
    return result


_STRAIGHT_QUOTES = str.maketrans("’‘“”", "''\"\"")


def _lower(text: str) -> str:
    """Lower case with curly quotes made straight, same length (offsets stay valid)."""
    return text.lower().translate(_STRAIGHT_QUOTES)


def quoted_in(claim: str, passage: str) -> bool:
    """The passage holds the claim word for word as a whole sentence or clause: it starts
    after a line break or punctuation (not a comma) and ends before a line break or a
    full stop, so "X is on" inside "it is false that X is on by default" does not count."""
    words = _lower(strip_markers(claim)).strip().rstrip(".!?;: ").split()
    if len(words) < 3:
        return False
    text = _lower(passage)
    for match in re.finditer(r"\s+".join(map(re.escape, words)), text):
        before, after = text[:match.start()].rstrip(" \t"), text[match.end():].lstrip(" \t")
        starts = not before or before[-1] == "\n" or not (before[-1].isalnum() or before[-1] in ",'")
        ends = not after or after[0] in "\n.!?;:)]"
        if starts and ends:
            return True
    return False


def _alnum_tokens(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z0-9]+", _lower(strip_markers(text))))


# A passage is checked against every sentence of an answer, and each sentence against its
# cited passages together and each alone: tokenise it once.
_passage_tokens = lru_cache(maxsize=1024)(_alnum_tokens)


def _close_runs(claim: Sequence[str], source: Sequence[str]) -> Iterator[list[tuple[str, str]]]:
    """For each run of `source` as long as `claim` that differs from it in at most one
    place, in order, the (claim, source) pairs that differ ([] for an exact repeat). Such
    a run starts where the claim's first token is, or one before its second."""
    n = len(claim)
    if n < 2:
        return
    starts = {i for i, t in enumerate(source) if t == claim[0]} | \
             {i - 1 for i, t in enumerate(source) if t == claim[1] and i > 0}
    for start in sorted(starts):
        window = source[start:start + n]
        if len(window) == n:
            changed = [(a, b) for a, b in zip(claim, window) if a != b]
            if len(changed) <= 1:
                yield changed


def _number_changed(claim: str, passages: list[str], min_tokens: int = 5) -> tuple[str, str] | None:
    """(claim number, passage number) when the claim repeats a run of a passage token for
    token but for one number ("git show :5:filename" against ":3:filename", a table of
    contents' page 37 against 35), and repeats no run exactly. Runs cross the passage's
    line breaks and sentence ends, which a hard-wrapped or tabular passage puts anywhere."""
    claim_tokens = _alnum_tokens(claim)
    if len(claim_tokens) < min_tokens or not any(t.isdigit() for t in claim_tokens):
        return None
    found = None
    for passage in passages:
        for changed in _close_runs(claim_tokens, _passage_tokens(passage)):
            if not changed:
                return None                # said exactly somewhere: no change
            if changed[0][0].isdigit() and changed[0][1].isdigit() and found is None:
                found = changed[0]
    return found


def best_sentence(claim: str, passages: list[str]) -> tuple[str | None, float]:
    """The passage sentence whose words the claim shares most (what it restates), and
    that share."""
    words = content_words(strip_markers(claim))
    best, best_share = None, 0.0
    for passage in passages:
        for sentence in passage_sentences(passage):
            share = share_found(words, content_words(sentence))
            if share > best_share:
                best, best_share = sentence, share
    return best, best_share


@lru_cache(maxsize=1024)
def passage_sentences(passage: str) -> tuple[str, ...]:
    """Lines and sentences of a passage; not cut at a hard wrap or after an abbreviation
    ("e.g. in a bare repository"), which would leave half a sentence to compare with."""
    out: list[str] = []
    for piece in re.split(r"(?<=[.!?])\s+|\n+", unwrap(passage)):
        if not piece.strip():
            continue
        last = re.search(r"(\w+(?:\.\w+)*)\.$", out[-1]) if out else None
        if last and last.group(1).lower() in ABBREVIATIONS:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return tuple(out)


def conflicts(claim: str, sentence: str, claim_facts: list[Fact], missing: list[Fact],
              close: bool = False) -> list[Conflict]:
    """Ways the claim says the opposite of the sentence it restates. `close`: the claim
    restates that sentence nearly word for word, so a number of the claim that the
    sentence lacks is a changed number even when it appears elsewhere in the passage."""
    out = []
    claim_words, source_words = _words(strip_markers(claim)), _words(sentence)
    # An edit keeps the sentence's words in order; a paraphrase moves them, and then a
    # swapped word or a negation may be the rewording's, not a changed fact.
    edited = _same_order(claim_words, source_words)
    # A negation's reach is read word by word: only a near-verbatim restatement shows it
    # flipped. In a paraphrase ("isn't noticed until" for "only notice when") it moves, and
    # on claims written the way models write the check fired as often on right ones.
    toggled = _negation_toggled(claim_words, source_words)
    flipped = toggled or edited and \
        _negation_flips(_words(strip_markers(claim), stops=True), _words(sentence, stops=True))
    if flipped:
        out.append(Conflict("negation", f"'{flipped}' is negated in " + (
            "the claim but not in the passage" if flipped in _scoped(claim_words)[0]
            else "the passage but not in the claim"), exact=toggled is not None))
    claim_set, source_set = set(claim_words), set(source_words)
    for word in sorted(claim_set):
        opposite = next((o for o in sorted(_OPPOSITES.get(word, ())) if o in source_set), None)
        if opposite and word not in source_set:
            out.append(Conflict("opposite", f"'{word}' where the passage says '{opposite}'", exact=edited))
    swapped = _one_word_changed(claim_words, source_words)
    if swapped and swapped[1] in _OPPOSITES.get(swapped[0], ()) and not out:
        # "older ... to older ones" against "older ... to newer ones": the word the claim
        # changed is the opposite of the sentence's, though it also occurs elsewhere.
        out.append(Conflict("opposite", f"'{swapped[0]}' where the passage says '{swapped[1]}'", exact=edited))
    if close:
        # A near-verbatim restatement naming something else where the sentence names
        # another thing ("an Provides statement" for "an INSERT statement").
        named = lambda items: [f for f in items if f.kind in ("name", "identifier")]
        # Case counts here: "Provides" is no plural of the sentence's verb "provide".
        new = [f for f in named(claim_facts) if not found_in(f, sentence)
               or f.kind == "name" and not re.search(rf"(?<!\w){re.escape(f.text.rstrip('s'))}", sentence)]
        gone = [f for f in named(facts(sentence))
                if not re.search(rf"(?<!\w){re.escape(f.text)}(?!\w)", claim, re.IGNORECASE)]
        if new and gone:
            out.append(Conflict("name", f"{new[0].text} where the passage says {gone[0].text}", exact=edited))
    claim_numbers = {_number_key(f.text) for f in claim_facts if f.kind == "number"}
    missing_numbers = [f for f in missing if f.kind == "number"]
    if close and not missing_numbers:
        missing_numbers = [f for f in claim_facts if f.kind == "number" and _number_key(f.text) not in _numbers(sentence)]
    if missing_numbers:
        other = sorted(_numbers(sentence) - claim_numbers)
        if other:
            out.append(Conflict("number", f"{missing_numbers[0].text} where the passage says {other[0]}", exact=True))
    return out


def _words(text: str, stops: bool = False) -> list[str]:
    """Lower-case words; "no-" before a word is a prefix ("--no-relative", "no-op"), not a
    negator. `stops`: sentence ends as "." tokens, where a negation's reach ends."""
    return re.findall(r"\b(?:no|not|non)-(?=[a-z])|[a-z']+" + (r"|[.;!?](?=\s|$)" if stops else ""), text.lower())


@lru_cache(maxsize=1024)
def _passage_words(passage: str) -> tuple[str, ...]:
    return tuple(_words(passage))


def _scoped(words: list[str], reach: int = 3) -> tuple[set[str], set[str]]:
    """(stems of content words within `reach` words after a negator, stems of the others)."""
    negated, plain, left = set(), set(), 0
    for word in words:
        if word in ".;!?":
            left = 0                        # "... do not want. git reset": the negation ended
            continue
        if word in NEGATORS or word.endswith("n't"):
            left = reach
            continue
        if word not in CONTENT_STOP and len(word) > 2:
            (negated if left else plain).add(stem(word))
        left = max(0, left - 1)
    return negated, plain


def _negation_flips(claim: list[str], source: list[str]) -> str | None:
    """A word the claim and the passage sentence share, negated in one and not the other
    ("was not covered" vs "was covered"); None when there is none."""
    claim_negated, claim_plain = _scoped(claim)
    source_negated, source_plain = _scoped(source)
    # A word the claim uses both ways ("link against X but not against Y") flips nothing.
    flips = sorted((claim_plain - claim_negated) & source_negated - source_plain) + \
        sorted((claim_negated - claim_plain) & source_plain - source_negated)
    return flips[0] if flips else None


def _same_order(claim: list[str], source: list[str], least: float = 0.8) -> bool:
    """The claim says (a part of) the sentence's words in the sentence's order, negators
    aside: an edit of it, not a rewording."""
    from difflib import SequenceMatcher
    plain = lambda words: [w for w in words if w not in NEGATORS and not w.endswith("n't")]
    claim, source = plain(claim), plain(source)
    matched = sum(block.size for block in SequenceMatcher(None, claim, source, autojunk=False).get_matching_blocks())
    # Either a part of the sentence edited, or the whole sentence inside a longer claim.
    return bool(claim and source) and max(matched / len(claim), matched / len(source)) >= least


def _negation_toggled(claim: list[str], source: list[str], min_words: int = 4) -> str | None:
    """The claim repeats a run of the passage sentence word for word but for a negator
    added or dropped ("there is no way" -> "there is not no way"); the word after it,
    or None. Catches what the scope rule above cannot: a negation of a negation, a
    negator before a word the sentence also uses elsewhere."""
    def split(words: list[str]) -> tuple[list[str], list[int]]:
        kept, negators, pending = [], [], 0
        for word in words:
            if word in NEGATORS or word.endswith("n't"):
                pending += 1
                if word.endswith("n't") and word not in NEGATORS and len(word) > 5:
                    kept.append(word[:-3])          # "doesn't" -> "does" + a negator
                    negators.append(0)
                continue
            kept.append(word)
            negators.append(pending)
            pending = 0
        # The end of the sentence holds the negators after its last word ("... should not").
        return kept + ["</end>"], negators + [pending]
    claim_kept, claim_neg = split(claim)
    source_kept, source_neg = split(source)
    n = len(claim_kept)
    if n <= min_words or not any(claim_neg) and not any(source_neg):
        return None
    for offset in range(len(source_kept) - n + 1):
        whole = source_kept[offset:offset + n] == claim_kept
        # A claim that stops before the sentence does: its end says nothing.
        if whole or source_kept[offset:offset + n - 1] == claim_kept[:-1]:
            # Negators before the first word may sit outside the run the claim repeats.
            for j in range(1, n if whole else n - 1):
                if claim_neg[j] % 2 != source_neg[offset + j] % 2:
                    return claim_kept[j] if j < n - 1 else claim_kept[j - 1]
            return None
    return None


def _one_word_changed(claim: list[str], source: list[str]) -> tuple[str, str] | None:
    """(claim word, sentence word) when the claim repeats a run of the sentence word for
    word but for one word; else None."""
    if len(claim) < 4:
        return None
    return next((changed[0] for changed in _close_runs(claim, source) if changed), None)
