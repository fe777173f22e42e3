"""Comparing a claim with the passage sentence it restates: where it says the opposite
(another number, a negation, an antonym such as enable/disable, a swapped name), and
whether a passage says it word for word (then it contradicts nothing).

A conflict read from an edit of the sentence (a changed number, a toggled negator, a
swap in a restatement that keeps the sentence's words in order) is `exact`; one read
across a rewording may be the rewording's own, so it is not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Sequence

from bot.citations import strip_markers
from bot.guard.fact_extract import Fact, facts, found_in, number_key, numbers_in
from bot.guard.lexical import CONTENT_STOP, content_words, share_found, stem
from bot.guard.sentences import passage_sentences

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


@dataclass(frozen=True)
class Conflict:
    """One way a claim says the opposite of a passage sentence. `exact`: read from an
    edit of the sentence (a number changed; a negator toggled in, or a word swapped for
    its opposite or another name in, a restatement that keeps the sentence's words in
    order), not from a rewording, which can produce the same look."""
    kind: str       # number / negation / opposite / name
    why: str
    exact: bool = False


def claim_conflicts(claim: str, passages: list[str], claim_facts: list[Fact], missing: list[Fact]) -> list[Conflict]:
    """Contradictions between the claim and the passage sentence it most resembles, or,
    failing that, a negator or a number changed in a run of a passage it repeats.
    `claim_facts`: facts(claim); `missing`: those none of the passages holds."""
    if any(quoted_in(claim, p) for p in passages):
        return []                      # a sentence the passage says word for word contradicts nothing
    claim_words = _words(strip_markers(claim))
    found: list[Conflict] = []
    aligned, share = best_sentence(claim, passages)
    if aligned is not None and share >= 0.5:
        found = conflicts(claim, aligned, claim_facts, missing, close=share >= 0.7)
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
    return found


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
    claim_numbers = {number_key(f.text) for f in claim_facts if f.kind == "number"}
    missing_numbers = [f for f in missing if f.kind == "number"]
    if close and not missing_numbers:
        missing_numbers = [f for f in claim_facts if f.kind == "number" and number_key(f.text) not in numbers_in(sentence)]
    if missing_numbers:
        other = sorted(numbers_in(sentence) - claim_numbers)
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
