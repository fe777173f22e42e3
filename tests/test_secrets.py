"""The secret detector (bot/guard/secrets.py): vendor tokens in their documented shapes are
found even when they look made up; values that say they stand in for a secret are not;
a key-length hex value under a secret's name is. Every token here is built in the test."""

from __future__ import annotations

import random
import string
import uuid

import pytest

from bot.guard.secrets import find_secrets

_RNG = random.Random(7)
ALNUM = string.ascii_letters + string.digits
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l".upper()


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def digits(n: int) -> str:
    return str(_RNG.randrange(1, 10)) + rand(n - 1, string.digits)


def found(text: str) -> list[tuple[str, str]]:
    return [(m.type, text[m.start:m.end]) for m in find_secrets(text)]


ANTHROPIC = "sk-ant-api03-" + rand(93, ALNUM + "_-") + "AA"
SLACK_WORKSPACE = f"xoxa-2-{digits(9)}-{digits(11)}-{digits(13)}-{rand(18, '0123456789abcdef')}"
TELEGRAM = f"{digits(10)}:AA{rand(33, ALNUM + '_-')}"
NPM_LEGACY = str(uuid.UUID(int=_RNG.getrandbits(128), version=4))
PYPI = "pypi-AgEIcHlwaS5vcmc" + rand(150, ALNUM + "_-")


@pytest.mark.parametrize("text, kind, token", [
    (f'age_key = "AGE-SECRET-KEY-1{(t := rand(58, BECH32))}"', "AGE_SECRET_KEY", f"AGE-SECRET-KEY-1{t}"),
    (f"ANTHROPIC_API_KEY={ANTHROPIC}", "ANTHROPIC_KEY", ANTHROPIC),
    (f"admin key: {(t := 'sk-ant-admin01-' + rand(93, ALNUM + '_-') + 'AA')}", "ANTHROPIC_KEY", t),
    (f"client secret {(t := 's-s4t2ud-' + rand(64, '0123456789abcdef'))}", "INTRA42_SECRET", t),
    (f'HEROKU_API_KEY = "{(t := str(uuid.UUID(int=_RNG.getrandbits(128), version=4)))}"', "HEROKU_KEY", t),
    (f"token {(t := 'HRKU-AA' + rand(58, ALNUM + '_-'))}", "HEROKU_KEY", t),
    (f"CI_JOB_TOKEN={(t := 'glcbt-' + rand(20))}", "GITLAB_TOKEN", t),
    (f"CI_JOB_TOKEN={(t := 'glcbt-6a_' + rand(20))}", "GITLAB_TOKEN", t),
    (f"slack: {SLACK_WORKSPACE}", "SLACK_TOKEN", SLACK_WORKSPACE),
    (f"curl https://api.telegram.org/bot{TELEGRAM}/getMe", "TELEGRAM_TOKEN", TELEGRAM),
    (f"//registry.npmjs.org/:_authToken={NPM_LEGACY}", "NPM_TOKEN", NPM_LEGACY),
    (f"twine upload -p {PYPI} dist/*", "PYPI_TOKEN", PYPI),
])
def test_vendor_tokens_are_found_whole(text, kind, token):
    assert found(text) == [(kind, token)]


@pytest.mark.parametrize("token, kind", [
    ("AKIA" + "Z" * 16, "AWS_KEY"),
    ("ASIA" + "Q" * 16, "AWS_KEY"),
    ("AGE-SECRET-KEY-1" + "Q" * 58, "AGE_SECRET_KEY"),
    (f"xoxa-{digits(9)}-{'1' * 11}-{'1' * 13}-{rand(18, '0123456789abcdef')}", "SLACK_TOKEN"),
])
def test_a_vendor_shaped_token_counts_even_when_it_looks_made_up(token, kind):
    assert found(f"key: {token}") == [(kind, token)]


@pytest.mark.parametrize("text", [
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",               # AWS's documentation example
    "aws_access_key_id = AKIA" + "X" * 16,                    # blanked out
    "GITHUB_TOKEN=ghp_" + "x" * 36,
    "token: <your-token>",
    "DATADOG_API_KEY={DatadogApiKey}",                        # a template's slot
    "export NPM_TOKEN=${NPM_TOKEN}",
    'curl -H "Authorization: Bearer $(gcloud auth print-access-token)" https://workflows.googleapis.com/v1/projects/x',
    "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
])
def test_documented_stand_ins_are_not_secrets(text):
    assert found(text) == []


@pytest.mark.parametrize("text", [
    f"xoxb-{digits(5)}-{rand(9)}",                           # Slack ids are 8+ digits
    "pypi-AgEIcHlwaS5vcmc" + rand(40, ALNUM),                 # cut off before its signature
    "sk-ant-api03-" + rand(93, ALNUM) + "BB",                 # Anthropic keys end in AA
    f"bot{TELEGRAM}",                                         # not standalone, not in an API path
    f"THEFORECASTINASIA{rand(16, string.ascii_uppercase)}9",  # AKIA/ASIA inside a word
])
def test_a_near_miss_of_a_vendor_shape_is_not_a_token(text):
    assert found(text) == []


def test_key_length_hex_under_a_secret_name_is_found_even_with_runs_in_it():
    hex48 = "1234567890abcdef" * 3
    assert found(f'hmac_secret = "{hex48}"') == [("GENERIC_SECRET", hex48)]
    random_hex = rand(40, "0123456789abcdef")
    assert found(f"secret_access_key: {random_hex}") == [("GENERIC_SECRET", random_hex)]
    # Not all hex: the run still reads as made up.
    assert found(f'hmac_secret = "{hex48}extra"') == []


def test_a_time_based_uuid_is_an_id_not_a_token():
    time_uuid = str(uuid.uuid1(node=0x0242AC120002, clock_seq=0x1D64))
    assert found(f"_authToken={time_uuid}") == []
    assert found(f"//registry.npmjs.org/:_authToken={time_uuid}") == [("NPM_TOKEN", time_uuid)]
    random_uuid = str(uuid.UUID(int=_RNG.getrandbits(128), version=4))
    assert found(f'api_token = "{random_uuid}"') == [("GENERIC_SECRET", random_uuid)]


def test_a_key_block_counts_only_with_a_body_or_cut_off():
    body = "\n".join(rand(64, ALNUM + "+/") for _ in range(3))
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    assert [kind for kind, _ in found(block)] == ["PRIVATE_KEY"]
    # Cut off before its body (a streamed answer, a truncated page): still flagged.
    assert [kind for kind, _ in found("the key:\n-----BEGIN RSA PRIVATE KEY-----\n")] == ["PRIVATE_KEY"]


HEX = "0123456789abcdef"
FLY = "FlyV1 fm2_" + rand(160, ALNUM + "+/")
FB_PAGE = "EAAG" + rand(180)
FB_APP = f"{digits(16)}|{rand(32, HEX)}"
UUID4 = str(uuid.UUID(int=_RNG.getrandbits(128), version=4))


@pytest.mark.parametrize("text, token", [
    (f"fly deploy --access-token '{FLY}'", FLY),                         # Fly.io's token, with its scheme word
    (f"page_token: {FB_PAGE}", FB_PAGE),                                 # a Facebook page token
    (f"graph.facebook.com/v19.0/me?access_token={FB_APP}", FB_APP),      # an app id and its secret
    (f"export SNYK_TOKEN={UUID4}", UUID4),                               # a credential's name, a UUID
    (f"SONAR_LOGIN={(h := rand(40, HEX))}", h),                           # a name ending in "login"
    (f"sonar.login: {h}", h),
    (f'MessageBirdClientID = "{UUID4}"', UUID4),                         # a service's name in camelCase
    (f"DATADOG_APP={(d := rand(40, HEX))}", d),
    (f"algolia_admin_key: {(a := rand(32, HEX))}", a),                   # any name ending in "key"
    (f"dop_v1_{(o := rand(64, HEX))}", f"dop_v1_{o}"),
    (f"LINEAR_API_KEY=lin_api_{(li := rand(40))}", f"lin_api_{li}"),
])
def test_tokens_the_detector_used_to_miss(text, token):
    assert any(value == token for _, value in found(text)), found(text)


@pytest.mark.parametrize("text", [
    '"key_vault_name": "web21prqodx24021"',           # "key" starts the name: a vault's name, not a key
    "sumOfExposures = 3Kof2VffNQ0QgYIhXUPJosVlCaQK",    # "sumo" inside a word is not Sumo Logic
    "sortKey: createdAtTimestamp",                     # an identifier, not a key's shape
    "slack_channel = engineering-alerts-2024",         # words and a year
    f"GIT_COMMIT={rand(40, HEX)}",                      # a commit id under a name that is no credential's
    "primary_key = customer_id_and_region",
    "keyboard_layout = us-international-2",
    f"ibm_iam_key = {'abcd1234' * 5}",                  # a value repeating itself is made up
])
def test_names_and_values_that_only_look_like_credentials(text):
    assert found(text) == []


def test_secrets_are_found_from_several_threads_at_once():
    """A server answering in parallel checks answers in threads; detect-secrets' settings
    are process-wide and broke under it ("dictionary changed size during iteration")."""
    import threading
    text = "config: api_key = 'AKIAIOSFODNN7EXAMPLX' and password = 'hunter2hunter2xyz9'\n" * 20
    alone = find_secrets(text)
    errors, results = [], []

    def scan():
        try:
            for _ in range(20):
                results.append(find_secrets(text))
        except Exception as exc:  # noqa: BLE001 - the failure under test
            errors.append(repr(exc))
    threads = [threading.Thread(target=scan) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and all(found == alone for found in results) and alone
