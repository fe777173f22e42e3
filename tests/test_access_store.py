"""The team server's access store (bot/access/users.py) and its commands
(docent/cli_access.py): users, tokens, groups and grants as a user of them would notice."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from bot.access import users as users_module
from bot.access.users import ADMIN_GROUP, AccessError, AccessStore, Grant, User
from docent.cli_access import access, users
from docent.settings import load_settings


@pytest.fixture
def store(tmp_path):
    return AccessStore(tmp_path / "home")


def _secret(token: str) -> str:
    assert token.startswith("dct_")
    return token[len("dct_") + 12 + 1:]


# -- users -------------------------------------------------------------------------------

def test_nothing_is_written_before_the_first_write(store):
    assert store.path == store.home / "access.db"
    assert not store.has_users()
    assert store.users() == [] and store.grants() == [] and store.user("alice") is None
    assert store.authenticate("dct_0123456789ab_" + "a" * 43) is None
    assert not store.path.exists() and not store.home.exists()


def test_add_list_remove(store):
    store.add_user("bob", ["eng"])
    store.add_user("alice", ["ops", "eng", "ops"])
    store.add_user("carol")
    assert store.has_users()
    listed = store.users()
    assert [u.name for u in listed] == ["alice", "bob", "carol"]
    alice = store.user("alice")
    assert alice == listed[0] and alice.groups == ("eng", "ops")
    assert store.user("carol").groups == ()
    assert alice.created.endswith("Z") and "T" in alice.created and len(alice.created) == len("2024-01-01T00:00:00Z")
    with pytest.raises(AccessError, match="exists"):
        store.add_user("alice")
    store.remove_user("bob")
    assert [u.name for u in store.users()] == ["alice", "carol"] and store.user("bob") is None
    with pytest.raises(AccessError, match="unknown user 'bob'"):
        store.remove_user("bob")
    store.remove_user("alice")
    store.remove_user("carol")
    assert not store.has_users()


def test_set_groups_replaces_them(store):
    store.add_user("alice", ["eng", "ops"])
    user = store.set_groups("alice", [ADMIN_GROUP, "eng", ADMIN_GROUP])
    assert user == User("alice", ("admin", "eng"), user.created)
    assert store.user("alice").groups == ("admin", "eng")
    assert store.set_groups("alice", []).groups == ()
    assert store.set_groups("alice", "eng").groups == ("eng",)      # one group, not its letters
    with pytest.raises(AccessError, match="unknown user 'zed'"):
        store.set_groups("zed", ["eng"])


@pytest.mark.parametrize("name", ["", "-alice", ".alice", "al ice", "al/ice", "alice\n", "élise", "a" * 65, "a;b"])
def test_bad_user_and_group_names_are_refused(store, name):
    with pytest.raises(AccessError, match="bad user name") as caught:
        store.add_user(name)
    assert "letters, digits" in str(caught.value) and "\n" not in str(caught.value).replace("\\n", "")
    with pytest.raises(AccessError, match="bad group name"):
        store.add_user("alice", [name])
    with pytest.raises(AccessError, match="bad group name"):
        store.grant(name, "docs")
    assert store.users() == [] and store.grants() == []


def test_good_names_at_the_edges(store):
    for name in ("a", "A.b_c-9", "9" * 64):
        store.add_user(name, [name])
    assert [u.name for u in store.users()] == sorted(["a", "A.b_c-9", "9" * 64])


# -- tokens ------------------------------------------------------------------------------

def test_the_token_authenticates_and_others_do_not(store):
    token = store.add_user("alice", ["eng"])
    other = store.add_user("bob")
    assert token.startswith("dct_") and token != other
    assert store.authenticate(token) == store.user("alice")
    assert store.authenticate(other).name == "bob"
    secret = _secret(token)
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (wrong, token[:-5], token + "x", "", "dct_", secret, token.replace("dct_", "xyz_"),
                token[:4] + "ffffffffffff" + token[16:], token[:17] + _secret(other), " " + token, None, 42):
        assert store.authenticate(bad) is None, bad


def test_a_rotated_token_stops_working_at_once(store):
    old = store.add_user("alice")
    new = store.rotate_token("alice")
    assert new != old
    assert store.authenticate(old) is None
    assert store.authenticate(new).name == "alice"
    with pytest.raises(AccessError, match="unknown user"):
        store.rotate_token("nobody")


def test_a_removed_users_token_stops_working(store):
    token = store.add_user("alice", ["eng"])
    store.remove_user("alice")
    assert store.authenticate(token) is None
    store.add_user("alice")                        # the same name again: the old token stays dead
    assert store.authenticate(token) is None
    assert store.user("alice").groups == ()


def test_unknown_and_malformed_tokens_cost_one_scrypt_too(store, monkeypatch):
    token = store.add_user("alice")
    calls = []
    real = users_module.hashlib.scrypt
    monkeypatch.setattr(users_module.hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    for probe in (token, "dct_ffffffffffff_" + _secret(token), "garbage", ""):
        calls.clear()
        store.authenticate(probe)
        assert len(calls) == 1, probe


def test_the_token_is_not_stored_in_the_file(store):
    tokens = [store.add_user("alice"), store.add_user("bob")]
    tokens.append(store.rotate_token("bob"))
    files = [p for p in store.home.iterdir() if p.name.startswith("access.db")]
    raw = b"".join(p.read_bytes() for p in files)
    assert raw.startswith(b"SQLite format 3")
    for token in tokens:
        assert _secret(token).encode() not in raw
        assert token.encode() not in raw
    assert tokens[0][4:16].encode() in raw        # the id is stored: the check can find things


# -- grants ------------------------------------------------------------------------------

def test_grants_are_idempotent_upgrade_and_revoke(store):
    assert store.grant("eng", "docs") == Grant("eng", "docs", None, False)
    assert store.grant("eng", "docs") == Grant("eng", "docs", None, False)
    assert store.grants() == [Grant("eng", "docs", None, False)]
    assert store.grant("eng", "docs", write=True) == Grant("eng", "docs", None, True)
    assert store.grant("eng", "docs") == Grant("eng", "docs", None, True)      # read again keeps write
    assert store.grants() == [Grant("eng", "docs", None, True)]
    store.grant("eng", "docs", "eng/**")
    assert len(store.grants()) == 2                                         # a glob is another grant
    assert store.revoke("eng", "docs") is True
    assert store.grants() == [Grant("eng", "docs", "eng/**", False)]
    assert store.revoke("eng", "docs") is False
    assert store.revoke("eng", "docs", "other/**") is False
    assert store.revoke("eng", "docs", "eng/**") is True
    assert store.grants() == []


def test_grants_are_sorted_and_filtered(store):
    store.grant("ops", "wiki", "b/**")
    store.grant("eng", "wiki", "z/**", write=True)
    store.grant("ops", "wiki")
    store.grant("eng", "docs", "a.md")
    store.grant("admin", "wiki", "a/**")
    assert [(g.collection, g.group, g.path) for g in store.grants()] == [
        ("docs", "eng", "a.md"), ("wiki", "admin", "a/**"), ("wiki", "eng", "z/**"),
        ("wiki", "ops", None), ("wiki", "ops", "b/**")]
    assert [g.group for g in store.grants("docs")] == ["eng"]
    assert store.grants("nothing") == []


@pytest.mark.parametrize("collection, path", [("", None), ("a/b", None), ("docs", ""), ("docs", "x" * 501),
                                              ("docs", "a\x00b")])
def test_bad_collections_and_globs_are_refused(store, collection, path):
    with pytest.raises(AccessError):
        store.grant("eng", collection, path)
    assert store.grants() == []
    store.grant("eng", "docs", "x" * 500)        # the longest glob allowed


# -- the file ----------------------------------------------------------------------------

def test_the_file_is_private_whatever_the_umask(store):
    old = os.umask(0)
    try:
        store.add_user("alice")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_two_threads_adding_users_at_once_all_land(store):
    start = threading.Barrier(2)
    tokens: dict[str, str] = {}
    errors = []

    def add(prefix):
        start.wait()
        try:
            for n in range(20):
                tokens[f"{prefix}{n}"] = store.add_user(f"{prefix}{n}", [prefix])
        except Exception as exc:            # noqa: BLE001 - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    listed = store.users()
    assert len(listed) == 40 and {u.name for u in listed} == set(tokens)
    assert store.authenticate(tokens["a7"]).groups == ("a",)
    assert store.authenticate(tokens["b19"]).name == "b19"


def test_a_file_from_a_newer_docent_is_refused(store):
    store.add_user("alice")
    with sqlite3.connect(store.path) as conn:
        conn.execute(f"PRAGMA user_version = {users_module.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(AccessError, match="newer docent"):
        store.users()
    with pytest.raises(AccessError, match="newer docent"):
        store.add_user("bob")


def test_an_older_empty_file_is_brought_up_to_date(store):
    store.home.mkdir(parents=True)
    sqlite3.connect(store.path).close()              # an empty database, user_version 0
    assert store.users() == []
    store.add_user("alice")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == users_module.SCHEMA_VERSION
    conn.close()


def test_a_corrupt_file_is_one_error_line(store):
    store.home.mkdir(parents=True)
    store.path.write_bytes(b"this is not a database, just some text" * 100)
    for call in (store.users, store.has_users, store.grants, lambda: store.add_user("alice"),
                 lambda: store.grant("eng", "docs"), lambda: store.authenticate("dct_0123456789ab_" + "a" * 43)):
        with pytest.raises(AccessError, match="the access file .*access.db cannot be read: ") as caught:
            call()
        assert "\n" not in str(caught.value)


# -- the commands ------------------------------------------------------------------------

@pytest.fixture
def run(tmp_path):
    settings = load_settings(profile="test", env={})

    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.obj = SimpleNamespace(settings=settings, home=tmp_path)

    root.add_command(users)
    root.add_command(access)
    return lambda *args: CliRunner().invoke(root, list(args))


def test_cli_users_add_prints_the_token_alone(run, tmp_path):
    done = run("users", "add", "alice", "--group", "eng", "--group", "admin")
    assert done.exit_code == 0, done.output
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and token.startswith("dct_")
    assert done.stderr == "the token is shown once: store it now\n"
    assert AccessStore(tmp_path).authenticate(token).groups == ("admin", "eng")

    again = run("users", "add", "alice")
    assert again.exit_code == 2 and again.stdout == ""
    assert again.stderr.startswith("docent: ") and "exists" in again.stderr and again.stderr.count("\n") == 1
    bad = run("users", "add", "bad name")
    assert bad.exit_code == 2 and "bad user name" in bad.stderr and bad.stderr.count("\n") == 1


def test_cli_users_list_groups_remove(run):
    run("users", "add", "bob")
    run("users", "add", "alice", "--group", "eng")
    listed = run("users", "list", "--json")
    assert listed.exit_code == 0
    data = json.loads(listed.stdout)
    assert [(u["name"], u["groups"]) for u in data] == [("alice", ["eng"]), ("bob", [])]
    assert all(u["created"].endswith("Z") for u in data)
    table = run("users", "list").stdout.splitlines()
    assert table[0].split() == ["name", "groups", "created"]
    assert table[1].split()[:2] == ["alice", "eng"] and table[2].split()[:2] == ["bob", "-"]

    changed = run("users", "groups", "bob", "--group", "ops", "--group", "eng")
    assert changed.exit_code == 0 and "eng, ops" in changed.stdout
    assert run("users", "groups", "bob").exit_code == 2
    assert run("users", "groups", "nobody", "--group", "x").exit_code == 2
    assert json.loads(run("users", "list", "--json").stdout)[1]["groups"] == ["eng", "ops"]
    assert run("users", "groups", "bob", "--clear").exit_code == 0
    assert json.loads(run("users", "list", "--json").stdout)[1]["groups"] == []

    assert run("users", "remove", "bob").exit_code == 0
    gone = run("users", "remove", "bob")
    assert gone.exit_code == 2 and "unknown user 'bob'" in gone.stderr
    assert [u["name"] for u in json.loads(run("users", "list", "--json").stdout)] == ["alice"]


def test_cli_users_token(run, tmp_path):
    first = run("users", "add", "alice").stdout.strip()
    refused = run("users", "token", "alice")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "hashed" in refused.stderr and "--rotate" in refused.stderr
    rotated = run("users", "token", "alice", "--rotate")
    assert rotated.exit_code == 0
    new = rotated.stdout.strip()
    assert rotated.stdout == new + "\n" and new != first
    store = AccessStore(tmp_path)
    assert store.authenticate(first) is None and store.authenticate(new).name == "alice"
    assert run("users", "token", "nobody", "--rotate").exit_code == 2


def test_cli_access_grant_list_revoke(run):
    run("users", "add", "alice", "--group", "eng")
    done = run("access", "grant", "eng", "--collection", "docs", "--path", "eng/**")
    assert done.exit_code == 0, done.output
    assert run("access", "grant", "ops", "--collection", "docs", "--write").exit_code == 0
    assert run("access", "grant", "eng", "--collection", "wiki").exit_code == 0
    data = json.loads(run("access", "list", "--json").stdout)
    assert data == [{"group": "eng", "collection": "docs", "path": "eng/**", "write": False},
                    {"group": "ops", "collection": "docs", "path": None, "write": True},
                    {"group": "eng", "collection": "wiki", "path": None, "write": False}]
    assert [g["collection"] for g in json.loads(run("access", "list", "--collection", "wiki", "--json").stdout)] == ["wiki"]
    table = [line.split() for line in run("access", "list", "--collection", "docs").stdout.splitlines()]
    assert table == [["group", "collection", "path", "access"], ["eng", "docs", "eng/**", "read"],
                     ["ops", "docs", "*", "read+write"]]

    missing = run("access", "revoke", "eng", "--collection", "docs")          # the grant has a path
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1 and "no grant" in missing.stderr
    assert run("access", "revoke", "eng", "--collection", "docs", "--path", "eng/**").exit_code == 0
    assert run("access", "revoke", "eng", "--collection", "docs", "--path", "eng/**").exit_code == 2
    assert [g["group"] for g in json.loads(run("access", "list", "--collection", "docs", "--json").stdout)] == ["ops"]
    bad = run("access", "grant", "eng", "--collection", "a/b")
    assert bad.exit_code == 2 and "bad collection name" in bad.stderr


def test_cli_help_explains_the_rules(run):
    grant_help = " ".join(run("access", "grant", "--help").stdout.split())      # help text is rewrapped
    for words in ("glob", "eng/**", "tail", "no grants", "every user", "admin"):
        assert words in grant_help, words
    for command in (("users",), ("users", "add"), ("users", "list"), ("users", "remove"), ("users", "groups"),
                    ("users", "token"), ("access",), ("access", "revoke"), ("access", "list")):
        shown = run(*command, "--help")
        assert shown.exit_code == 0 and "docent " in shown.stdout, command


def test_a_token_checked_again_skips_scrypt_yet_a_rotation_elsewhere_counts_at_once(tmp_path, monkeypatch):
    """A server checks the same token on every request: scrypt (~100 ms) runs once per
    token, while a rotation or removal by another process (the CLI) still counts at once."""
    from bot.access import users as users_module
    server_side, cli_side = AccessStore(tmp_path), AccessStore(tmp_path)
    token = cli_side.add_user("alice", ["eng"])
    calls = []
    real = users_module._scrypt
    monkeypatch.setattr(users_module, "_scrypt", lambda *a: calls.append(1) or real(*a))
    assert server_side.authenticate(token).name == "alice"
    assert server_side.authenticate(token).name == "alice"
    assert len(calls) == 1
    wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    assert server_side.authenticate(wrong) is None                 # same id, another secret: checked in full
    new = cli_side.rotate_token("alice")
    assert server_side.authenticate(token) is None
    assert server_side.authenticate(new).name == "alice"
    cli_side.remove_user("alice")
    assert server_side.authenticate(new) is None
