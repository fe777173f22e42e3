"""What a question asks for, and whether an answer gives it: cheap checks read from the
words, for the answers that are backed by their passage and still answer another question
(issue 16). The model's own yes / no on "does this answer the question?" was measured at
AUROC 0.48 with the bundled model (answer.judge_addresses, off); these checks only fire
where the words leave no doubt:

- a count, number, port, version or year asked for, and no number in the answer
  ("What is the default port of the Pushgateway?" answered "The Pushgateway never forgets
  series pushed to it [1].");
- an action asked about and its opposite answered ("How do I remove ...?" answered how to
  add, "the default" answered with "the maximum"), the asked word nowhere in the answer;
- a name in the question that the documents never mention ("How do I enable Git LFS?" on
  documentation that never says LFS): no passage can answer it, whatever the model writes.

benchmarks/answer.py --part asked measures them: right answers lost and wrong ones caught
on docs_qa, false alarms on SQuAD 2.0's and HaluEval's reference answers."""

from __future__ import annotations

import re
from typing import Iterable

from bot.citations import strip_markers
from bot.guard.fact_conflicts import NEGATORS
from bot.guard.lexical import stem

# How many / how much: the answer is a count or an amount. ("How long" and "how often"
# are left out: "until the next restart" and "whenever it changes" answer them.)
_HOW = re.compile(r"\bhow\s+(?:many|much)\b", re.I)
# What / which + a noun naming a quantity, that noun the head ("what port", "which version
# of X", "what is the maximum number of ..."), not a modifier ("what version control
# system"), nor the object of another verb ("what causes the population to grow", "what
# does the size depend on"): no article or auxiliary before it, and after it comes a verb,
# a preposition or the end.
_QUANTITY_NOUNS = ("number|numbers|port|version|year|percentage|percent|price|cost|population|temperature|"
                   "amount|size|limit|length|timeout|interval|age")
_WHAT = re.compile(r"(?:^|[,;:]\s*|\b(?:in|at|on|by|for|from|of|to)\s+)(?:what|which)\s+(?:(?:is|are|was|were|'s)\s+)?"
                   r"(?:(?:the|a|an|its|their|our|my|your)\s+)?(?:(?!(?:the|a|an|its|their|our|my|your|do|does|did|"
                   r"is|are|was|were|has|have|had|can|will|would|should)\b)[\w-]+\s+){0,2}?(" + _QUANTITY_NOUNS + r")"
                   r"(?=\s*(?:[?.!]|$|\b(?:of|is|are|was|were|does|do|did|has|have|will|would|can|could|should|"
                   r"for|in|on|at|to|by|from|that|when|if)\b))", re.I)
# A number in any spelling, or the words that answer "how many" without one.
_NUMBER = re.compile(r"\d|\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
                     r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
                     r"seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?|dozens?|once|twice|"
                     r"half|single|none|no|unlimited|infinite|any|several|few|many|multiple|"
                     r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|latest|current|"
                     r"ii|iii|iv|vi|vii|viii|ix|xi|xii)\b", re.I)

# An action and its opposite. The asked word's own synonyms in the answer count as the
# asked word: "How do I remove ...?" answered with "git rm" is about removing.
_OPPOSITE_ACTIONS = [
    ({"remove", "delete", "rm", "drop", "uninstall", "purge", "erase", "unset", "discard", "unstage", "deregister"},
     {"add", "install", "insert", "append", "register"}),
    ({"uninstall", "remove", "purge"}, {"install"}),
    ({"delete", "drop", "remove", "destroy"}, {"create"}),
    ({"disable", "deactivate", "off"}, {"enable", "activate"}),
    # Stopping is told in many words ("Ctrl-C", "send SIGTERM to the process started with ...").
    ({"stop", "halt", "kill", "shutdown", "shut", "terminate", "quit", "exit", "interrupt", "ctrl", "sigterm",
      "sigint", "sighup"}, {"start", "launch", "restart"}),
    ({"export", "dump"}, {"import", "restore", "load"}),
    ({"decrypt"}, {"encrypt"}),
    ({"download"}, {"upload"}),
    ({"unlock"}, {"lock"}),
    ({"unmount", "umount"}, {"mount"}),
    ({"revoke", "deny"}, {"grant", "allow"}),
    ({"decrease", "lower", "reduce", "shrink"}, {"increase", "raise", "grow"}),
    ({"maximum", "max", "largest", "highest"}, {"minimum", "min", "smallest", "lowest"}),
    ({"default", "defaults"}, {"maximum", "minimum", "max", "min"}),
]


def _stems(words: Iterable[str]) -> frozenset[str]:
    return frozenset(stem(w) for w in words)


_PAIRS = [(_stems(a), _stems(b)) for a, b in _OPPOSITE_ACTIONS]
_PAIRS += [(b, a) for a, b in _PAIRS if not (a & _stems({"default"}))]     # each way, but a default asked is one way
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def asks_quantity(question: str) -> bool:
    """The question asks for a count, an amount, a number, a port, a version or a year."""
    return bool(_HOW.search(question) or _WHAT.search(question.strip()))


def gives_quantity(answer: str) -> bool:
    return bool(_NUMBER.search(strip_markers(answer)))


def opposite_answered(question: str, answer: str) -> tuple[str, str] | None:
    """(asked, answered): an action the question asks about whose opposite the answer names,
    while it names neither the asked action nor a synonym of it, and negates nothing ("don't
    enable it" may well answer "how do I disable it?")."""
    said = _words(strip_markers(answer))
    if any(w in NEGATORS or w.endswith("n't") or w in ("false", "off") for w in said):
        return None
    said_stems = _stems(said)
    asked_words = {stem(w): w for w in _words(question)}
    for asked, opposite in _PAIRS:
        hit = next((w for s, w in asked_words.items() if s in asked), None)
        if hit is None or said_stems & asked:
            continue
        answered = next((w for w in said if stem(w) in opposite and stem(w) not in asked_words), None)
        if answered:
            return hit, answered
    return None


def mismatch(question: str, answer: str) -> str | None:
    """Why the answer does not give what the question asks for, in words; None when it may."""
    if asks_quantity(question) and not gives_quantity(answer):
        return "the question asks for a number and the answer gives none"
    pair = opposite_answered(question, answer)
    if pair:
        return f"the question asks about “{pair[0]}” and the answer is about “{pair[1]}”"
    return None


# A name: a word with a capital after its first letter (MySQL, LFS, iOS), or a capitalised
# word that does not start the question or a sentence of it (Chocolatey, Kafka).
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[.+#-][A-Za-z0-9]+)*")
# Capitalised, but a value asked about ("do deploys go out on Monday?" is answered by a
# document that says Tuesdays) or a generic technical term a person uses where the
# documents may say it otherwise ("the REST API" for "the web API"): not a subject.
_NOT_NAMES = frozenset("""i i'm i've i'd ok monday tuesday wednesday thursday friday saturday sunday january february
march april may june july august september october november december mon tue tues wed thu thur thurs fri sat sun
jan feb mar apr jun jul aug sep sept oct nov dec api apis rest http https url urls uri json
yaml xml csv html cli gui ui ux os pdf sql id ids faq utc gmt tls ssl ssh dns ip ipv4 ipv6 tcp udp cpu gpu ram
db vm vms usb pr ci cd am pm""".split())


def names(question: str) -> list[str]:
    """The names the question uses, as written (each once)."""
    found: dict[str, None] = {}
    for sentence in re.split(r"(?<=[.?!:;])\s+|\n+", strip_markers(question)):
        for i, match in enumerate(_TOKEN.finditer(sentence)):
            word = match.group(0)
            if word.lower() in _NOT_NAMES or len(word) < 2:
                continue
            if any(c.isupper() for c in word[1:]) or (i > 0 and word[0].isupper()):
                found[word] = None
    return list(found)


def spelled_near(word: str, words: Iterable[str]) -> bool:
    """One of `words` is `word` misspelt or inflected: the same first letter and at most
    one edit away (two for words of 8 letters or more): "Intercolleiate" for
    "Intercollegiate", "Buddhist" for "Buddhism". Words under 5 letters must match exactly
    ("LFS" is not "LDS")."""
    word = word.lower()
    if len(word) < 5:
        return False
    limit = 1 if len(word) < 8 else 2
    return any(w[:1] == word[:1] and abs(len(w) - len(word)) <= limit and _edits(word, w, limit) <= limit
               for w in words)


def _edits(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, given up once every path is over `limit`."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(row) > limit:
            return limit + 1
        previous = row
    return previous[-1]

