"""The window's API as a script sees it: app.py launched on a free localhost port (fake
embedder, scripted model) and called through the real gradio_client. Four named
endpoints, JSON out; only the collections the window offers; adding and removing files
need a login; a refusal names nothing of another collection. And the window's own
handlers as a raw HTTP caller reaches them (by index, as the page calls them): without a
login they change files only when ui.host is a loopback address."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeGenerator, WindowPage, quote_passage
from tests.conftest import api_call as call
from tests.conftest import api_refusal as refusal

API = {"/ask", "/add_files", "/list_files", "/remove_file"}
USER, PASSWORD = "ana", "s3cret-pass"
CALL_SECONDS = 60            # every call is bounded: a hung server fails the test, not the run


def _scripted(messages) -> str:
    """Rewrites a follow-up (the prompt quotes the conversation) into a standalone question;
    otherwise quotes passage [1], cited."""
    return "How long are backups kept?" if "Assistant: " in messages[-1]["content"] else quote_passage(messages)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_collections(collection, fake_embedder, tmp_path) -> tuple:
    """The `docs` folder in "default", and a second collection "hr" with a file of its own."""
    from ingest.pipeline import Ingestor
    hr = tmp_path / "hr-docs"
    hr.mkdir()
    (hr / "salaries-2026.md").write_text("# Salaries\n\nThe salary review happens in April.\n", encoding="utf-8")
    Ingestor(collection, embedder=fake_embedder).ingest([hr], "hr")
    settings = collection.with_values("retrieval", min_score=0.0).with_values("ui", starter_docs="")
    return settings, str(hr / "salaries-2026.md")


@pytest.fixture
def served(fake_embedder):
    """serve(settings) -> (demo, port): the window built for `settings` and launched on a
    free 127.0.0.1 port whatever ui.host says (build() decides from ui.host alone); every
    window is closed afterwards."""
    from app import build, launch
    from bot.service import Service
    opened = []

    def serve(settings):
        service = Service(settings, embedder=fake_embedder, generator=FakeGenerator(_scripted))
        service.warm_up("default")
        demo = build(service)
        port = _free_port()
        launch(demo, service, "127.0.0.1", port, block=False)
        opened.append(demo)
        return demo, port
    yield serve
    for demo in opened:
        demo.close()


@pytest.fixture
def window(served):
    """open(settings, login=False) -> a gradio_client.Client of a window launched for
    `settings` (with ui.user/ui.password when `login`)."""
    from gradio_client import Client

    def open_window(settings, login: bool = False):
        if login:
            settings = settings.with_values("ui", user=USER, password=PASSWORD)
        _, port = served(settings)
        return Client(f"http://127.0.0.1:{port}/", auth=(USER, PASSWORD) if login else None,
                      verbose=False, httpx_kwargs={"timeout": CALL_SECONDS})
    return open_window


def test_the_api_is_the_four_named_endpoints_and_answers_in_json(window, two_collections):
    settings, _ = two_collections
    client = window(settings)
    named = client.view_api(return_format="dict", print_info=False)
    assert set(named["named_endpoints"]) == API and not named["unnamed_endpoints"]
    ask = named["named_endpoints"]["/ask"]
    assert [p["parameter_name"] for p in ask["parameters"]] == ["question", "collection", "history"]

    answer = call(client, "/ask", "How do I rotate API keys?", "default", None)
    assert {"answer", "abstained", "citations", "flags", "timings", "standalone_question"} <= set(answer)
    assert not answer["abstained"] and "[1]" in answer["answer"]
    assert answer["citations"][0]["source"].endswith("faq.txt") and "Rotate" in answer["citations"][0]["text"]

    # A follow-up with the conversation so far, as [standalone question, answer] pairs.
    follow = call(client, "/ask", "and how long are they kept?", "default",
                  [[answer["standalone_question"], answer["answer"]]])
    assert follow["standalone_question"] == "How long are backups kept?"
    assert follow["citations"][0]["source"].endswith("guide.rst")
    assert "pairs" in refusal(client, "/ask", "When?", "default", [["only one"]])

    # The window's own handlers are not the API: the client will not call them at all.
    with pytest.raises(ValueError, match="Invalid function index"):
        client.predict(fn_index=0)


def test_list_files_gives_the_files_with_their_labels(window, two_collections):
    settings, salaries = two_collections
    client = window(settings)
    files = call(client, "/list_files", "default")
    assert sorted(Path(f["source"]).name for f in files) == ["faq.txt", "guide.rst", "install.md"]
    assert all({"name", "n_chunks", "status", "labels", "restricted_by"} <= set(f) for f in files)
    assert [f["source"] for f in call(client, "/list_files", "hr")] == [salaries]


def test_only_the_collections_the_window_offers_can_be_named(window, two_collections):
    settings, _ = two_collections
    client = window(settings)
    message = refusal(client, "/ask", "How do I rotate API keys?", "nowhere", None)
    assert "no collection 'nowhere'" in message and "default, hr" in message
    assert "invalid collection name" in refusal(client, "/list_files", "../default")
    assert "invalid collection name" in refusal(client, "/ask", "Anything?", ".hidden", None)
    assert "Traceback" not in message and str(settings.home_dir()) not in message


def test_without_a_login_the_api_cannot_add_or_remove(window, two_collections, tmp_path):
    from gradio_client import handle_file
    settings, _ = two_collections
    client = window(settings)
    upload = tmp_path / "holidays.md"
    upload.write_text("# Holidays\n\nThe office is closed on 3 March.\n", encoding="utf-8")
    for message in (refusal(client, "/add_files", [handle_file(str(upload))], "default"),
                    refusal(client, "/remove_file", "faq.txt", "default")):
        assert "needs a login" in message and "DOCENT_UI__USER" in message and "DOCENT_UI__PASSWORD" in message
    assert len(call(client, "/list_files", "default")) == 3          # nothing added, nothing removed


def test_with_a_login_the_api_adds_and_removes_files(window, two_collections, tmp_path):
    from gradio_client import handle_file
    settings, _ = two_collections
    client = window(settings, login=True)
    upload = tmp_path / "holidays.md"
    upload.write_text("# Holidays\n\nThe office is closed on 3 March for the spring holiday.\n", encoding="utf-8")
    tool = tmp_path / "tool.exe"
    tool.write_bytes(b"MZ...")
    added = call(client, "/add_files", [handle_file(str(upload)), handle_file(str(tool))], "default")
    assert added["collection"] == "default"
    assert [(a["name"], a["action"]) for a in added["added"]] == [("holidays.md", "added")]
    assert [r["name"] for r in added["refused"]] == ["tool.exe"]
    assert added["refused"][0]["reason"].startswith("unsupported format")

    answer = call(client, "/ask", "When is the office closed for the spring holiday?", "default", None)
    assert "3 March" in answer["answer"] and answer["citations"][0]["source"].endswith("holidays.md")
    assert "holidays.md" in [f["name"] for f in call(client, "/list_files", "default")]

    assert call(client, "/remove_file", "holidays.md", "default") == {"collection": "default", "removed": "holidays.md"}
    assert "holidays.md" not in [f["name"] for f in call(client, "/list_files", "default")]
    # A collection the window does not offer is refused for writes too.
    assert "no collection 'new-one'" in refusal(client, "/add_files", [handle_file(str(upload))], "new-one")


def test_a_refused_remove_names_nothing_of_another_collection(window, two_collections):
    settings, salaries = two_collections
    client = window(settings, login=True)
    # hr's file asked of "default": refused, and the message names only "default".
    message = refusal(client, "/remove_file", salaries, "default")
    assert "collection 'default' holds no such file" in message
    assert "salaries" not in message and "hr-docs" not in message and "'hr'" not in message
    assert not any(name in message for name in ("faq.txt", "guide.rst", "install.md"))
    assert [f["source"] for f in call(client, "/list_files", "hr")] == [salaries]      # still there
    # A folder is not a file: nothing under it goes.
    assert "no such file" in refusal(client, "/remove_file", str(Path(salaries).parent), "hr")
    assert len(call(client, "/list_files", "hr")) == 1


# --- the window's own handlers, called over raw HTTP -----------------------------------------

def _holidays(tmp_path: Path) -> Path:
    upload = tmp_path / "holidays.md"
    upload.write_text("# Holidays\n\nThe office is closed on 3 March.\n", encoding="utf-8")
    return upload


def _stored(settings) -> list[str]:
    from ingest.pipeline import Ingestor
    return sorted(Path(record.path).name for record in Ingestor(settings).sources("default"))


def test_on_another_address_without_a_login_the_page_cannot_add_or_remove(served, two_collections, tmp_path):
    settings, _ = two_collections
    settings = settings.with_values("ui", host="0.0.0.0")
    demo, port = served(settings)
    before = _stored(settings)
    page = WindowPage(demo, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CALL_SECONDS))
    # The session's removal choices, as the page has them once it opened.
    _, _, chosen = page.call("open_page", "default")
    faq = next(path for _, path in chosen["choices"] if path.endswith("faq.txt"))
    result = page.call("upload", [page.upload(_holidays(tmp_path))], "default")
    assert "Adding and removing files is off" in result[0] and "DOCENT_UI__USER" in result[0]
    removed = page.call("remove", faq, "default")
    assert "Adding and removing files is off" in removed[0] and "DOCENT_UI__PASSWORD" in removed[0]
    assert _stored(settings) == before == ["faq.txt", "guide.rst", "install.md"]

    # And the page says why its controls are off.
    config = demo.get_config_file()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    assert not any(props[e]["interactive"] for e in ("docent-files", "docent-add", "docent-remove-file", "docent-remove"))
    assert "DOCENT_UI__USER" in props["docent-read-only"]["value"]


def test_on_a_loopback_address_the_page_adds_files_without_a_login(served, two_collections, tmp_path):
    settings, _ = two_collections
    demo, port = served(settings)                                # ui.host: the default, 127.0.0.1
    page = WindowPage(demo, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CALL_SECONDS))
    result = page.call("upload", [page.upload(_holidays(tmp_path))], "default")
    assert "holidays.md" in result[0] and "Adding and removing files is off" not in result[0]
    assert "holidays.md" in _stored(settings)


def test_a_window_built_for_loopback_is_not_launched_on_another_address(fake_embedder, two_collections):
    from app import build, launch
    from bot.service import Service
    settings, _ = two_collections
    service = Service(settings, embedder=fake_embedder, generator=FakeGenerator(_scripted))
    demo = build(service)
    with pytest.raises(ValueError, match="built to listen on 127.0.0.1"):
        launch(demo, service, "0.0.0.0", _free_port(), block=False)
