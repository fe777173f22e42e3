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
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

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

SECRET_NAME = r"(?:api[_-]?key|api[_-]?token|access[_-]?key(?:[_-]?id)?|access[_-]?id|secret(?:[_-]?key)?|client[_-]?secret|" \
              r"auth[_-]?token|access[_-]?token|refresh[_-]?token|token|passw(?:or)?d|passwd|pwd|credentials?|" \
              r"private[_-]?key|bearer|user[_-]?auth|webhook[_-]?url|conn(?:ection)?[_-]?string)"

# One line of a key block's body: base64 with both cases and a digit (hex is a hash, not a key).
_BODY_LINE = r"(?=[A-Za-z0-9+/]{0,80}[a-z])(?=[A-Za-z0-9+/]{0,80}[A-Z])(?=[A-Za-z0-9+/]{0,80}\d)[A-Za-z0-9+/]{40,80}={0,2}"

# Our own shapes: (type, pattern, group holding the secret). Vendor prefixes are public formats.
_RULES: list[tuple[str, re.Pattern, int]] = [(t, re.compile(p), g) for t, p, g in [
    # A key block with a body (an empty template or "..." is documentation).
    ("PRIVATE_KEY", r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----(?=[\s\S]{0,300}?[A-Za-z0-9+/=]{40})[\s\S]*?"
                    r"(?:-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----|$)", 0),
    # Pieces of a key block a chunk boundary cut off from its header: body lines (64 or 76
    # base64 characters, upper and lower case and digits) before the END line, or two or
    # more of them in a row; in JSON (a service-account key) the lines end in a literal \\n.
    ("PRIVATE_KEY", r"(?m)(?:^" + _BODY_LINE + r"\s*\n)+-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----", 0),
    ("PRIVATE_KEY", r"(?m)^" + _BODY_LINE + r"(?:[ \t]*\n^" + _BODY_LINE + r")+", 0),
    ("PRIVATE_KEY", r"(?:" + _BODY_LINE + r"\\n){2,}(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----(?:\\n)?)?", 0),
    # A key block in base64 (kubeconfig's client-key-data): "LS0tLS1CRUdJTi" is "-----BEGIN".
    ("PRIVATE_KEY", r"\bLS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2}", 0),
    ("PASSWORD_IN_URL", r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]+:([^\s@/'\"]{3,})@[\w.-]+", 1),
    ("PASSWORD_IN_URL", r"\bBUNDLE_[A-Z0-9_]+\s*[:=]\s*[\"']?[^\s:\"']+:([^\s\"';&]+)", 1),
    ("CREDENTIAL_IN_COMMAND", r"(?:-u|--user)\s+[\"']?\{?[^\s:\"'{}]*\}?[\"']?:[\"']?\{?([^\s\"'{}]{4,})\}?[\"']?", 1),
    ("CREDENTIAL_IN_COMMAND", r"(?:-u|--user)\s+[\"']?([^\s:\"']{8,}):[\"'\s]", 1),     # an API key as the user
    ("CREDENTIAL_IN_COMMAND", r"(?i)(?:-H|--header)\s+[\"'](?:authorization|x-[\w-]*(?:api-?key|token)|api-?(?:key|token))"
                              r"\s*:\s*(?:bearer\s+|basic\s+|token\s+|api-token\s+)?([^\s\"']{8,})", 1),
    ("SLACK_WEBHOOK", r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}", 0),
    ("DISCORD_WEBHOOK", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]{20,}", 0),
    # Slack's token types: bot, user, legacy bot, legacy workspace, legacy, config, refresh, app.
    ("SLACK_TOKEN", r"\b(?:xoxb-\d{10,13}-\d{10,13}[A-Za-z0-9-]*|xox[pe](?:-\d{10,13}){3}-[A-Za-z0-9-]{28,34}|"
                    r"xoxb-\d{8,14}-[A-Za-z0-9]{18,26}|xox[ar]-(?:\d-)?[0-9A-Za-z]{8,48}(?:-[0-9A-Za-z]+)*|"
                    r"xox[os]-\d+-\d+-\d+-[A-Fa-f0-9]+|xoxe\.xox[bp]-\d-[A-Za-z0-9]{163,166}|xoxe-\d-[A-Za-z0-9]{146}|"
                    r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)(?![\w-])", 0),
    ("GITHUB_TOKEN", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})", 0),
    ("GITLAB_TOKEN", r"\bglpat-[0-9A-Za-z_-]{20}(?![\w-])|\bglptt-[0-9a-f]{40}\b|\bgldt-[0-9A-Za-z_-]{20}(?![\w-])|"
                     r"\bglrt-[0-9A-Za-z_-]{20}(?![\w-])|\bglcbt-(?:[0-9a-fA-F]{1,5}_)?[0-9A-Za-z_-]{20}(?![\w-])", 0),
    ("AWS_KEY", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b", 0),
    ("AWS_BEDROCK_KEY", r"\b(?:ABSK[A-Za-z0-9+/]{100,}=*|bedrock-api-key-[A-Za-z0-9+/=]{100,})", 0),
    ("GCP_API_KEY", r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])", 0),
    ("GCP_SERVICE_ACCOUNT", r"\"type\"\s*:\s*\"service_account\"", 0),
    ("AZURE_CLIENT_SECRET", r"(?<![\w~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![\w~.-])", 0),
    ("GCP_SERVICE_ACCOUNT", r"\"private_key_id\"\s*:\s*\"([a-f0-9]{40})\"", 1),
    ("HUGGINGFACE_TOKEN", r"\b(?:hf_|api_org_)[A-Za-z]{34}\b", 0),
    ("NPM_TOKEN", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
    # A macaroon: its identifier and signature alone take 70+ characters; less is a cut-off copy.
    ("PYPI_TOKEN", r"\bpypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{70,}", 0),
    ("OPENAI_KEY", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}", 0),
    ("ANTHROPIC_KEY", r"\bsk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA(?![\w-])|\bsk-ant-o[ar]t01-[A-Za-z0-9_-]{40,}", 0),
    ("STRIPE_KEY", r"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,}", 0),
    ("SQUARE_TOKEN", r"\b(?:EAAA|sq0atp-)[A-Za-z0-9_-]{22,}", 0),
    ("SENDGRID_KEY", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b", 0),
    ("AGE_SECRET_KEY", r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b", 0),
    ("ONEPASSWORD_KEY", r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b", 0),
    ("SOURCEGRAPH_TOKEN", r"\bsgp_(?:(?:[a-fA-F0-9]{16}|local)_)?[a-fA-F0-9]{40}\b", 0),
    ("GRAFANA_TOKEN", r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b", 0),
    ("TERRAFORM_TOKEN", r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}", 0),
    ("JWT", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0),
    ("INTRA42_SECRET", r"\bs-s4t2(?:ud|af)-[0-9a-fA-F]{64}\b", 0),
    ("HEROKU_KEY", r"\bHRKU-AA[0-9A-Za-z_-]{58}(?![\w-])", 0),
    ("HEROKU_KEY", r"(?i)heroku[\w.-]{0,20}[\"']?\s*(?::=|=>|[:=])\s*[\"'`]?"
                   r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", 1),
    # Standalone, or in an API path (api.telegram.org/bot<token>/getMe).
    ("TELEGRAM_TOKEN", r"(?:(?<=/bot)|(?<![\w:-]))\d{8,10}:A[A-Za-z0-9_-]{34}(?![\w-])", 0),
    # .npmrc's per-registry line; legacy tokens are UUIDs.
    ("NPM_TOKEN", r"//[\w.-]+(?::\d+)?(?:/[\w.-]+)*/:_authToken=\s*[\"']?([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|"
                  r"npm_[A-Za-z0-9]{36})\b", 1),
    # name = value, name: value, "name": "value", f("name", "value") with a secret-sounding name.
    ("GENERIC_SECRET", r"(?i)[\"']?\b[\w.-]*" + SECRET_NAME + r"[\w-]*[\"']?\s*(?::=|[:=]|=>|,)\s*[\"']([^\s\"']{8,})[\"']", 1),
    ("GENERIC_SECRET", r"(?i)\b[\w.-]*" + SECRET_NAME + r"[\w-]*\s*(?::=|[:=])\s*([^\s\"',;]{12,})", 1),
    # In prose, as a model writes it: "the secret key is q8Vd2Lk9...", "password Xr7#kP2!vQ9m". The
    # value must mix letters and digits (a word after "key" is not a secret).
    ("SECRET", r"(?i)\b(?:secret|access|api|auth|bearer|private|client|deploy|signing)?[ _-]?(?:key|token|"
                        r"secret|password|passwd|pwd|passphrase|credentials?)s?\b[^\n.:=]{0,30}?[\s:=][\"'`]?"
                        r"((?=[A-Za-z0-9+/=_\-!#$%^&*@~]*\d)(?=[A-Za-z0-9+/=_\-!#$%^&*@~]*[A-Za-z])[A-Za-z0-9+/=_\-!#$%^&*@~]{10,})", 1),
]]

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
# Rules whose shape says nothing about a vendor; every other type is a vendor's format.
_FREE_FORM = ("GENERIC_SECRET", "SECRET", "PASSWORD_IN_URL", "CREDENTIAL_IN_COMMAND")
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


def _stand_in(kind: str, value: str) -> bool:
    """The filter every match of a type goes through, whoever found it."""
    named = kind in ("GENERIC_SECRET", "SECRET")
    if named and (entropy(value) < 3.0 or len(set(value)) < 6 or _TIME_UUID.fullmatch(value)):
        return True
    made_up_too = kind in _FREE_FORM and not (named and _KEY_HEX.fullmatch(value))
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
    for kind, pattern, group in _RULES:
        for match in pattern.finditer(text):
            value = match.group(group)
            start, end = match.span(group)
            if kind != "PRIVATE_KEY" and _stand_in(kind, value):
                continue
            if kind == "PRIVATE_KEY" and not match.group(0).startswith("-----BEGIN") and _public_block(text, start, value):
                continue
            if kind == "GENERIC_SECRET" and re.search(r"(?i)public|publishable", match.group(0).split(value)[0]):
                continue                                  # a public key or token is meant to be seen
            found.append(SecretMatch(start, end, kind, 0.9 if kind != "GENERIC_SECRET" else 0.7))
    found += _from_detect_secrets(text)
    # Overlapping matches: the longest wins, then the more specific type.
    return non_overlapping(found, lambda m: (-(m.end - m.start), m.type in ("GENERIC_SECRET", "SECRET"), m.start))


# detect-secrets runs ~25 detectors on every line (~1.7 ms a line): a line is only handed
# to it when it could hold what any of them finds: a long token with a digit in it, a
# credential keyword, credentials in a URL or a key block.
_WORTH_SCANNING = re.compile(r"(?<![\w+/=.~-])(?=[\w+/=.~-]{0,200}\d)[\w+/=.~-]{16,}|://[^\s/]*@|(?i:pass|pwd|secret|token|key|auth|cred|bearer|private|"
                             r"api|login|user)")
_KEY_END = re.compile(r"-----END (?:[A-Z]+ )*PRIVATE KEY")


def _from_detect_secrets(text: str) -> list[SecretMatch]:
    scan_line, default_settings = _detect_secrets()
    out, offset = [], 0
    with default_settings():
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
