"""The leak guard: personal data, secrets and text marked confidential.

    scanner = LeakScanner(settings.leaks)
    scanner.find(text)                       # -> [Leak(start, end, kind, type, score)]
    scanner.scan(question, answer, passages) # -> findings for `flags` (the scanner interface)
    redact(text, leaks)                      # the text with those spans masked, and the edits
                                             # (bot/guard/spans.shift_span moves other spans)
    StreamRedactor()                         # the same for secrets while an answer streams

kind is `secret` (bot/guard/secrets.py), `pii` (bot/guard/pii.py, presidio + spaCy,
loaded in warm_up) or `confidential` (bot/guard/confidential.py); scan() also reports
`extraction_attempt` (the question) and `prompt_injection` (a passage), bot/guard/injection.py. What happens to each
kind in an answer is the policy in settings [leaks]: allow, flag, redact (masked in the
answer and in the passages shown) or block (the answer is withheld, saying why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from bot.guard.findings import Finding
from bot.guard.spans import Edit, overlaps, replace_spans

KINDS = ("secret", "pii", "confidential")
POLICIES = ("allow", "flag", "redact", "block")      # docent/settings.py Policy: the same four
_ACTION = {"flag": "flagged", "redact": "redacted", "block": "blocked"}
_SEVERITY = {"secret": "high", "pii": "medium", "confidential": "medium"}


@dataclass(frozen=True)
class Leak:
    start: int
    end: int
    kind: str
    type: str
    score: float


def mask(value: str) -> str:
    """What a report may show of a finding: its first two characters at most."""
    keep = 2 if len(value) >= 10 else 0
    return value[:keep] + "*" * min(len(value) - keep, 12)


def redact(text: str, leaks: Sequence[Leak]) -> tuple[str, list[Edit]]:
    """The text with each secret or personal-data leak replaced by "[TYPE redacted]"
    (markings stay), and the edits made, so spans found before can be moved (shift_span)."""
    return replace_spans(text, [(l.start, l.end, f"[{l.type} redacted]") for l in leaks if l.kind != "confidential"])


# The end of what is ready to show: lines that could be a key's body, or a -----MARKER
# line still being written.
_TRAILING_BODY_LINES = re.compile(r"(?m)(?:^[A-Za-z0-9+/]{16,}={0,2}[ \t]*\n)*"
                                  r"(?:^[A-Za-z0-9+/]{16,}={0,2}[ \t]*\n|^-----[^\n]*)\Z")


class StreamRedactor:
    """Streaming twin of redact() for secrets: the word being written is held back until
    it is complete, then checked with up to `context` characters before it, so a key is
    masked before any of it reaches the screen."""

    def __init__(self, context: int = 300):
        self.context = context
        self._held = ""
        self._tail = ""
        self.found: list[Leak] = []

    def feed(self, piece: str) -> str:
        self._held += piece
        cut = max(self._held.rfind(" "), self._held.rfind("\n"))
        if cut < 0:
            return ""
        ready, self._held = self._held[:cut + 1], self._held[cut + 1:]
        # Lines that could be a key's body wait for the line after them: two in a row, or
        # one before an END line, are a key even with its header far behind.
        body = _TRAILING_BODY_LINES.search(ready)
        if body:
            ready, self._held = ready[:body.start()], ready[body.start():] + self._held
        return self._release(ready) if ready else ""

    def finish(self) -> str:
        ready, self._held = self._held, ""
        return self._release(ready) if ready else ""

    def _release(self, ready: str) -> str:
        from bot.guard.secrets import find_secrets
        window = self._tail + ready
        offset = len(self._tail)
        leaks = [Leak(max(m.start, offset) - offset, m.end - offset, "secret", m.type, m.score)
                 for m in find_secrets(window) if m.end > offset]
        self.found += leaks
        self._tail = window[-self.context:]
        return redact(ready, leaks)[0] if leaks else ready


class LeakScanner:
    def __init__(self, config=None, pii=None):
        """`config`: a LeakSettings, whose policies were checked when it was built."""
        from docent.settings import LeakSettings
        self.config = config or LeakSettings()
        self._pii = pii

    @property
    def pii(self):
        if self._pii is None:
            from bot.guard.pii import PiiScanner
            self._pii = PiiScanner()
        return self._pii

    def warm_up(self) -> None:
        if self.config.pii != "allow":
            self.pii.warm_up()

    def shown(self, passages: Sequence) -> list:
        """Passages (anything with a `text`) as a surface may show them: secrets and
        personal data masked where the policy redacts or blocks them. Every surface that
        shows passage text goes through here: ask's sources, retrieve, the LangChain retriever."""
        from dataclasses import replace
        return [replace(p, text=self.masked(p.text)) for p in passages]

    def masked(self, text: str) -> str:
        """The text with what the policy redacts or blocks (secrets, personal data) masked."""
        kinds = [k for k in ("secret", "pii") if getattr(self.config, k) in ("redact", "block")]
        return redact(text, self.find(text, kinds))[0] if kinds and text else text

    def find(self, text: str, kinds: Sequence[str] = KINDS) -> list[Leak]:
        from bot.guard.confidential import find_markings
        from bot.guard.secrets import find_secrets
        leaks: list[Leak] = []
        if "secret" in kinds:
            leaks += [Leak(m.start, m.end, "secret", m.type, m.score) for m in find_secrets(text)]
        if "pii" in kinds:
            secrets = list(leaks)
            leaks += [Leak(m.start, m.end, "pii", m.type, m.score) for m in self.pii.find(text)
                      # A secret inside (an e-mail in a URL's password...) is reported once, as a secret.
                      if not any(overlaps(m, s) for s in secrets)]
        if "confidential" in kinds:
            leaks += [Leak(m.start, m.end, "confidential", m.type, m.score) for m in find_markings(text)]
        return sorted(leaks, key=lambda l: l.start)

    def steering(self, question: str, passages: Sequence[str]) -> list[Finding]:
        """A question that tries to pull secrets or the system prompt out, and passages
        holding instructions aimed at the assistant: flagged (the passages reached the
        model only as quoted data, without those instructions under injection = "withhold")."""
        from bot.guard.injection import find_extraction, find_injection
        findings = []
        asked = find_extraction(question)
        if asked:
            findings.append(Finding("extraction_attempt", "medium", (0, 0),
                                    f"the question looks like an attempt to get {'secrets' if 'SECRET' in asked[0].type else 'the assistant to leave its instructions'} out "
                                    f"({asked[0].type.lower()}: “{question[asked[0].start:asked[0].end][:60]}”)",
                                    None, "flagged", 0.8))
        for n, passage in enumerate(passages, start=1):
            planted = find_injection(passage)
            if planted:
                findings.append(Finding("prompt_injection", "high", (0, 0),
                                        f"passage [{n}] holds instructions aimed at the assistant "
                                        f"({planted[0].type.lower()}: “{passage[planted[0].start:planted[0].end][:60]}”); "
                                        + ("they were left out of what the model read" if self.config.injection == "withhold"
                                           else "it was given to the model as quoted data only"), n, "flagged", 0.8))
        return findings

    def _answer_leaks(self, text: str) -> list[Leak]:
        """Secrets and personal data of the kinds the policy does not allow. Personal data
        inside a secret (an e-mail in a URL's password) is reported once, as the secret,
        unless its own policy is the stricter one (then it is masked as personal data)."""
        rank = POLICIES.index
        secrets = self.find(text, ("secret",)) if self.config.secret != "allow" else []
        people = self.find(text, ("pii",)) if self.config.pii != "allow" else []
        if rank(self.config.secret) >= rank(self.config.pii):
            people = [p for p in people if not any(overlaps(p, s) for s in secrets)]
        return sorted(secrets + people, key=lambda l: l.start)

    def scan(self, question: str, answer: str, passages: Sequence[str]) -> list[Finding]:
        """Findings for an answer: what it reveals itself (secrets and personal data, also
        ones the model reconstructed), and each cited passage marked confidential."""
        findings = []
        for leak in self._answer_leaks(answer):
            action = _ACTION[getattr(self.config, leak.kind)]
            findings.append(Finding(leak.kind, _SEVERITY[leak.kind], (leak.start, leak.end),
                                    f"{'secret' if leak.kind == 'secret' else 'personal data'} in the answer: "
                                    f"{leak.type} ({mask(answer[leak.start:leak.end])})",
                                    None, action, leak.score,
                                    replacement=f"[{leak.type} redacted]" if action == "redacted" else None))
        findings += self.steering(question, passages)
        if self.config.confidential != "allow":
            for n, passage in enumerate(passages, start=1):
                marks = self.find(passage, ("confidential",))
                if marks:
                    findings.append(Finding("confidential", _SEVERITY["confidential"], (0, len(answer)),
                                            f"passage [{n}] is marked confidential ({marks[0].type.lower()}: "
                                            f"“{passage[marks[0].start:marks[0].end][:40]}”)",
                                            n, _ACTION[self.config.confidential], marks[0].score))
        return findings
