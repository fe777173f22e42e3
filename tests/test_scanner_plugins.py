"""Third-party guard checks: a package registers a scanner under the `docent.scanners`
entry point, settings guard.scanners names it, and the one policy step applies what its
findings say (flag, redact, block) as it does for docent's own checks."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from bot.guard import scanners
from conftest import FakeGenerator

# The module a plugin package would ship: internal host names in an answer, with the action
# the settings' guard section cannot express chosen by the factory's argument.
HOSTS_MODULE = '''
import re
from bot.guard.findings import Finding

HOST = re.compile(r"\\b[a-z0-9-]+\\.corp\\.example\\.com\\b")


class InternalHosts:
    def __init__(self, action):
        self.action = action

    def scan(self, question, answer, passages):
        return [Finding("internal_host", "medium", (m.start(), m.end()), f"the answer names an internal machine",
                        None, self.action, 1.0, replacement="[internal host]")
                for m in HOST.finditer(answer)]


def flagging(settings):
    return InternalHosts("flagged")


def redacting(settings):
    return InternalHosts("redacted")


def blocking(settings):
    return InternalHosts("blocked")


def quiet(settings):
    scanner = InternalHosts("flagged")
    scanner.may_block = False
    return scanner


def broken(settings):
    raise RuntimeError("no licence file")


NOT_CALLABLE = 3
'''

ENTRY_POINTS = """[docent.scanners]
hosts-flag = docent_hosts:flagging
hosts-redact = docent_hosts:redacting
hosts-block = docent_hosts:blocking
hosts-quiet = docent_hosts:quiet
hosts-broken = docent_hosts:broken
hosts-odd = docent_hosts:NOT_CALLABLE
"""

DOC = "Build servers\n\nThe nightly build runs on ci-07.corp.example.com and keeps logs for a week.\n"
ANSWER = "The nightly build runs on ci-07.corp.example.com [1]. It keeps logs for a week [1]."


@pytest.fixture
def installed(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "docent_hosts.py").write_text(HOSTS_MODULE)
    info = folder / "docent_hosts-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: docent-hosts\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(folder))
    scanners.forget_installed_scanners()
    yield folder
    scanners.forget_installed_scanners()
    sys.modules.pop("docent_hosts", None)


@pytest.fixture
def answerer(installed, make_answerer, docs):
    (docs / "build.md").write_text(DOC)
    from ingest.pipeline import Ingestor

    def make(*names):
        made = make_answerer(FakeGenerator(lambda m: ANSWER), guard={"scanners": names})
        Ingestor(made.settings, embedder=made.retriever.embedder).ingest([docs])
        return made
    return make


QUESTION = "Where does the nightly build run?"


def test_a_flagging_scanner_adds_its_flag_and_leaves_the_text(answerer):
    answer = answerer("hosts-flag").ask(QUESTION)
    flag = next(f for f in answer.flags if f["kind"] == "internal_host")
    assert answer.text == ANSWER and flag["action"] == "flagged"
    assert answer.text[flag["span"][0]:flag["span"][1]] == "ci-07.corp.example.com"


def test_a_redacting_scanner_has_its_span_replaced_and_other_flags_follow(answerer):
    answer = answerer("hosts-redact").ask(QUESTION)
    assert "corp.example.com" not in answer.text and "runs on [internal host] [1]" in answer.text
    flag = next(f for f in answer.flags if f["kind"] == "internal_host")
    assert answer.text[flag["span"][0]:flag["span"][1]] == "[internal host]"
    for other in answer.flags:        # every span still points into the text shown
        assert 0 <= other["span"][0] <= other["span"][1] <= len(answer.text)


def test_a_blocking_scanner_withholds_the_answer_before_any_of_it_is_shown(answerer):
    run = answerer("hosts-block").stream(QUESTION)
    events = list(run)
    answer = run.answer
    assert answer.blocked and "withheld" in answer.text and "internal host" in answer.text
    assert "corp.example.com" not in json.dumps(answer.to_dict()["answer"])
    sent = [e for e in events if e.kind in ("token", "replace")]
    assert [e.kind for e in sent] == ["token"] and sent[0].text == answer.text


def test_a_scanner_that_never_blocks_leaves_the_answer_streaming(answerer):
    events = list(answerer("hosts-quiet").stream(QUESTION))
    assert len([e for e in events if e.kind == "token"]) > 1       # word by word, not held back


def test_scanners_run_in_the_order_listed(answerer):
    answer = answerer("hosts-redact", "hosts-flag").ask(QUESTION)
    # Redacted first: the flagging one no longer sees a host name.
    assert [f["action"] for f in answer.flags if f["kind"] == "internal_host"] == ["redacted"]


@pytest.mark.parametrize("name, says", [
    ("hosts-typo", "unknown guard.scanners entry 'hosts-typo'"),
    ("hosts-broken", "cannot be made: no licence file"),
    ("hosts-odd", "is not a class or function"),
])
def test_a_bad_scanner_stops_the_command_at_start_with_one_line(installed, tmp_path, monkeypatch, name, says):
    from docent.cli import main
    monkeypatch.setenv("DOCENT_GUARD__SCANNERS", name)
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "ask", "Where does the build run?"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.output
    if name == "hosts-typo":
        assert "hosts-flag" in lines[0]          # the installed ones are named
