"""Credentials and secrets in text: API keys and tokens, private keys, passwords in URLs
and command lines, secret-looking values assigned to secret-sounding names.

detect-secrets (offline, ~1 ms a line) finds the known token formats; its generic
high-entropy detectors fire on every hash, UUID and commit id in technical docs, so they
are not used alone. Our own rules add the shapes it misses (tokens with a vendor prefix,
credentials in curl commands and URLs, `name = value` assignments) and every match goes
through one filter that drops placeholders ("AKIAIOSFODNN7EXAMPLE", "xxxx", "<token>",
"${TOKEN}", "changeme").

A token in a vendor's documented prefix and shape is flagged even when it looks made up
(AKIA and sixteen Zs, abc123 inside an sk-ant- key): in an organisation's documents such
a string is worth a look. Only values that say they stand in for a secret are left alone.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from bot.guard.secret_rules import FREE_FORM, NAMED, SHAPE_CHECKED, applicable
from bot.guard.spans import non_overlapping


@dataclass(frozen=True)
class SecretMatch:
    start: int          # in the scanned text
    end: int
    type: str           # AWS_ACCESS_KEY, PRIVATE_KEY, PASSWORD_IN_URL, GENERIC_SECRET, ...
    score: float


# detect-secrets' names -> ours (its entropy detectors are left out on purpose, and its Slack
# one: it takes any `xoxb-<digits>-<letters>`, our rules below hold Slack's documented shapes).
_DS_TYPES = {
    "Artifactory Credentials": "ARTIFACTORY_TOKEN", "AWS Access Key": "AWS_KEY", "Azure Storage Account access key":
    "AZURE_STORAGE_KEY", "Basic Auth Credentials": "PASSWORD_IN_URL", "Cloudant Credentials": "CLOUDANT_CREDENTIAL",
    "Discord Bot Token": "DISCORD_TOKEN", "GitHub Token": "GITHUB_TOKEN", "GitLab Token": "GITLAB_TOKEN",
    "IBM Cloud IAM Key": "IBM_CLOUD_KEY", "IBM COS HMAC Credentials": "IBM_COS_KEY", "JSON Web Token": "JWT",
    "Secret Keyword": "GENERIC_SECRET", "Mailchimp Access Key": "MAILCHIMP_KEY", "NPM tokens": "NPM_TOKEN",
    "OpenAI Token": "OPENAI_KEY", "Private Key": "PRIVATE_KEY", "PyPI Token": "PYPI_TOKEN",
    "SendGrid API Key": "SENDGRID_KEY", "SoftLayer Credentials": "SOFTLAYER_KEY",
    "Square OAuth Secret": "SQUARE_SECRET", "Stripe Access Key": "STRIPE_KEY", "Telegram Bot Token": "TELEGRAM_TOKEN",
    "Twilio API Key": "TWILIO_KEY"}


# Values that say they stand in for a secret: never one, whatever their shape. "xxxx" is how
# documents blank a token out (ghp_xxxx..., AKIAXXXX...), so it counts; other
# repeated letters do not.
_STAND_IN = re.compile(r"(?i)example|sample|dummy|placeholder|changeme|change_me|your[_-]|redacted|<[^>]*>|\$\{|\{\{|"
                       r"\$\(|^\$[A-Za-z_]|x{4,}|\*{3,}|\.{3}|(?:token|string|key|secret)here|randomstring|"
                       r"^(?:password|passwd|secret|token|test|null|none|true|false|pass|admin)$")
# A template's slot: {DatadogApiKey}, %API_KEY%, [PASSWORD].
_TEMPLATE_SLOT = re.compile(r"\{\s*\w+\s*\}|%\w+%|\[\w+\]")
# Values that look made up (abc123, 12345678, aaaaaa): stand-ins when a free-form rule finds
# them, not when the value has a vendor's exact shape.
_MADE_UP = re.compile(r"(?i:abc123|abcdefgh)|12345678|(.)\1{5,}")
# A value that is one short piece three times over (abcd1234abcd1234abcd1234) was typed, not generated.
_REPEATED = re.compile(r"(?i)(\w{4,8})\1\1")
# Hex of a key's length under a secret's name is how generated keys are written down: its
# digits are not second-guessed.
_KEY_HEX = re.compile(r"[0-9a-fA-F]{32,}")
# A version-1 UUID is a timestamp and a MAC address: an id anyone can guess, not a secret.
_TIME_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-1[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")
# settings.secret_key, os.environ["KEY"], X25519.secret_length: code, not a value.
_CODE_REFERENCE = re.compile(r"[A-Za-z_]\w{0,30}(?:\.[A-Za-z_]\w{0,30}){1,4}(?:\(\))?")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values()) if value else 0.0


def is_placeholder(value: str, words_too: bool = True, made_up_too: bool = True) -> bool:
    """Documentation stand-ins rather than real secrets. `words_too`: a plain word
    (my_password) counts as a stand-in, as it does for a value assigned to a name;
    `made_up_too`: so does a made-up looking value (abc123, 12345678, aaaaaa)."""
    core = value.strip("\"'{}()[]")
    if _STAND_IN.search(core) or _TEMPLATE_SLOT.fullmatch(value.strip("\"'")):
        return True
    if _CODE_REFERENCE.fullmatch(core) and any(re.fullmatch(r"[a-z_]{3,}", part) for part in core.split(".")):
        return True
    if words_too and re.fullmatch(r"[a-z]+(?:[_-][a-z]+)*", core):
        return True
    return made_up_too and bool(_MADE_UP.search(core))


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def key_shaped(value: str) -> bool:
    """A value with a generated key's shape: a UUID or hex of a key's length, or a
    token mixing letters and digits with a random string's spread of characters (not a
    word, a name in camelCase, a date or a version)."""
    if _UUID.fullmatch(value) or re.fullmatch(r"[0-9a-fA-F]{24,}", value):
        return True
    letters, digits = sum(c.isalpha() for c in value), sum(c.isdigit() for c in value)
    if not letters or not digits:
        return len(value) >= 32 and entropy(value) >= 4.0
    mixed_case = any(c.isupper() for c in value) and any(c.islower() for c in value)
    return entropy(value) >= 3.5 and (mixed_case or digits / len(value) >= 0.2 or len(value) >= 32)


def _stand_in(kind: str, value: str) -> bool:
    """The filter every match of a type goes through, whoever found it."""
    named = kind in NAMED
    if named and (entropy(value) < 3.0 or len(set(value)) < 6 or _TIME_UUID.fullmatch(value)):
        return True
    if kind in SHAPE_CHECKED and ("://" in value or value.startswith("/") or not key_shaped(value)):
        return True
    if kind in FREE_FORM and _REPEATED.search(value):
        return True
    made_up_too = kind in FREE_FORM and not (named and _KEY_HEX.fullmatch(value))
    if is_placeholder(value, words_too=named, made_up_too=made_up_too):
        return True
    return kind == "JWT" and not _is_jwt(value)


@lru_cache(maxsize=1)
def _detect_secrets():
    """detect-secrets' line scanner with its default plugins (entropy ones filtered later)."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings
    return scan_line, default_settings


def find_secrets(text: str) -> list[SecretMatch]:
    """Every secret in the text, once, by position."""
    found: list[SecretMatch] = []
    for kind, _, pattern, group in applicable(text.lower()):
        for match in pattern.finditer(text):
            value = match.group(group)
            start, end = match.span(group)
            if kind != "PRIVATE_KEY" and _stand_in(kind, value):
                continue
            if kind == "PRIVATE_KEY" and not match.group(0).startswith("-----BEGIN") and _public_block(text, start, value):
                continue
            if kind in NAMED and re.search(r"(?i)public|publishable", text[max(0, match.start() - 30):start]):
                continue                                  # a public key or token is meant to be seen
            found.append(SecretMatch(start, end, kind, 0.7 if kind in NAMED else 0.9))
    found += _from_detect_secrets(text)
    # Overlapping matches: the longest wins, then the more specific type.
    return non_overlapping(found, lambda m: (-(m.end - m.start), m.type in NAMED, m.start))


# detect-secrets runs ~25 detectors on every line (~1.7 ms a line): a line is only handed
# to it when it could hold what any of them finds: a long token with a digit in it, a
# credential keyword, credentials in a URL or a key block.
_WORTH_SCANNING = re.compile(r"(?<![\w+/=.~-])(?=[\w+/=.~-]{0,200}\d)[\w+/=.~-]{16,}|://[^\s/]*@|PRIVATE KEY|"
                             r"(?i:pass|pwd|secret|token|key|auth|cred|bearer|private|api|login|user)[\w.-]*[\"']?\s*(?:[:=]|=>)")
_KEY_END = re.compile(r"-----END (?:[A-Z]+ )*PRIVATE KEY")


# detect-secrets keeps its settings in process-wide globals that `default_settings()`
# rewrites: two threads scanning at once (a server answering in parallel) broke it with
# "dictionary changed size during iteration" (benchmarks/serve.py). One scan at a time.
_SCANNING = threading.Lock()


def _from_detect_secrets(text: str) -> list[SecretMatch]:
    scan_line, default_settings = _detect_secrets()
    out, offset = [], 0
    with _SCANNING, default_settings():
        for line in text.splitlines(keepends=True):
            # Minified blobs (2,000+ characters) are skipped: they hang regexes.
            if len(line) < 2000 and _WORTH_SCANNING.search(line):
                for secret in scan_line(line.rstrip("\n")):
                    kind = _DS_TYPES.get(secret.type)
                    value = secret.secret_value or ""
                    position = line.find(value) if value else -1
                    if not kind or position < 0:
                        continue
                    if kind not in ("GENERIC_SECRET", "PASSWORD_IN_URL", "PRIVATE_KEY"):
                        # Inside a longer word: "TODAYINASIAASACK...", "bot<digits>:AA..." (our rule finds
                        # it in an API path). A Discord token glued to text is still one (detect-secrets' cases).
                        if kind in ("AWS_KEY", "TELEGRAM_TOKEN") and position > 0 and line[position - 1].isalnum():
                            continue
                        # Some detectors report only a token's prefix ("ghp"): take the whole token.
                        position, value = _whole_token(line, position, len(value))
                    if kind == "PRIVATE_KEY" and _KEY_END.search(text, offset + position):
                        continue                      # the whole block is here: our rule checks its body
                    if _stand_in(kind, value):
                        continue
                    if kind == "GENERIC_SECRET" and (len(value) < 8 or " " in value):
                        continue
                    out.append(SecretMatch(offset + position, offset + position + len(value), kind, 0.8))
            offset += len(line)
    return out


_BLOCK_HEADER = re.compile(r"-----(BEGIN|END) ([A-Z0-9 ]+)-----")


def _public_block(text: str, start: int, value: str) -> bool:
    """Key-body lines that belong to a certificate or a public key: the block they are in
    (its header is the last marker before them) is not a private key's. A base64 block
    (kubeconfig) says what it holds in its first bytes."""
    if value.startswith("LS0tLS1CRUdJTi"):
        import base64
        head = base64.b64decode(value[:80] + "=" * (-len(value[:80]) % 4), validate=False)
        return b"PRIVATE KEY" not in head
    markers = list(_BLOCK_HEADER.finditer(text, max(0, start - 20000), start))
    return bool(markers) and markers[-1].group(1) == "BEGIN" and "PRIVATE KEY" not in markers[-1].group(2)


def _whole_token(line: str, start: int, length: int) -> tuple[int, str]:
    end = start + length
    # "=" only pads a token's end: before it is an assignment (CI_JOB_TOKEN=glcbt-...).
    while start > 0 and re.match(r"[\w\-+/~]", line[start - 1]):
        start -= 1
    while end < len(line) and re.match(r"[\w\-+/=~.]", line[end]):
        end += 1
    return start, line[start:end].rstrip(".")


def _is_jwt(value: str) -> bool:
    """A JSON Web Token's header decodes to JSON naming its algorithm."""
    import base64
    import json
    head = value.split(".")[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded
