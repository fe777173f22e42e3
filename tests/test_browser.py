"""The chat window in a real browser: app.py started on a free localhost port (fake
embedder, scripted model, the real guard checks), driven through Debian's Chromium with
Playwright. Each step saves a screenshot under test-artifacts/browser/.

scripts/test installs chromium when it is missing; set DOCENT_SKIP_BROWSER=1 to skip
these tests on a machine without it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import FakeEmbedder, FakeGenerator, quote_passage

CHROMIUM = os.environ.get("DOCENT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
SECRET = "AKIAZ7Q3M5R2X9W4K6TB"

if os.environ.get("DOCENT_SKIP_BROWSER") == "1":
    pytest.skip("browser tests skipped (DOCENT_SKIP_BROWSER=1)", allow_module_level=True)


def _scripted(messages) -> str:
    """The model: quotes passage [1] faithfully, except for two planted failures."""
    question = messages[-1]["content"].rsplit("Question:", 1)[-1].lower()
    if "backups" in question:
        return ("Backups run nightly at 02:00 and are kept for 30 days [1]. "
                "Each backup is also mailed to the auditors in Geneva on a USB stick [1].")
    if "office network" in question:
        from bot.generators import GeneratorError
        raise GeneratorError("cannot reach the model server at http://127.0.0.1:9 (connection refused)")
    if "proxy" in question:
        return "Every workstation uses the outbound proxy proxy.corp.example on port 3128 [1]."
    if "deploy key" in question:
        return f"The staging deploy key is {SECRET} [1]."
    return quote_passage(messages)


class _SlowWhenAsked(FakeGenerator):
    """Streams word by word with a pause when the question says "slowly", so a test can
    see the answer grow."""

    def stream(self, messages, **kwargs):
        slow = "slowly" in messages[-1]["content"].rsplit("Question:", 1)[-1]
        for piece in super().stream(messages, **kwargs):
            if slow:
                time.sleep(0.25)
            yield piece


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from app import build, launch
    from bot.service import Service
    from docent.settings import load_settings
    from ingest.pipeline import Ingestor

    root = tmp_path_factory.mktemp("browser")
    docs = root / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text(
        "# API keys\n\nOpen the admin console and press Rotate to rotate the API keys. Old keys stop working "
        "after 24 hours.\n", encoding="utf-8")
    (docs / "backups.md").write_text(
        "# Backups\n\nBackups run nightly at 02:00 and are kept for 30 days. To restore, stop the service "
        "and run docent-restore.\n", encoding="utf-8")
    (docs / "deploy.md").write_text(
        f"# Deploying\n\nStaging deploys use the deploy key {SECRET} from the vault.\n", encoding="utf-8")
    settings = (load_settings(profile="test", env={}).with_values("paths", home=str(root / "home"))
                .with_values("retrieval", min_score=0.0).with_values("sources", site_delay_seconds=0))
    embedder = FakeEmbedder()
    Ingestor(settings, embedder=embedder).ingest([docs])
    # A documentation site on 127.0.0.1, crawled into the same collection: its citations link to the page.
    site = root / "site"
    site.mkdir()
    (site / "index.html").write_text(
        "<html><body><h1>Network</h1><p>Start here.</p><h2 id='proxy-settings'>Proxy settings</h2>"
        "<p>The outbound proxy is proxy.corp.example on port 3128 for every workstation.</p></body></html>",
        encoding="utf-8")
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    site_url = f"http://127.0.0.1:{server.server_address[1]}/"
    Ingestor(settings, embedder=embedder).ingest([site_url])
    server.shutdown()
    server.server_close()
    service = Service(settings, embedder=embedder, generator=_SlowWhenAsked(_scripted))
    service.warm_up("default")
    port = _free_port()
    demo = build(service)
    launch(demo, service, "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}", service, root
    demo.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/test (it installs it) or apt-get install chromium")
    from playwright.sync_api import sync_playwright
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.set_default_timeout(20_000)
    page.goto(app_url[0], wait_until="load")
    page.get_by_text("Ready.").wait_for()
    yield page
    context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _ask(page, question: str):
    """Type and send a question; wait for the finished answer; return its bubble."""
    bubbles = page.locator("#docent-chat .message.bot")
    before = bubbles.count()
    page.locator("#docent-question textarea").fill(question)
    page.locator("#docent-ask").click()
    page.wait_for_function(f"document.querySelectorAll('#docent-chat .message.bot').length > {before}")
    last = bubbles.nth(before)
    # The finished answer lists its sources (or says it abstained / failed).
    last.locator(".docent-sources, .docent-abstained, .docent-error, .docent-blocked").first.wait_for()
    return last


def test_page_loads_with_status_and_collection(page, app_url):
    _shot(page, "01-loaded")
    outside = [url for url in page.requested if not url.startswith((app_url[0], "data:", "blob:"))]
    assert page.requested and outside == []     # no fonts, scripts or analytics fetched from elsewhere
    assert "Ready." in page.locator("#docent-status").inner_text()
    assert "4 files" in page.locator("#docent-status").inner_text()       # three in a folder, one web page


def test_answer_streams_and_a_citation_opens_its_passage(page):
    answer = _ask(page, "How do I rotate the API keys?")
    assert "press Rotate" in answer.inner_text()
    source = answer.locator("details.docent-source").first
    assert not source.evaluate("d => d.open")          # closed until asked for
    _shot(page, "02-answer")
    answer.locator("a.docent-cite").first.click()
    assert source.evaluate("d => d.open")
    assert "faq.md" in source.locator("summary").inner_text()
    passage = source.locator(".docent-passage")
    assert passage.is_visible() and "Old keys stop working" in passage.inner_text()
    assert "press Rotate" in source.locator("mark").inner_text()     # the sentence the answer restates
    _shot(page, "03-citation-open")


def test_a_cited_web_page_opens_at_its_heading_in_a_new_tab(page):
    answer = _ask(page, "Which outbound proxy port does every workstation use?")
    assert "3128" in answer.inner_text()
    source = answer.locator("details.docent-source").first
    answer.locator("a.docent-cite").first.click()
    link = source.locator("a.docent-open")
    assert link.is_visible() and link.inner_text().startswith("Open the page")
    assert link.get_attribute("href").endswith("/#proxy-settings")
    assert link.get_attribute("target") == "_blank"
    _shot(page, "03b-page-link")


def test_the_answer_grows_while_the_model_writes(page):
    bubbles = page.locator("#docent-chat .message.bot")
    page.locator("#docent-question textarea").fill("Tell me slowly: how do I rotate the API keys?")
    page.locator("#docent-ask").click()
    growing = bubbles.first.locator(".docent-answer")
    page.wait_for_function("(() => { const a = document.querySelector('#docent-chat .message.bot .docent-answer');"
                           " return a && a.innerText.split(' ').length >= 3; })()")
    partial = growing.inner_text()
    assert bubbles.first.locator(".docent-sources").count() == 0          # not finished yet
    _shot(page, "02b-streaming")
    bubbles.first.locator(".docent-sources").wait_for()
    final = growing.inner_text()
    assert len(partial) < len(final) and final.startswith(partial.rstrip(" …"))


def test_unsupported_sentence_is_marked_with_its_reason(page):
    answer = _ask(page, "How long are backups kept?")
    flagged = answer.locator(".docent-flagged")
    assert flagged.count() == 1 and "auditors in Geneva" in flagged.inner_text()
    assert "02:00" not in flagged.inner_text()                        # the backed sentence is not marked
    assert "Not backed by the passages" in answer.locator(".docent-flags").inner_text()
    _shot(page, "04-unsupported-flag")


def test_secret_is_masked_with_a_warning(page):
    answer = _ask(page, "What is the staging deploy key?")
    text = answer.inner_text()
    assert SECRET not in text                                        # not in the answer nor the source shown
    assert "Secret (masked)" in answer.locator(".docent-warnings").inner_text()
    answer.locator("details.docent-source summary").first.click()
    assert SECRET not in answer.inner_text()
    _shot(page, "05-secret-masked")


def test_uploaded_file_is_answerable_and_a_corrupt_one_is_reported(page, app_url, tmp_path):
    good = tmp_path / "holidays.md"
    good.write_text("# Holidays\n\nThe office is closed on 3 March for the spring holiday.\n", encoding="utf-8")
    corrupt = tmp_path / "broken.pdf"
    corrupt.write_bytes(b"%PDF-1.7\nthis is not really a pdf\n")
    page.locator("#docent-files input[type=file]").set_input_files([str(good), str(corrupt)])
    page.locator("#docent-add").click()
    result = page.locator("#docent-upload-result table")
    result.wait_for()
    rows = result.inner_text()
    assert "holidays.md\tadded" in rows
    assert "broken.pdf\tfailed" in rows and "pdf" in page.locator(".docent-upload-failed").inner_text().lower()
    _shot(page, "06-upload-result")
    answer = _ask(page, "When is the office closed for the spring holiday?")
    assert "closed on 3 March" in answer.inner_text()
    assert "holidays.md" in answer.locator("details.docent-source summary").first.inner_text()
    _shot(page, "07-upload-answered")


def test_zip_of_a_folder_is_ingested(page, tmp_path):
    archive = tmp_path / "handbook.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("handbook/travel.md", "# Travel\n\nTrain tickets are booked through the travel desk.\n")
        zf.writestr("handbook/logo.psd", b"8BPS not a document")
    page.locator("#docent-files input[type=file]").set_input_files(str(archive))
    page.locator("#docent-add").click()
    page.locator("#docent-upload-result table").wait_for()
    rows = page.locator("#docent-upload-result").inner_text()
    assert "travel.md\tadded" in rows and "logo.psd\tskipped" in rows
    _shot(page, "08-zip-upload")


def test_bad_questions_show_a_message_and_the_app_keeps_going(page):
    page.locator("#docent-question textarea").fill("   ")
    page.locator("#docent-ask").click()
    page.get_by_text("the question is empty").first.wait_for()
    page.locator("#docent-question textarea").fill("why? " * 1000)
    page.locator("#docent-ask").click()
    page.get_by_text("characters long").first.wait_for()
    _shot(page, "09-bad-question")
    answer = _ask(page, "How do I rotate the API keys?")
    assert "press Rotate" in answer.inner_text()


def test_model_server_down_is_reported_and_the_app_keeps_going(page):
    answer = _ask(page, "How do I connect to the office network?")
    assert "cannot reach the model server" in answer.locator(".docent-error").inner_text()
    _shot(page, "10-model-down")
    assert "press Rotate" in _ask(page, "How do I rotate the API keys?").inner_text()


def test_empty_collection_says_so(page):
    collection = page.locator("#docent-collection input")
    collection.fill("empty-one")
    collection.press("Enter")
    page.get_by_text("is empty").first.wait_for()
    answer = _ask(page, "Anything there?")
    assert "holds no documents yet: add files" in answer.locator(".docent-error").inner_text()
    _shot(page, "11-empty-collection")


def test_feedback_is_saved(page, app_url):
    service = app_url[1]
    _ask(page, "How do I rotate the API keys?")
    page.locator("#docent-chat button[aria-label='Like']").last.click()
    path = service.feedback_path()
    page.get_by_text("feedback saved").first.wait_for()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[-1]["rating"] == "up" and "rotate" in lines[-1]["question"].lower()
    assert lines[-1]["citations"][0]["source"].endswith("faq.md")


def test_removing_a_file_from_the_sources_panel(page, app_url):
    page.get_by_text("Files in the collection").click()
    assert "deploy.md" in page.locator("#docent-sources").inner_text()
    page.locator("#docent-remove-file input").click()
    page.get_by_role("option", name="deploy.md").click()
    page.locator("#docent-remove").click()
    page.get_by_text("Removed").wait_for()
    assert "deploy.md" not in page.locator("#docent-sources").inner_text()
    _shot(page, "12-removed")


def test_login_required_when_a_user_is_set(browser, app_url):
    from app import build, launch
    from bot.service import Service
    service = app_url[1]
    guarded = Service(service.settings.with_values("ui", user="ana", password="s3cret-pass"),
                      embedder=service.retriever.embedder, generator=FakeGenerator(_scripted))
    port = _free_port()
    demo = build(guarded)
    launch(demo, guarded, "127.0.0.1", port, block=False)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}", wait_until="load")
        page.get_by_text("Login").first.wait_for()
        assert page.locator("#docent-chat").count() == 0              # nothing shown before logging in
        page.get_by_label("username").fill("ana")
        page.get_by_label("password").fill("s3cret-pass")
        page.get_by_role("button", name="Login").click()
        page.locator("#docent-chat").wait_for()
        _shot(page, "13-after-login")
        page.close()
    finally:
        demo.close()
