"""Labels stored with every chunk at ingest: what it holds that must not leak.

    labeller = ChunkLabeller.from_settings(settings)
    Ingestor(settings, labeller=labeller)           # ingest/ takes it as a parameter
    labeller.label("/docs/hr/pay.md", ["chunk text", ...], spans)  -> [{"pii": 2}, {}, ...]

Labels: `secret` (keys, tokens, passwords: the same rules as at answer time), `pii`
(a person's e-mail address, phone and card numbers, IBANs, public IP addresses: patterns
only; names need the language model, too slow for ingest, so they are found at answer
time; documentation and role addresses and version-like numbers are left out),
`confidential` (stamps and notices; a marking in the document's header or front matter
labels every chunk of the file), `restricted` (the path matches `leaks.restricted_paths`,
or the header says `sensitivity: restricted` / `classification: restricted`), and
`injection` (instructions aimed at the assistant). Chunks whose labels are in
`leaks.exclude` are never retrieved.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from pathlib import PurePath
from typing import Sequence

LABELS = ("secret", "pii", "confidential", "restricted", "injection")
VERSION = "6"      # bump when the rules change: stored labels are then recomputed

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_RESTRICTED_HEADER = re.compile(r"^[ \t#>*_]*(?:classification|security classification|sensitivity|"
                                r"data classification|access)\s*[:=]\s*[\"']?(?:restricted|secret|top secret)\b",
                                re.I | re.M)
# A marking this close to the start of a document speaks for the whole document.
_HEADER_CHARS = 600


def iban_valid(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _personal(text: str) -> int:
    # The same rules as the answer-time scanner, without its language model.
    from bot.guard.pii import in_context, personal_email, personal_ip
    found = sum(1 for address in _EMAIL.findall(text) if personal_email(address))
    found += sum(1 for m in _IBAN.finditer(text) if iban_valid(m.group()))
    found += sum(1 for m in _IPV4.finditer(text) if personal_ip(m.group()))
    found += len(in_context(text))
    return found


def matching_rule(rules: Sequence[str], path: str, case_sensitive: bool = False) -> str | None:
    """The first glob of `rules` that matches the whole path or its tail from any folder
    ("eng/**" matches /srv/docs/eng/setup.md), regardless of case unless `case_sensitive`;
    None when none does. leaks.restricted_paths and the team server's grants both match so."""
    fold = (lambda text: text) if case_sensitive else str.casefold
    parts = PurePath(path).parts
    candidates = [fold(path)] + [fold("/".join(parts[i:])) for i in range(len(parts))]
    return next((rule for rule in rules if any(fnmatch.fnmatchcase(c, fold(rule)) for c in candidates)), None)


class ChunkLabeller:
    def __init__(self, config=None, per_collection=None):
        """`config`: the leak settings; `per_collection`: {collection: leak settings} for
        collections with their own (Settings.collection_leaks)."""
        from docent.settings import LeakSettings
        self.config = config or LeakSettings()
        self.per_collection = dict(per_collection or {})
        rules = ",".join(sorted(self.config.restricted_paths)) + ("" if not self.config.paths_case_sensitive else ":case")
        # Stored with the collection: other rules or other path settings mean new labels.
        self.version = f"{VERSION}:{hashlib.sha256(rules.encode()).hexdigest()[:12]}"

    @classmethod
    def from_settings(cls, settings) -> "ChunkLabeller":
        return cls(settings.leaks, settings.collection_leaks)

    def for_collection(self, name: str) -> "ChunkLabeller":
        """The labeller with the collection's own rules (itself when it has none)."""
        config = self.per_collection.get(name)
        return self if config is None or config == self.config else ChunkLabeller(config)

    def restricted_path(self, path: str) -> bool:
        return self.restricting_rule(path) is not None

    def restricting_rule(self, path: str) -> str | None:
        """The first path rule that matches (matching_rule), or None."""
        return matching_rule(self.config.restricted_paths, path, self.config.paths_case_sensitive)

    def label(self, path: str, chunks: Sequence[str],
              spans: Sequence[tuple[int, int]] | None = None) -> list[dict[str, int]]:
        """{label: count} for each chunk of one file (empty dict: nothing found). `spans`:
        each chunk's (start, end) in the document's text; with them secrets are found on the
        document as a whole, so a key split across chunks labels every chunk it reaches."""
        from bot.guard.confidential import find_markings
        from bot.guard.injection import find_injection
        whole: dict[str, int] = {}
        if self.restricted_path(path):
            whole["restricted"] = 1
        head = chunks[0][:_HEADER_CHARS] if chunks else ""
        if _RESTRICTED_HEADER.search(head):
            whole["restricted"] = 1
        if find_markings(head):
            whole["confidential"] = 1
        secrets = secrets_per_chunk(chunks, spans)
        out = []
        for text, n_secrets in zip(chunks, secrets):
            labels = dict(whole)
            counts = {"secret": n_secrets, "pii": _personal(text),
                      "confidential": len(find_markings(text)), "injection": len(find_injection(text))}
            for name, count in counts.items():
                if count:
                    labels[name] = max(labels.get(name, 0), count)
            out.append(labels)
        return out


def secrets_per_chunk(chunks: Sequence[str], spans: Sequence[tuple[int, int]] | None) -> list[int]:
    """How many secrets each chunk holds or overlaps. With the chunks' spans, the document
    is put back together (gaps between chunks were whitespace) and scanned once."""
    from bot.guard.secrets import find_secrets
    if spans is None or len(spans) != len(chunks):
        return [len(find_secrets(text)) for text in chunks]
    pieces, end = [], 0
    for text, (start, stop) in sorted(zip(chunks, spans), key=lambda pair: pair[1][0]):
        if start >= end:
            pieces.append("\n" * (start - end) + text)
        elif stop > end:
            pieces.append(text[end - start:])
        end = max(end, stop)
    found = find_secrets("".join(pieces))
    return [sum(1 for m in found if m.start < stop and m.end > start) for start, stop in spans]
