"""The shapes of secrets: one table, read by bot/guard/secrets.py.

Each rule is (type, gate, pattern, group): `gate` is a few lower-case literals of which
one must be in the text before the pattern runs at all (most texts hold no "xox" or
"dop_v1_"), so a long document is read by cheap substring checks and only the rules it
could match; `group` is the part of the match that is the secret.

Written from the vendors' documented token formats and gitleaks' rule list (MIT; read,
not copied), in three kinds:
- a vendor's prefix and shape (ghp_..., xoxb-..., dop_v1_...): a secret whatever the
  name it is given;
- a value assigned to a name that says it is a credential (`SNYK_TOKEN=`, `sonar.login:`,
  `"client_secret": "..."`), or to a name holding a service's name (`MessageBirdClientID`,
  `datadog_app = ...`): a secret when the value has a key's shape (checked in secrets.py);
- multi-line blocks and their pieces (private keys, JSON service-account keys).
"""

from __future__ import annotations

import re
from functools import lru_cache

# Words that make a name a credential's. `key` and `login` count at a word's end
# (admin_key, sonar.login), not inside one (monkey, keyboard).
SECRET_NAME = (r"(?:api[_-]?key|api[_-]?token|access[_-]?key(?:[_-]?id)?|access[_-]?id|secret(?:[_-]?key)?|"
               r"client[_-]?secret|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|passw(?:or)?d|passwd|"
               r"pwd|credentials?|private[_-]?key|bearer|user[_-]?auth|webhook[_-]?url|conn(?:ection)?[_-]?string)")
# Weaker words, counted only where they end the name (admin_key, sonar.login, MessageBirdClientID,
# GITLAB_PAT), never inside one (key_vault_name, keyboard): the value must then have a key's shape.
KEY_NAME = r"(?:key|login|pat|client[_-]?id|sid)"
# The start of a name's word: after a non-letter, or a lower-case letter before a capital (camelCase).
_WORD_START = r"(?:(?<![A-Za-z])|(?<=[a-z])(?-i:(?=[A-Z])))"
# Services whose name in a variable says its value is theirs (messagebird_client_id = <uuid>).
SERVICES = ("adafruit adobe airtable algolia alibaba amplitude anthropic artifactory asana atlassian auth0 azure "
            "bitbucket bittrex braintree buildkite bugsnag circleci cloudflare codecov cohere coinbase confluence "
            "confluent contentful databricks datadog digitalocean discord dockerhub doppler dropbox dynatrace "
            "easypost elastic etsy facebook fastly figma finicity firebase flickr flyio freshbooks gitter gitlab "
            "github gocardless grafana heroku honeybadger hubspot huggingface intercom jenkins jfrog jira klaviyo "
            "kraken kucoin launchdarkly linear linkedin loggly looker mailchimp mailgun mailjet mandrill mapbox "
            "mattermost messagebird message_bird mistral mixpanel mollie mongodb netlify newrelic new_relic nexmo notion npm "
            "nytimes okta openai pagerduty papertrail paypal pinecone plaid planetscale plivo postmark postman "
            "pulumi pusher rapidapi razorpay replicate rollbar rubygems segment sendbird sendgrid sendinblue "
            "sentry shippo shopify sinch slack snyk sonar sonarcloud sparkpost splunk square squarespace stripe "
            "sumo supabase telegram terraform travis twilio twitch twitter typeform vercel vonage yandex "
            "zendesk zoom").split()

# A service's name ending a name's word, then an assignment; applicable() compiles it for the
# services a text names (one alternation of 150 names at every position is slow).
_SERVICE_PATTERN = (r"(?i)" + _WORD_START + r"(?:{})(?-i:(?![a-z]))[\w.-]{{0,30}}?[\"']?\s*(?::=|[:=]|=>)\s*[\"'`]?"
                    r"([A-Za-z0-9][A-Za-z0-9_\-+/=.~]{{15,200}})")

# One line of a key block's body: base64 with both cases and a digit (hex is a hash, not a key).
BODY_LINE = r"(?=[A-Za-z0-9+/]{0,80}[a-z])(?=[A-Za-z0-9+/]{0,80}[A-Z])(?=[A-Za-z0-9+/]{0,80}\d)[A-Za-z0-9+/]{40,80}={0,2}"
# A gate can also be a regex ("re:..."): key-body lines need a run of 40 base64 characters.
_BASE64_RUN = r"re:[A-Za-z0-9+/]{40}"

_TABLE: list[tuple[str, str, str, int]] = [
    # -- multi-line: key blocks with a body (an empty template or "..." is documentation) --
    ("PRIVATE_KEY", "private key", r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----(?=[\s\S]{0,300}?[A-Za-z0-9+/=]{40})"
                                   r"[\s\S]{0,20000}?(?:-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----|$)", 0),
    # Pieces a chunk boundary cut off from the header: body lines before the END line, or
    # two or more in a row; in JSON (a service-account key) the lines end in a literal \n.
    ("PRIVATE_KEY", "private key", r"(?m)(?:^" + BODY_LINE + r"\s*\n)+-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----", 0),
    ("PRIVATE_KEY", _BASE64_RUN, r"(?m)^" + BODY_LINE + r"(?:[ \t]*\n^" + BODY_LINE + r")+", 0),
    ("PRIVATE_KEY", _BASE64_RUN, r"(?:" + BODY_LINE + r"\\n){2,}(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----(?:\\n)?)?", 0),
    # A key block in base64 (kubeconfig's client-key-data): "LS0tLS1CRUdJTi" is "-----BEGIN".
    ("PRIVATE_KEY", "ls0tls1crudjti", r"\bLS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2}", 0),
    ("GCP_SERVICE_ACCOUNT", "service_account", r"\"type\"\s*:\s*\"service_account\"", 0),
    ("GCP_SERVICE_ACCOUNT", "private_key_id", r"\"private_key_id\"\s*:\s*\"([a-f0-9]{40})\"", 1),
    # -- credentials in URLs and commands --
    ("PASSWORD_IN_URL", "://", r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]+:([^\s@/'\"]{3,})@[\w.-]+", 1),
    ("PASSWORD_IN_URL", "bundle_", r"\bBUNDLE_[A-Z0-9_]+\s*[:=]\s*[\"']?[^\s:\"']+:([^\s\"';&]+)", 1),
    ("CREDENTIAL_IN_COMMAND", "-u --user", r"(?:-u|--user)\s+[\"']?\{?[^\s:\"'{}]*\}?[\"']?:[\"']?\{?([^\s\"'{}]{4,})\}?[\"']?", 1),
    ("CREDENTIAL_IN_COMMAND", "-u --user", r"(?:-u|--user)\s+[\"']?([^\s:\"']{8,}):[\"'\s]", 1),     # an API key as the user
    ("CREDENTIAL_IN_COMMAND", "-h --header", r"(?i)(?:-H|--header)\s+[\"'](?:authorization|x-[\w-]*(?:api-?key|token)|"
                                             r"api-?(?:key|token))\s*:\s*(?:bearer\s+|basic\s+|token\s+|api-token\s+)?([^\s\"']{8,})", 1),
    ("SLACK_WEBHOOK", "hooks.slack.com", r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}", 0),
    ("DISCORD_WEBHOOK", "discord", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]{20,}", 0),
    ("TEAMS_WEBHOOK", "webhook.office.com", r"https://[\w-]+\.webhook\.office\.com/webhookb2/[\w@/-]{40,}", 0),
    # -- vendor prefixes and shapes --
    # Slack's token types: bot, user, legacy bot, legacy workspace, legacy, config, refresh, app.
    ("SLACK_TOKEN", "xox xapp", r"\b(?:xoxb-\d{10,13}-\d{10,13}[A-Za-z0-9-]*|xox[pe](?:-\d{10,13}){3}-[A-Za-z0-9-]{28,34}|"
                                r"xoxb-\d{8,14}-[A-Za-z0-9]{18,26}|xox[ar]-(?:\d-)?[0-9A-Za-z]{8,48}(?:-[0-9A-Za-z]+)*|"
                                r"xox[os]-\d+-\d+-\d+-[A-Fa-f0-9]+|xoxe\.xox[bp]-\d-[A-Za-z0-9]{163,166}|xoxe-\d-[A-Za-z0-9]{146}|"
                                r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)(?![\w-])", 0),
    ("GITHUB_TOKEN", "ghp_ gho_ ghu_ ghs_ ghr_ github_pat_", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})", 0),
    ("GITLAB_TOKEN", "glpat- glptt- gldt- glrt- glcbt- glagent- glimt- gloas- glsoat- glffct- glft- gr1348941 _gitlab_session",
     r"\b(?:glpat-[0-9A-Za-z_-]{20,}(?:\.[0-9a-z]{9})?|glptt-[0-9a-f]{40}|gldt-[0-9A-Za-z_-]{20}|glrt-[0-9A-Za-z_.-]{20,}|"
     r"glcbt-(?:[0-9a-fA-F]{1,5}_)?[0-9A-Za-z_-]{20}|glagent-[0-9A-Za-z_-]{50}|glimt-[0-9A-Za-z_-]{25}|gloas-[0-9A-Za-z_-]{64}|"
     r"glsoat-[0-9A-Za-z_-]{20}|glffct-[0-9A-Za-z_-]{20}|glft-[0-9A-Za-z_-]{20}|GR1348941[\w-]{20})(?![\w-])|"
     r"_gitlab_session=[0-9a-z]{32}\b", 0),
    ("AWS_KEY", "a3t akia asia abia acca", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b", 0),
    ("AWS_BEDROCK_KEY", "absk bedrock-api-key-", r"\b(?:ABSK[A-Za-z0-9+/]{100,}=*|bedrock-api-key-[A-Za-z0-9+/=]{100,})", 0),
    ("GCP_API_KEY", "aiza", r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])", 0),
    ("AZURE_CLIENT_SECRET", "q~", r"(?<![\w~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![\w~.-])", 0),
    ("HUGGINGFACE_TOKEN", "hf_ api_org_", r"\b(?:hf_|api_org_)[A-Za-z]{34}\b", 0),
    ("NPM_TOKEN", "npm_", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
    # .npmrc's per-registry line; legacy tokens are UUIDs.
    ("NPM_TOKEN", "_authtoken", r"//[\w.-]+(?::\d+)?(?:/[\w.-]+)*/:_authToken=\s*[\"']?([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-"
                                r"[0-9a-fA-F]{12}|npm_[A-Za-z0-9]{36})\b", 1),
    # A macaroon: its identifier and signature alone take 70+ characters; less is a cut-off copy.
    ("PYPI_TOKEN", "pypi-", r"\bpypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{70,}", 0),
    ("OPENAI_KEY", "t3blbkfj", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}", 0),
    ("ANTHROPIC_KEY", "sk-ant-", r"\bsk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA(?![\w-])|\bsk-ant-o[ar]t01-[A-Za-z0-9_-]{40,}", 0),
    ("STRIPE_KEY", "sk_live sk_test sk_prod rk_live rk_test rk_prod", r"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,}", 0),
    ("SQUARE_TOKEN", "eaaa sq0", r"\b(?:EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_-]{22,}", 0),
    ("FACEBOOK_TOKEN", "eaa", r"\bEAA[A-Z][A-Za-z0-9]{90,}", 0),
    # An app access token: the app id, "|" (or %7C in a URL), the app secret.
    ("FACEBOOK_TOKEN", "|", r"(?<![\w|])\d{15,16}(?:\||%7[Cc])[0-9A-Za-z_-]{27,40}(?![\w-])", 0),
    ("SENDGRID_KEY", "sg.", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b", 0),
    ("AGE_SECRET_KEY", "age-secret-key-1", r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b", 0),
    ("ONEPASSWORD_KEY", "a3- ops_", r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b|"
                                   r"\bops_eyJ[A-Za-z0-9+/]{200,}={0,3}", 0),
    ("SOURCEGRAPH_TOKEN", "sgp_", r"\bsgp_(?:(?:[a-fA-F0-9]{16}|local)_)?[a-fA-F0-9]{40}\b", 0),
    ("GRAFANA_TOKEN", "glsa_ glc_ eyjrijoi", r"\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b|\bglc_[A-Za-z0-9+/]{32,}={0,3}|"
                                             r"\beyJrIjoi[A-Za-z0-9]{70,}={0,3}", 0),
    ("TERRAFORM_TOKEN", "atlasv1", r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}", 0),
    ("JWT", "eyj", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0),
    ("INTRA42_SECRET", "s-s4t2", r"\bs-s4t2(?:ud|af)-[0-9a-fA-F]{64}\b", 0),
    ("HEROKU_KEY", "hrku-aa", r"\bHRKU-AA[0-9A-Za-z_-]{58}(?![\w-])", 0),
    # Standalone, or in an API path (api.telegram.org/bot<token>/getMe).
    ("TELEGRAM_TOKEN", ":a", r"(?:(?<=/bot)|(?<![\w:-]))\d{8,10}:A[A-Za-z0-9_-]{34}(?![\w-])", 0),
    ("FLYIO_TOKEN", "fm1 fm2_ fo1_", r"\b(?:FlyV1 )?(?:fm[12][ar]?_[A-Za-z0-9+/_-]{40,}={0,3}(?:,fm[12][ar]?_[A-Za-z0-9+/_-]{20,}={0,3})*|"
                                     r"fo1_[\w-]{43})", 0),
    ("DIGITALOCEAN_TOKEN", "_v1_", r"\bdo[opr]_v1_[a-f0-9]{64}\b", 0),
    ("DATABRICKS_TOKEN", "dapi", r"\bdapi[a-f0-9]{32}(?:-\d)?\b", 0),
    ("LINEAR_KEY", "lin_api_", r"\blin_api_[A-Za-z0-9]{40}\b", 0),
    ("NOTION_TOKEN", "ntn_ secret_", r"\bntn_\d{11}[A-Za-z0-9]{35}\b|\bsecret_[A-Za-z0-9]{43}\b", 0),
    ("NEW_RELIC_KEY", "nrak- nrii- nrjs-", r"\b(?:NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9-]{32}|NRJS-[a-f0-9]{19})\b", 0),
    ("PLANETSCALE_TOKEN", "pscale_", r"\bpscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}", 0),
    ("POSTMAN_KEY", "pmak-", r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b", 0),
    ("DYNATRACE_TOKEN", "dt0c01.", r"\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}\b", 0),
    ("VAULT_TOKEN", "hvs. hvb.", r"\bhv[sb]\.[\w-]{90,300}", 0),
    ("SHOPIFY_TOKEN", "shp", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b", 0),
    ("DOPPLER_TOKEN", "dp.", r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}\b", 0),
    ("PULUMI_TOKEN", "pul-", r"\bpul-[a-f0-9]{40}\b", 0),
    ("RUBYGEMS_KEY", "rubygems_", r"\brubygems_[a-f0-9]{48}\b", 0),
    ("SENTRY_TOKEN", "sntry", r"\bsntry[us]_[A-Za-z0-9+/=_]{60,}", 0),
    ("SENDINBLUE_KEY", "xkeysib- xsmtpsib-", r"\bx(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}\b", 0),
    ("MAILGUN_KEY", "key- pubkey-", r"(?i:mailgun)[\s\S]{0,40}?\b((?:pub)?key-[a-f0-9]{32})\b", 1),
    ("MAILCHIMP_KEY", "-us", r"\b[a-f0-9]{32}-us\d{1,2}\b", 0),
    ("TWILIO_KEY", "twilio", r"\b(?:SK|AC)[0-9a-f]{32}\b", 0),
    ("MAPBOX_TOKEN", "pk.eyj sk.eyj", r"\b[ps]k\.eyJ[A-Za-z0-9_-]{40,}\.[A-Za-z0-9_-]{20,}", 0),
    ("ARTIFACTORY_TOKEN", "akcp cmvmd", r"\bAKCp[A-Za-z0-9]{69}\b|\bcmVmd[A-Za-z0-9]{59}\b", 0),
    ("ATLASSIAN_TOKEN", "atatt", r"\bATATT3[A-Za-z0-9_=-]{180,}", 0),
    ("ALIBABA_KEY", "ltai", r"\bLTAI[A-Za-z0-9]{20}\b", 0),
    ("OTHER_VENDOR_TOKEN", "p8e- clojars_ pplx- pnu_ rdme_ tk-us- fio-u- ico- duffel_ ezak eztk shippo_ sm_ flwseck _mmk "
                           "sha256~ figd_ tfp_ pat. sat.",
     r"\b(?:p8e-[A-Za-z0-9]{32}|CLOJARS_[A-Za-z0-9]{60}|pplx-[A-Za-z0-9]{48}|pnu_[A-Za-z0-9]{36}|rdme_[a-z0-9]{70}|"
     r"tk-us-[\w-]{48}|fio-u-[\w=-]{64}|ico-[A-Za-z0-9]{32}|duffel_(?:test|live)_[\w=-]{43}|EZ[AT]K[A-Za-z0-9]{54}|"
     r"shippo_(?:live|test)_[a-fA-F0-9]{40}|sm_[ap]at_[A-Za-z0-9]{16}|sm_sat_[A-Za-z0-9]{16}|FLWSECK(?:_TEST)?-[a-h0-9]{32}-X|"
     r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk|sha256~[\w-]{43}|figd_[\w-]{40,}|tfp_[\w.=-]{59}|"
     r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20})(?![\w-])", 0),
    # -- names that say what the value is: name = value, name: value, "name": "value", f("name", "value") --
    ("GENERIC_SECRET", "", r"(?i)" + _WORD_START + SECRET_NAME + r"[\w-]*[\"']?\s*(?::=|[:=]|=>|,)\s*[\"']([^\s\"']{8,})[\"']", 1),
    ("GENERIC_SECRET", "", r"(?i)" + _WORD_START + SECRET_NAME + r"[\w-]*\s*(?::=|[:=])\s*([^\s\"',;]{12,})", 1),
    ("NAMED_KEY", "key login pat id sid", r"(?i)" + _WORD_START + KEY_NAME + r"[\"']?\s*(?::=|[:=]|=>)\s*[\"'`]?"
                                         r"([A-Za-z0-9][A-Za-z0-9_\-+/=.~]{15,200})", 1),
    ("HEROKU_KEY", "heroku", r"(?i)heroku[\w.-]{0,20}[\"']?\s*(?::=|=>|[:=])\s*[\"'`]?"
                             r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", 1),
    # A service's name before the assignment (messagebird_client_id, DATADOG_APP=...): the
    # value's shape decides (secrets.py: a key's shape, not a word, URL or path).
    ("SERVICE_CREDENTIAL", " ".join(SERVICES), _SERVICE_PATTERN.format("|".join(SERVICES)), 1),
    # In prose, as a model writes it: "the secret key is q8Vd2Lk9...", "password Xr7#kP2!vQ9m". The
    # value must mix letters and digits (a word after "key" is not a secret).
    ("SECRET", "", r"(?i)\b(?:secret|access|api|auth|bearer|private|client|deploy|signing)?[ _-]?(?:key|token|"
                   r"secret|password|passwd|pwd|passphrase|credentials?)s?\b[^\n.:=]{0,30}?[\s:=][\"'`]?"
                   r"((?=[A-Za-z0-9+/=_\-!#$%^&*@~]*\d)(?=[A-Za-z0-9+/=_\-!#$%^&*@~]*[A-Za-z])[A-Za-z0-9+/=_\-!#$%^&*@~]{10,})", 1),
]

# (type, gate literals (space-separated in the table) or one compiled regex, compiled
# pattern, group); an empty gate: the rule always runs.
RULES: list[tuple[str, tuple, re.Pattern, int]] = [
    (kind, (re.compile(gate[3:]),) if gate.startswith("re:") else tuple(gate.split()), re.compile(pattern), group)
    for kind, gate, pattern, group in _TABLE]
# Rules whose shape says nothing about a vendor; every other type is a vendor's format.
FREE_FORM = ("GENERIC_SECRET", "SECRET", "NAMED_KEY", "SERVICE_CREDENTIAL", "PASSWORD_IN_URL", "CREDENTIAL_IN_COMMAND")
# Rules that find a value by the name it is given: its shape is checked before it counts.
NAMED = ("GENERIC_SECRET", "SECRET", "NAMED_KEY", "SERVICE_CREDENTIAL")
# Of those, the ones whose name alone is weak evidence: the value must have a key's shape.
SHAPE_CHECKED = ("NAMED_KEY", "SERVICE_CREDENTIAL")


def applicable(lowered: str):
    """The rules whose gate the (lower-cased) text passes."""
    out = []
    for rule in RULES:
        gate = rule[1]
        if gate and isinstance(gate[0], re.Pattern):
            if gate[0].search(lowered):
                out.append(rule)
            continue
        present = [g for g in gate if g in lowered] if gate else None
        if present is None:
            out.append(rule)
        elif present and rule[0] == "SERVICE_CREDENTIAL":
            out.append((rule[0], rule[1], _service_rule(tuple(present)), rule[3]))
        elif present:
            out.append(rule)
    return out


@lru_cache(maxsize=512)
def _service_rule(names: tuple[str, ...]) -> re.Pattern:
    return re.compile(_SERVICE_PATTERN.format("|".join(names)))
