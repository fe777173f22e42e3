"""What the chat window shows and does, without a browser: the answer layout
(bot/present.py), its HTML (app.py), uploads (ingest/upload.py) and the service behind
the window (bot/service.py). The browser tests (test_browser.py) drive the real page."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import FakeGenerator, quote_passage

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def service(collection, fake_embedder):
    from bot.service import Service
    settings = collection.with_values("retrieval", min_score=0.0)
    svc = Service(settings, embedder=fake_embedder, generator=FakeGenerator(quote_passage))
    svc.warm_up("default")
    return svc


# --- layout and HTML ----------------------------------------------------------------------

def test_flagged_sentence_is_its_own_piece_and_sources_mark_the_restated_sentence(make_answerer):
    gen = FakeGenerator(lambda m: "Old keys stop working after 24 hours [1]. Keys are also printed and faxed "
                                  "to the CEO every Friday [1].")
    answer = make_answerer(gen).ask("When do old API keys stop working?")
    from bot.present import present
    view = present(answer)
    flagged = [p for p in view.pieces if p.flag]
    assert len(flagged) == 1 and "faxed to the CEO" in flagged[0].text
    assert "".join(p.text for p in view.pieces) == answer.text           # nothing lost or repeated
    [source] = view.sources
    assert source.n == 1 and source.source.endswith("faq.txt") and source.cited
    assert source.mark.startswith("Old keys stop working after 24 hours")
    assert source.text == answer.passages[0].text


def test_abstention_lists_the_closest_passages_uncited(make_answerer):
    from bot.present import present
    answer = make_answerer(FakeGenerator(lambda m: "I don't know.")).ask("What is the office VPN password?")
    view = present(answer)
    assert view.abstained and view.sources and not any(s.cited for s in view.sources)
    assert all(s.mark == "" for s in view.sources)
    # The statement is shown; the closest passages are the sources, not repeated in the text.
    shown = "".join(p.text for p in view.pieces)
    assert shown == answer.lead and "closest passages" in answer.text.lower() and "closest" not in shown.lower()
    assert [s.n for s in view.sources] == list(range(1, min(3, len(answer.passages)) + 1))


def test_html_escapes_document_text_and_links_only_listed_citations():
    from app import render_answer
    from bot.present import AnswerView, Piece, Source
    view = AnswerView(pieces=[Piece("Use <script>alert(1)</script> carefully [1] and [7].")],
                      sources=[Source(1, "a.md, Setup", "a.md", None, "Setup", "Run ", "<b>make</b>", ".", True)])
    out = render_answer(view, turn=5)
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;make&lt;/b&gt;" in out
    assert 'docent-to-5-1' in out and 'docent-src-5-1' in out
    assert "[7]" in out and "docent-to-5-7" not in out                   # no source [7]: plain text
    assert "<mark>&lt;b&gt;make&lt;/b&gt;</mark>" in out


def test_every_template_escapes_what_it_is_given():
    """Whatever reaches the window's HTML (flag messages, warnings, notes, source names,
    upload reasons, errors, status lines) comes out escaped, never as markup."""
    from app import render_answer, render_error, render_streaming, render_upload, render_working
    from bot.present import AnswerView, Piece, Source
    from bot.service import UploadResult
    bad = "<script>alert(1)</script>"
    flag = {"kind": "unsupported", "message": bad, "confidence": "high"}
    view = AnswerView(pieces=[Piece(f"Claim {bad} [1].", flag)],
                      sources=[Source(1, f"{bad}.md", "x.md", None, "", bad, bad, bad, True)],
                      warnings=[{"kind": "secret", "message": bad, "action": "redacted"}],
                      notes=[{"kind": "wrong_citation", "message": bad}])
    shown = [render_answer(view, turn=5), render_error(bad), render_streaming(bad), render_working(bad),
             render_upload([UploadResult(f"{bad}.md", "failed", reason=bad), UploadResult(bad, "added", 2)])]
    for out in shown:
        assert "<script" not in out and "&lt;script&gt;" in out
    answer = shown[0]
    assert answer.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 10 and 'title="&lt;script&gt;' in answer
    assert "<td>2 passages</td>" in shown[-1] and 'class="docent-upload-failed"' in shown[-1]


def test_the_templates_ship_with_the_package():
    import fnmatch
    import tomllib
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["docent"]
    templates = [p.relative_to(ROOT / "docent").as_posix() for p in (ROOT / "docent" / "templates").iterdir()]
    assert templates and all(any(fnmatch.fnmatch(t, pattern) for pattern in patterns) for t in templates)


def test_three_levels_a_warning_a_quiet_note_and_nothing():
    # Flagged with high confidence: a warning (⚠, listed). Not confirmed (low confidence): a
    # quiet mark, no warning. Supported: plain text.
    from app import render_answer
    from bot.answer import Answer
    from bot.present import present
    from bot.retrieval import Passage
    text = "Keys rotate every 90 days [1]. Rotation runs at night [1]. It needs a VPN [1]."
    sure = {"kind": "contradicted", "severity": "high", "span": [0, 30], "message": "contradicted: 90 vs 30",
            "evidence": 1, "action": "flagged", "score": 0.9, "confidence": "high"}
    unsure = {"kind": "unsupported", "severity": "low", "span": [31, 57], "message": "not confirmed by the passages",
              "evidence": 1, "action": "flagged", "score": 0.4, "confidence": "low"}
    passage = Passage((1,), "keys.md", None, None, (), "Keys rotate every 30 days. Rotation runs at night.", 1.0)
    view = present(Answer("q", "q", text, False, [passage], [1], flags=[sure, unsure]))
    levels = [(p.text, bool(p.flag), p.quiet) for p in view.pieces]
    assert levels[0] == (text[:30], True, False) and levels[2] == (text[31:57], True, True)
    out = render_answer(view, turn=1)
    assert out.count("⚠") == 2                    # the mark on the sentence and its line in the list
    assert 'class="docent-unconfirmed"' in out and "not confirmed by the passages" in out
    assert "It needs a VPN" in out and out.count("docent-flagged") == 1


def test_blocked_answer_shows_no_passages():
    from app import render_answer
    from bot.present import present
    from bot.answer import Answer
    from bot.retrieval import Passage
    passage = Passage((1,), "keys.md", None, None, (), "token ghp_x", 1.0)
    answer = Answer("q", "q", "This answer was withheld.", False, [passage], [], blocked=True,
                    flags=[{"kind": "secret", "severity": "high", "span": [0, 5], "message": "secret in the answer",
                            "evidence": None, "action": "blocked", "score": 1.0}])
    out = render_answer(present(answer))
    assert "Withheld" in out and "Secret (withheld)" in out and "keys.md" not in out


def test_app_help_is_fast_and_does_not_import_gradio():
    done = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--port" in done.stdout and "127.0.0.1" in done.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, app; print('gradio' in sys.modules)"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False"


def test_the_window_changes_files_without_a_login_only_on_a_loopback_address():
    from app import window_can_write
    from docent.settings import UiSettings
    for host in ("127.0.0.1", "::1", "localhost", "LOCALHOST", "[::1]", "127.0.0.2"):
        assert window_can_write(UiSettings(host=host)), host
    for host in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "docent.example.org", "localhost.example.org"):
        assert not window_can_write(UiSettings(host=host)), host
        assert window_can_write(UiSettings(host=host, user="ana", password="s3cret-pass")), host
        assert not window_can_write(UiSettings(host=host, user="ana")), host       # half a login is none


def test_the_host_option_is_the_host_the_window_is_built_for(monkeypatch):
    """`python app.py --host ADDR`: build() reads ui.host, so the option goes there."""
    from click.testing import CliRunner

    import app
    import bot.service
    seen = {}

    class NoModels:
        def __init__(self, settings, home=None):
            self.settings = settings

        def warm_up(self, collection):
            pass
    monkeypatch.setattr(bot.service, "Service", NoModels)
    monkeypatch.setattr(app, "build", lambda service: seen.setdefault("built", service.settings.ui.host))
    monkeypatch.setattr(app, "launch", lambda demo, service, host, port: seen.setdefault("launched", (demo, host)))
    done = CliRunner().invoke(app.main, ["--host", "0.0.0.0", "--port", "9999"])
    assert done.exit_code == 0, done.output
    assert seen == {"built": "0.0.0.0", "launched": ("0.0.0.0", "0.0.0.0")}


# --- uploads ------------------------------------------------------------------------------

def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_stage_refuses_with_reasons_and_copies_the_rest(tmp_path):
    from ingest.upload import stage_uploads
    (tmp_path / "in").mkdir()
    good = tmp_path / "in" / "notes.md"
    good.write_text("# Notes\n\nHello.\n")
    empty = tmp_path / "in" / "empty.txt"
    empty.write_text("")
    exe = tmp_path / "in" / "tool.exe"
    exe.write_bytes(b"MZ...")
    big = tmp_path / "in" / "big.txt"
    big.write_text("x" * 2048)
    staged, refused = stage_uploads([good, empty, exe, big], tmp_path / "up", max_bytes=1024)
    assert staged == [tmp_path / "up" / "notes.md"] and staged[0].read_text() == good.read_text()
    reasons = {r.name: r.reason for r in refused}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["tool.exe"].startswith("unsupported format (.exe)")
    assert "too large" in reasons["big.txt"] and "ui.max_upload_mb" in reasons["big.txt"]


def test_zip_with_unsafe_paths_or_too_much_data_is_refused_whole(tmp_path):
    from ingest.upload import stage_uploads
    slip = _zip(tmp_path / "slip.zip", {"ok.md": "# a\n\nb\n", "../../evil.md": "# x\n\ny\n"})
    bomb = _zip(tmp_path / "bomb.zip", {"a.txt": "0" * 5000})
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    staged, refused = stage_uploads([slip, bomb, corrupt], tmp_path / "up", max_bytes=4096)
    assert staged == []
    reasons = {r.name: r.reason for r in refused}
    assert "unsafe path" in reasons["slip.zip"]
    assert "unpacks to" in reasons["bomb.zip"]
    assert "not a valid zip" in reasons["corrupt.zip"]
    assert not (tmp_path / "evil.md").exists() and not list((tmp_path / "up").iterdir())


def test_reuploading_a_zip_replaces_its_folder_and_files_left_out_leave_the_index(service, tmp_path):
    first = _zip(tmp_path / "handbook.zip", {"travel.md": "# Travel\n\nTrains are booked by the travel desk.\n",
                                             "meals.md": "# Meals\n\nLunch is served at noon in the canteen.\n"})
    results = service.add_files([first], "default")
    assert sorted((r.name, r.action) for r in results) == [("handbook/meals.md", "added"), ("handbook/travel.md", "added")]
    (tmp_path / "v2").mkdir()
    second = _zip(tmp_path / "v2" / "handbook.zip", {"travel.md": "# Travel\n\nTrains are booked by the travel desk.\n"})
    results = {r.name: r.action for r in service.add_files([second], "default")}
    assert results == {"handbook/travel.md": "unchanged", "handbook/meals.md": "removed"}
    names = [service.display_name(r.path, "default") for r in service.sources("default")]
    assert "handbook/travel.md" in names and "handbook/meals.md" not in names


def test_a_zip_member_the_disk_will_not_take_is_refused_and_the_rest_of_the_batch_goes_in(service, tmp_path):
    # "a" is a file and a folder at once; a 300-character name is past the file system's limit.
    clash = _zip(tmp_path / "odd.zip", {"a": "plain", "a/b.md": "# B\n\nInside a.\n", "x" * 300 + ".md": "# X\n\nx\n",
                                        "good.md": "# Good\n\nThe canteen opens at eight.\n"})
    other = tmp_path / "other.md"
    other.write_text("# Other\n\nParking is behind the building.\n")
    results = {r.name: (r.action, r.reason) for r in service.add_files([clash, other], "default")}
    assert results["odd/good.md"][0] == "added" and results["other.md"][0] == "added"
    failed = {name: reason for name, (action, reason) in results.items() if action == "failed"}
    assert any(name.startswith("odd.zip: ") and "x" * 300 in name for name in failed)
    assert "odd.zip: a/b.md" in failed or "odd.zip: a" in failed
    assert all("cannot be unpacked here" in reason for name, reason in failed.items() if name.startswith("odd.zip"))
    assert "Traceback" not in "".join(failed.values())


def test_uploaded_file_is_answerable_and_removing_it_deletes_the_copy(service, tmp_path):
    upload = tmp_path / "holidays.md"
    upload.write_text("# Holidays\n\nThe office is closed on 3 March for the spring holiday.\n")
    [result] = service.add_files([upload], "default")
    assert (result.name, result.action) == ("holidays.md", "added")
    answer = service.stream("When is the office closed for the spring holiday?", [], "default").finish()
    assert "closed on 3 March" in answer.text and answer.citations[0]["source"].endswith("uploads/holidays.md")
    stored = answer.citations[0]["source"]
    assert service.remove(stored, "default") and not Path(stored).exists()
    assert "holidays.md" not in [service.display_name(r.path, "default") for r in service.sources("default")]


def test_the_collections_a_script_may_name_are_the_ones_the_window_offers(service, fake_embedder, tmp_path):
    from bot.answer import CollectionError
    from ingest.pipeline import Ingestor
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "pay.md").write_text("# Pay\n\nPaid monthly.\n")
    Ingestor(service.settings, embedder=fake_embedder).ingest([hr], "hr")
    assert service.offered_collections() == ["default", "hr"]
    assert service.offered("") == "default" and service.offered(" hr ") == "hr"
    with pytest.raises(CollectionError, match="no collection 'other'.*offers: default, hr"):
        service.offered("other")
    with pytest.raises(CollectionError, match="invalid collection name"):
        service.offered("../hr")
    files = service.file_list("hr")
    assert [(f["path"], f["name"], f["labels"]) for f in files] == [(str(hr / "pay.md"), str(hr / "pay.md"), {})]
    # A file is removed only from the collection asked, and only a file: never a folder's worth.
    assert not service.remove(str(hr / "pay.md"), "default") and not service.remove(str(hr), "hr")
    assert service.stored_path(str(hr / "pay.md"), "default") is None
    assert service.remove(str(hr / "pay.md"), "hr") and service.sources("hr") == []


def test_first_start_indexes_the_starter_docs_once(settings, fake_embedder, docs):
    from bot.service import Service
    fresh = settings.with_values("ui", starter_docs=str(docs)).with_values("retrieval", min_score=0.0)
    svc = Service(fresh, embedder=fake_embedder, generator=FakeGenerator(quote_passage))
    svc.warm_up("default")
    assert svc.ready.is_set() and svc.warm_up_error is None
    assert sorted(Path(r.path).name for r in svc.sources("default")) == ["faq.txt", "guide.rst", "install.md"]
    (docs / "later.md").write_text("# Later\n\nAdded after the first start.\n")
    Service(fresh, embedder=fake_embedder, generator=FakeGenerator()).warm_up("default")
    assert len(svc.sources("default")) == 3          # an existing collection is left as it is


# --- the conversation and feedback ---------------------------------------------------------

def test_follow_up_uses_the_history_the_window_keeps(collection, fake_embedder):
    from bot.service import Service
    gen = FakeGenerator(lambda m: "How long are backups kept?" if "Assistant: " in m[-1]["content"]
                        else quote_passage(m))
    svc = Service(collection.with_values("retrieval", min_score=0.0), embedder=fake_embedder, generator=gen)
    first = svc.stream("When do backups run?", [], None).finish()
    history = svc.remember([], first)
    assert history == [("When do backups run?", first.text)]
    follow = svc.stream("and how long are they kept?", history, None).finish()
    assert follow.standalone_question == "How long are backups kept?"
    assert follow.citations[0]["source"].endswith("guide.rst")


def test_a_stream_stopped_early_releases_the_model(service):
    run = service.stream("How do I rotate API keys?", [], None)
    next(iter(run))                        # the reader takes one piece, then stops
    iter(run).close()
    import threading
    done = []
    worker = threading.Thread(target=lambda: done.append(service.stream("How do I rotate API keys?", [], None).finish()),
                              daemon=True)
    worker.start()
    worker.join(timeout=20)                # waits forever if the first stream still held the model
    assert done and done[0].citations[0]["source"].endswith("faq.txt")


def test_feedback_lines_hold_the_question_and_answer(service):
    answer = service.stream("How do I rotate API keys?", [], None).finish()
    path = service.record_feedback("down", answer.question, answer.to_dict(), None)
    service.record_feedback("up", answer.question, answer.to_dict(), None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["rating"] for line in lines] == ["down", "up"]
    assert lines[0]["question"] == "How do I rotate API keys?" and lines[0]["answer"] == answer.text
    assert lines[0]["citations"][0]["source"].endswith("faq.txt") and lines[0]["collection"] == "default"
    assert path.stat().st_mode & 0o777 == 0o600          # questions may hold personal data: owner only
    # A key pasted into a question is kept masked, as the leak policy masks it in answers.
    service.record_feedback("down", "Is AKIAJ7Q3ZKXWPM4TNB2R still valid?", answer.to_dict(), None)
    assert "AKIAJ7Q3ZKXWPM4TNB2R" not in path.read_text() and "[AWS_KEY redacted]" in path.read_text()


def test_unknown_collection_is_a_clear_error(service):
    from bot.answer import CollectionError
    with pytest.raises(CollectionError, match="holds no documents yet"):
        service.stream("anything?", [], "nowhere")


def test_before_login_the_page_holds_nothing_about_the_collections_and_wrong_logins_wait(collection, fake_embedder):
    """Fetched without credentials over HTTP, the page names no indexed file (its config
    used to list them all); a wrong password is answered only after a wait."""
    import socket
    import time
    import urllib.error
    import urllib.request

    from app import build, launch
    from bot.service import Service
    settings = collection.with_values("ui", user="ana", password="s3cret-pass", starter_docs="")
    service = Service(settings, embedder=fake_embedder, generator=FakeGenerator())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build(service)
    launch(demo, service, "127.0.0.1", port, block=False)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "<html" in page
        assert not any(name in page for name in ("faq.txt", "guide.rst", "install.md"))

        def login(password: str) -> tuple[int, float]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/login", method="POST",
                                             data=f"username=ana&password={password}".encode(),
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            started = time.monotonic()
            try:
                code = urllib.request.urlopen(request, timeout=60).status
            except urllib.error.HTTPError as exc:
                code = exc.code
            return code, time.monotonic() - started
        code, waited = login("guess")
        assert code >= 400 and waited >= 0.9
        code, _ = login("s3cret-pass")
        assert code < 400
    finally:
        demo.close()


def test_wrong_logins_lock_the_login_for_a_while():
    import asyncio

    from bot.login import LoginThrottle
    now = [0.0]
    check = LoginThrottle("ana", "right", first_delay=0, lock_after=3, lock_seconds=60, clock=lambda: now[0])
    attempt = lambda password: asyncio.run(check.check("ana", password))
    assert attempt("right") and not attempt("wrong") and not attempt("wrong")
    assert not attempt("wrong")                 # the third in a row: locked
    assert not attempt("right")                 # even the right password, while locked
    now[0] += 61
    assert attempt("right") and check.failures == 0
    assert not asyncio.run(LoginThrottle("ana", "right", first_delay=0).check("bob", "right"))     # the user counts too
