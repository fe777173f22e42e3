"""The chat window with docent's users, as the people at it would notice: each logs in
with their own name and password or API token, and everything the window and its API
show or change follows their grants. app.py is launched on a free 127.0.0.1 port (fake
embedder, scripted model); the API is called through gradio_client, the window's own
handlers over raw HTTP with the login cookie, as the page calls them.

The documents carry words found nowhere else ("quokkaberry", "91000", "marzipanic"), so
an hr document reaching alice would show in whatever she is given."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import FakeGenerator, WindowPage, quote_passage
from tests.conftest import api_call as call
from tests.conftest import api_refusal as refusal

ALICE_PASSWORD = "alice-long-password"
SECRET_WORDS = ("quokkaberry", "91000", "salaries.md", "marzipanic", "bonus.md")
SALARY_QUESTION = "What do the salary bands pay per year?"
CALL_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leaks(value) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value)
    return [word for word in SECRET_WORDS if word in text]


def _documents(settings, fake_embedder, root: Path) -> None:
    """Collection "default": eng/ and hr/ folders; collection "payroll": one file."""
    from ingest.pipeline import Ingestor
    (root / "corp" / "eng").mkdir(parents=True)
    (root / "corp" / "hr").mkdir()
    (root / "payroll").mkdir()
    (root / "corp" / "eng" / "deploy.md").write_text(
        "# Deploys\n\nDeploys use the zephyrine pipeline every Tuesday and pay attention to the tests.\n",
        encoding="utf-8")
    (root / "corp" / "hr" / "salaries.md").write_text(
        "# Salary bands\n\nThe quokkaberry salary band pays 91000 euros per year.\n", encoding="utf-8")
    (root / "payroll" / "bonus.md").write_text(
        "# Bonus\n\nThe marzipanic bonus is paid with the salary in March.\n", encoding="utf-8")
    ingestor = Ingestor(settings, embedder=fake_embedder)
    ingestor.ingest([root / "corp"], "default")
    ingestor.ingest([root / "payroll"], "payroll")


@pytest.fixture
def corp(settings, fake_embedder, tmp_path):
    """The documents, and no users."""
    _documents(settings, fake_embedder, tmp_path / "docs")
    return settings.with_values("retrieval", min_score=0.0).with_values("ui", starter_docs="")


@pytest.fixture
def team(corp):
    """alice (eng: default's eng/**, read only) with a password; bob (hr: all of default with
    write, and payroll) without one. Their tokens in `tokens`."""
    from bot.access.users import AccessStore
    store = AccessStore(corp.home_dir())
    tokens = {"alice": store.add_user("alice", ["eng"]), "bob": store.add_user("bob", ["hr"])}
    store.set_password("alice", ALICE_PASSWORD)
    store.grant("eng", "default", "eng/**")
    store.grant("hr", "default", write=True)
    store.grant("hr", "payroll")
    return SimpleNamespace(settings=corp, store=store, tokens=tokens)


@pytest.fixture
def serve(fake_embedder):
    """serve(settings) -> the window launched on a free 127.0.0.1 port (.port, .demo,
    .service, .generator: the scripted model, which keeps every prompt); closed afterwards."""
    from app import build, launch
    from bot.service import Service
    opened = []

    def start(settings):
        generator = FakeGenerator(quote_passage)
        service = Service(settings, embedder=fake_embedder, generator=generator)
        service.warm_up("default")
        demo = build(service)
        port = _free_port()
        launch(demo, service, "127.0.0.1", port, block=False)
        opened.append(demo)
        return SimpleNamespace(demo=demo, port=port, service=service, generator=generator)
    yield start
    for demo in opened:
        demo.close()


def login(window, name: str, secret: str):
    """POST /login as the page does: (status, seconds taken, an HTTP client holding the cookie)."""
    import httpx
    http = httpx.Client(base_url=f"http://127.0.0.1:{window.port}", timeout=CALL_SECONDS)
    started = time.monotonic()
    sent = http.post("/login", data={"username": name, "password": secret})
    return sent.status_code, time.monotonic() - started, http


def client(window, name: str | None = None, secret: str | None = None):
    """The API as a script sees it (gradio_client), logged in when a name is given."""
    from gradio_client import Client
    return Client(f"http://127.0.0.1:{window.port}/", auth=(name, secret) if name else None, verbose=False,
                  httpx_kwargs={"timeout": CALL_SECONDS})


def Page(window, name: str, secret: str) -> WindowPage:
    """One logged-in browser session without a browser, with the session's login cookie."""
    status, _, http = login(window, name, secret)
    assert status == 200, (name, status)
    return WindowPage(window.demo, http)


def _holidays(tmp_path: Path) -> Path:
    upload = tmp_path / "holidays.md"
    upload.write_text("# Holidays\n\nThe office is closed on 3 March for the spring holiday.\n", encoding="utf-8")
    return upload


def _stored(settings, collection: str = "default") -> list[str]:
    from ingest.pipeline import Ingestor
    return sorted(Path(record.path).name for record in Ingestor(settings).sources(collection))


# --- logging in -----------------------------------------------------------------------------

def test_alice_logs_in_with_her_password_or_her_token_and_nothing_else(team, serve):
    window = serve(team.settings)
    assert login(window, "alice", ALICE_PASSWORD)[0] == 200
    assert login(window, "alice", team.tokens["alice"])[0] == 200
    status, waited, _ = login(window, "alice", "not-her-password")
    assert status == 400 and waited >= 0.9              # the throttle: a wrong try waits
    assert login(window, "alice", team.tokens["bob"])[0] == 400     # bob's token is bob's only
    # Without a login the window's handlers are not reachable at all.
    import httpx
    anonymous = httpx.post(f"http://127.0.0.1:{window.port}/gradio_api/queue/join", timeout=CALL_SECONDS,
                           json={"data": ["default"], "fn_index": 0, "session_hash": "x", "event_data": None})
    assert anonymous.status_code == 401


def test_the_users_login_goes_through_the_one_throttle(team):
    from bot.login import LoginThrottle, UsersLogin
    check = LoginThrottle(verify=UsersLogin(team.store), first_delay=0, lock_after=3, lock_seconds=60)
    attempt = lambda name, secret: asyncio.run(check.check(name, secret))
    assert attempt("alice", ALICE_PASSWORD) and attempt("alice", team.tokens["alice"])
    assert attempt("bob", team.tokens["bob"])
    assert not attempt("bob", ALICE_PASSWORD)                     # her password is not his
    assert not attempt("carol", ALICE_PASSWORD)                   # no such user
    assert not attempt("alice", team.tokens["bob"])               # his token is not hers
    assert check.failures == 3
    for _ in range(2):
        assert not attempt("alice", "guess-guess-guess")
    assert not attempt("alice", ALICE_PASSWORD)                   # her third wrong try in a row: locked, right or not
    assert attempt("bob", team.tokens["bob"])                     # ...and only her: bob still gets in


def test_wrong_tries_across_many_names_lock_the_whole_login(team):
    from bot.login import LoginThrottle, UsersLogin
    check = LoginThrottle(verify=UsersLogin(team.store), first_delay=0, lock_after=3, lock_seconds=60)
    attempt = lambda name, secret: asyncio.run(check.check(name, secret))
    for n in range(15):                                           # one try per name: no name reaches 3
        assert not attempt(f"user{n}", "guess-guess-guess")
    assert not attempt("bob", team.tokens["bob"])                 # 5 x lock_after in a row: everyone waits


def test_the_shared_login_works_as_before_and_is_ignored_once_there_are_users(team, serve, capsys):
    from app import login_check
    window = serve(team.settings.with_values("ui", user="ana", password="s3cret-pass"))
    assert "ui.user and ui.password are not used" in capsys.readouterr().err
    assert login(window, "ana", "s3cret-pass")[0] == 400
    assert login(window, "alice", ALICE_PASSWORD)[0] == 200


def test_the_password_command_sets_a_password_that_logs_in(team, serve):
    from click.testing import CliRunner

    from docent.cli import main

    def run(*args, input=None):
        return CliRunner().invoke(main, ["--home", str(team.settings.home_dir()), "users", "password", *args],
                                  input=input, env={"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None})
    typed = run("bob", input="bob-long-password\nbob-long-password\n")
    assert typed.exit_code == 0, typed.output
    assert "bob-long-password" not in typed.stdout                # hidden input: never echoed
    short = run("bob", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and short.stderr.count("\n") == 1 and "12" in short.stderr
    unknown = run("carol", "--password-stdin", input="carol-long-password\n")
    assert unknown.exit_code == 2 and "unknown user 'carol'" in unknown.stderr
    window = serve(team.settings)
    assert login(window, "bob", "bob-long-password")[0] == 200   # the short one changed nothing

    piped = run("alice", "--password-stdin", input="a-new-long-password\n")
    assert piped.exit_code == 0, piped.output
    assert team.store.check_password("alice", "a-new-long-password").name == "alice"
    assert team.store.check_password("alice", ALICE_PASSWORD) is None
    cleared = run("alice", "--clear")
    assert cleared.exit_code == 0 and team.store.check_password("alice", "a-new-long-password") is None
    assert team.store.authenticate(team.tokens["alice"]).name == "alice"      # the token still works


# --- what each user sees ------------------------------------------------------------------------

def test_alice_never_sees_an_hr_document(team, serve):
    window = serve(team.settings)
    alice = client(window, "alice", ALICE_PASSWORD)
    answer = call(alice, "/ask", SALARY_QUESTION, "default", None)
    assert not _leaks(answer) and all("/eng/" in c["source"] for c in answer["citations"])
    assert not _leaks(window.generator.calls)                     # nothing of hr reached the model
    assert [Path(f["source"]).name for f in call(alice, "/list_files", "default")] == ["deploy.md"]
    message = refusal(alice, "/ask", "When is the bonus paid?", "payroll", None)
    assert "it offers: default)" in message and not _leaks(message)
    assert not _leaks(refusal(alice, "/list_files", "payroll"))

    # The window itself: the collection list, the file table, the answer with its sources.
    page = Page(window, "alice", team.tokens["alice"])
    choices, table, removable = page.call("open_page", "default")
    assert [name for _, name in choices["choices"]] == ["default"]
    assert [Path(row[0]).name for row in table["data"]] == ["deploy.md"] and not _leaks(removable)
    _, chat, _, _ = page.call("respond", SALARY_QUESTION, [], [], {}, "default")
    shown = json.dumps(chat)
    assert "deploy.md" in shown and not _leaks(shown)
    status = page.call("wait_ready", "default")[0]
    assert "1 files" in status                                    # hr's file is not even counted
    _, _, _, rows, _, status = page.call("switch", "payroll")
    assert not _leaks(rows) and "not one you may read" in status

    # bob, on the same window, reads them: the words above would show if they leaked.
    bob = client(window, "bob", team.tokens["bob"])
    assert "quokkaberry" in call(bob, "/ask", SALARY_QUESTION, "default", None)["answer"]
    assert [Path(f["source"]).name for f in call(bob, "/list_files", "payroll")] == ["bonus.md"]


def test_a_revoked_grant_counts_at_the_next_request(team, serve):
    window = serve(team.settings)
    alice = client(window, "alice", ALICE_PASSWORD)
    assert [Path(f["source"]).name for f in call(alice, "/list_files", "default")] == ["deploy.md"]
    team.store.revoke("eng", "default", "eng/**")                # no restart
    assert "no collection 'default'" in refusal(alice, "/list_files", "default")
    team.store.remove_user("alice")
    assert "log in as one of docent's users" in refusal(alice, "/ask", "When are deploys?", "default", None)


# --- who may change files ------------------------------------------------------------------------

def test_bob_may_upload_and_alice_is_refused_with_a_reason(team, serve, tmp_path):
    from gradio_client import handle_file
    window = serve(team.settings)
    before = _stored(team.settings)

    alice = client(window, "alice", ALICE_PASSWORD)
    message = refusal(alice, "/add_files", [handle_file(str(_holidays(tmp_path)))], "default")
    assert "may not add or remove files in collection 'default'" in message and "--write" in message
    assert "write grant" in refusal(alice, "/remove_file", "deploy.md", "default")
    page = Page(window, "alice", ALICE_PASSWORD)
    result = page.call("upload", [page.upload(_holidays(tmp_path))], "default")
    assert "write grant" in result[0]
    files, add, drop, note, _ = page.call("write_controls", "default")
    assert not any(control["interactive"] for control in (files, add, drop))
    assert note["visible"] and "write grant" in note["value"]
    assert _stored(team.settings) == before

    bob = client(window, "bob", team.tokens["bob"])
    added = call(bob, "/add_files", [handle_file(str(_holidays(tmp_path)))], "default")
    assert [(a["name"], a["action"]) for a in added["added"]] == [("holidays.md", "added")]
    assert "holidays.md" in _stored(team.settings)
    files, add, drop, note, _ = Page(window, "bob", team.tokens["bob"]).call("write_controls", "default")
    assert all(control["interactive"] for control in (files, add, drop)) and not note["visible"]
    # bob reads payroll but has no write grant there.
    assert "may not add or remove files in collection 'payroll'" in refusal(
        bob, "/add_files", [handle_file(str(_holidays(tmp_path)))], "payroll")
    assert call(bob, "/remove_file", "holidays.md", "default")["removed"] == "holidays.md"


def test_a_write_grant_on_a_folder_changes_only_that_folder(team, serve, tmp_path):
    from gradio_client import handle_file
    team.store.add_user("carol", ["docs"])
    team.store.set_password("carol", "carol-long-password")
    team.store.grant("docs", "default", "eng/**", write=True)
    window = serve(team.settings)
    carol = client(window, "carol", "carol-long-password")
    # The window's uploads go to the collection's uploads folder, which her grant does not cover.
    message = refusal(carol, "/add_files", [handle_file(str(_holidays(tmp_path)))], "default")
    assert "holidays.md" in message and "does not cover" in message
    [salaries] = [f["source"] for f in call(client(window, "bob", team.tokens["bob"]), "/list_files", "default")
                  if f["source"].endswith("salaries.md")]
    message = refusal(carol, "/remove_file", salaries, "default")
    assert "no such file" in message and not _leaks(message)                  # not hers to see
    team.store.grant("docs", "default", "hr/**")                             # now she reads hr, writes eng only
    assert "does not cover it" in refusal(carol, "/remove_file", salaries, "default")
    assert "salaries.md" in _stored(team.settings)
    [deploy] = [f["source"] for f in call(carol, "/list_files", "default") if f["source"].endswith("deploy.md")]
    assert call(carol, "/remove_file", deploy, "default")["removed"] == deploy
    assert _stored(team.settings) == ["salaries.md"]


def test_feedback_records_who_gave_it(team, serve):
    window = serve(team.settings)
    page = Page(window, "alice", ALICE_PASSWORD)
    _, chat, history, answers = page.call("respond", "When do deploys run?", [], [], {}, "default")
    page.call("feedback", answers, "default", event_data={"index": len(chat) - 1, "value": "", "liked": True})
    line = json.loads(window.service.feedback_path().read_text().splitlines()[-1])
    assert line["user"] == "alice" and line["rating"] == "up"


# --- without users ------------------------------------------------------------------------------

def test_without_users_the_window_is_as_before(corp, serve, tmp_path):
    from gradio_client import handle_file

    from app import login_check
    window = serve(corp)
    assert login_check(window.service) is None                   # no login asked for
    anyone = client(window)
    assert "quokkaberry" in call(anyone, "/ask", SALARY_QUESTION, "default", None)["answer"]
    assert sorted(Path(f["source"]).name for f in call(anyone, "/list_files", "default")) == ["deploy.md",
                                                                                               "salaries.md"]
    assert "needs a login" in refusal(anyone, "/add_files", [handle_file(str(_holidays(tmp_path)))], "default")
    assert not any(getattr(fn.fn, "__name__", None) == "write_controls" for fn in window.demo.fns.values())
    window.service.record_feedback("up", "q", {"answer": "a"}, "default")
    assert "user" not in json.loads(window.service.feedback_path().read_text().splitlines()[-1])
    # Users added while it runs: it has no login to tell them apart, so it stops answering.
    from bot.access.users import AccessStore
    AccessStore(corp.home_dir()).add_user("alice", ["eng"])
    assert "restart the window" in refusal(anyone, "/list_files", "default")


# --- the store ---------------------------------------------------------------------------------

def test_passwords_are_hashed_and_checked_with_the_same_work_for_anyone(team, monkeypatch):
    import hashlib
    import sqlite3

    from bot.access.users import AccessError
    assert ALICE_PASSWORD.encode() not in team.store.path.read_bytes()
    with pytest.raises(AccessError, match="at least|12 to"):
        team.store.set_password("bob", "eleven-char")
    with pytest.raises(AccessError, match="unknown user 'carol'"):
        team.store.set_password("carol", "carol-long-password")
    real, calls = hashlib.scrypt, []
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    for name, password in (("alice", ALICE_PASSWORD), ("alice", "wrong-password"), ("bob", "no-password-set"),
                           ("carol", "no-such-user"), ("../x", "bad-name"), ("alice", "")):
        calls.clear()
        found = team.store.check_password(name, password)
        assert (found is not None) == (password == ALICE_PASSWORD) and len(calls) == 1, (name, password)
    # An access file from before passwords is brought up to date, users and tokens kept.
    with sqlite3.connect(team.store.path) as conn:
        conn.execute("DROP TABLE passwords")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    team.store.set_password("bob", "bob-long-password")
    assert team.store.check_password("bob", "bob-long-password").groups == ("hr",)
    assert team.store.authenticate(team.tokens["alice"]).name == "alice"
