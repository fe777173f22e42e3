"""The documentation-site source (ingest/sources/site.py) against a real local HTTP server:
scope, robots.txt, sitemaps, the page budget, conditional re-syncs, faults, the header."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ingest.pipeline import Ingestor
from ingest.sources import SourceError, open_source
from ingest.document import LoadError
from ingest.sources.site import USER_AGENT, SiteSource


class _Handler(SimpleHTTPRequestHandler):
    """Static files with an ETag (mtime + size) and If-None-Match -> 304 (If-Modified-Since
    is the base class's); counts requests per path, keeps their headers and statuses, and
    answers 500 for the paths in server.broken."""

    def log_message(self, *args):
        pass

    def send_head(self):
        self._etag = None
        path = urlsplit(self.path).path
        self.server.hits[path] += 1
        self.server.seen.append(dict(self.headers))
        self.server.times.append(time.monotonic())
        if path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[path])
            self.end_headers()
            return None
        if path in self.server.broken:
            self.send_error(500)
            return None
        local = self.translate_path(self.path)
        if os.path.isdir(local):
            local = os.path.join(local, "index.html")
        if os.path.isfile(local):
            st = os.stat(local)
            etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return None
            self._etag = etag
        return super().send_head()

    def send_response(self, code, message=None):
        self.server.statuses.setdefault(urlsplit(self.path).path, []).append(code)
        super().send_response(code, message)

    def end_headers(self):
        if getattr(self, "_etag", None):
            self.send_header("ETag", self._etag)
            self._etag = None
        super().end_headers()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass                # a client that stops reading a page over its size limit: expected


def _page(title: str, words: str, links: str = "") -> str:
    return (f"<html><head><title>{title}</title></head><body><nav><a href='index.html'>Home</a></nav>"
            f"<h1>{title}</h1><p>{words} This paragraph has enough words to make one chunk of text "
            f"for the index, about {title.lower()} and nothing else.</p>{links}</body></html>")


@dataclass
class Site:
    root: Path
    server: ThreadingHTTPServer
    other: ThreadingHTTPServer
    url: str                     # the start URL, http://127.0.0.1:PORT/docs/

    def at(self, path: str) -> str:
        return self.url + path

    def write(self, path: str, text: str) -> None:
        file = self.root / "docs" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        old = file.stat().st_mtime_ns if file.exists() else 0
        file.write_text(text, encoding="utf-8")
        if old:                  # a new ETag even on a coarse clock
            os.utime(file, ns=(old + 10**9, old + 10**9))


PAGES = ("", "a.html", "sub/c.html", "guide.md", "b.html")       # what a full crawl yields, in order


@pytest.fixture
def site(tmp_path):
    servers = []

    def serve(folder: Path) -> ThreadingHTTPServer:
        folder.mkdir(parents=True, exist_ok=True)
        server = _Server(("127.0.0.1", 0), partial(_Handler, directory=str(folder)))
        server.hits, server.statuses, server.seen, server.broken = Counter(), {}, [], set()
        server.times, server.redirects = [], {}
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    other = serve(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "docs").mkdir()
    (tmp_path / "elsewhere" / "docs" / "y.html").write_text(_page("Elsewhere", "Another port."))
    root = tmp_path / "www"
    server = serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    s = Site(root, server, other, base + "/docs/")
    server.redirects["/docs/away.html"] = f"http://127.0.0.1:{other.server_address[1]}/docs/y.html"
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /docs/private/\n")
    s.write("index.html", _page("Welcome", "Start here for installing docent.", (
        "<a href='a.html'>A</a> <a href='a.html#part'>A again</a> <a href='./sub/c.html'>C</a>"
        "<a href='private/secret.html'>secret</a> <a href='../other/x.html'>other prefix</a>"
        f"<a href='http://127.0.0.1:{other.server_address[1]}/docs/y.html'>other port</a>"
        "<a href='mailto:docs@example.com'>mail</a> <a href='javascript:void(0)'>js</a>"
        "<a href='logo.png'>logo</a> <a href='guide.md'>guide</a> <a href='away.html'>redirected away</a>")))
    s.write("a.html", _page("Alpha", "Alpha explains backups.", "<a href='b.html'>B</a>"))
    s.write("b.html", _page("Bravo", "Bravo explains restores."))
    s.write("sub/c.html", _page("Charlie", "Charlie explains upgrades.", "<a href='../a.html'>A</a>"))
    s.write("guide.md", "# Guide\n\nThe guide explains the command line flags of docent in some detail.\n")
    s.write("logo.png", "not really a picture")
    s.write("private/secret.html", _page("Secret", "Never fetched."))
    (root / "other").mkdir()
    (root / "other" / "x.html").write_text(_page("Other", "Outside the prefix."))
    yield s
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fast(settings):
    return settings.with_values("sources", site_delay_seconds=0)


def _crawl(site: Site, settings, state=None, read=True) -> tuple[SiteSource, dict[str, bytes | None]]:
    """The source's items, read (as the pipeline reads a new page) or not (an unchanged one)."""
    source = open_source(site.url, workdir=Path("."), settings=settings, state=state)
    return source, {item.key: item.read(None) if read else None for item in source.items()}


def _stored(settings) -> set[str]:
    return {rec.path for rec in Ingestor(settings).sources()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the source alone -------------------------------------------------------------------

def test_crawl_stays_on_its_host_and_prefix_and_honours_robots(site, fast):
    source, pages = _crawl(site, fast)
    # Breadth-first, fragments dropped; the nav link to index.html is docs/ again (same bytes).
    assert list(pages) == [site.at(p) for p in PAGES]
    assert b"Alpha explains backups" in pages[site.at("a.html")]
    assert source.complete and not source.warnings and source.note == ""
    hits = site.server.hits
    assert hits["/docs/private/secret.html"] == 0 and hits["/other/x.html"] == 0 and hits["/docs/logo.png"] == 0
    assert sum(site.other.hits.values()) == 0 and hits["/docs/away.html"] == 1     # its redirect not followed
    assert all(v == 1 for p, v in hits.items() if p.startswith("/docs/") and p.endswith(".html"))
    assert all(h["User-Agent"] == USER_AGENT for h in site.server.seen)
    assert source.owns(site.at("gone.html")) and not source.owns(site.url[:-len("docs/")] + "other/x.html")
    assert set(source.state()["pages"]) == {site.at(p) for p in (*PAGES, "index.html")}   # the alias: a 304 next time


def test_sitemaps_at_the_prefix_and_in_robots_add_unlinked_pages(site, fast):
    site.write("orphan.html", _page("Orphan", "Only the sitemap knows it."))
    site.write("listed.html", _page("Listed", "Only robots.txt's sitemap knows it."))
    site.write("sitemap.xml", '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               f"<url><loc>{site.at('orphan.html')}</loc></url>"
               f"<url><loc>{site.url[:-len('docs/')]}other/x.html</loc></url></urlset>")
    (site.root / "maps").mkdir()
    (site.root / "maps" / "more.xml").write_text(f"<urlset><url><loc>{site.at('listed.html')}</loc></url></urlset>")
    (site.root / "robots.txt").write_text(f"User-agent: *\nDisallow: /docs/private/\n"
                                          f"Sitemap: {site.url[:-len('docs/')]}maps/more.xml\n")
    _, pages = _crawl(site, fast)
    assert site.at("orphan.html") in pages and site.at("listed.html") in pages
    assert site.server.hits["/other/x.html"] == 0


def test_the_page_budget_stops_the_crawl_and_says_so(site, fast):
    source, pages = _crawl(site, fast.with_values("sources", site_max_pages=3))
    asked = [p for p in site.server.hits if p.startswith("/docs/") and not p.endswith(".xml")]
    assert len(asked) == 3 and len(pages) == 2 and not source.complete      # docs/, its alias index.html, a
    assert "page budget (3 pages" in source.note


def test_requests_wait_the_delay_between_them(site, fast):
    _crawl(site, fast.with_values("sources", site_delay_seconds=0.1, site_max_pages=2))
    times = site.server.times
    assert len(times) >= 4 and min(b - a for a, b in zip(times, times[1:])) >= 0.09


def test_a_page_over_the_size_limit_is_refused_while_downloading(site, fast):
    site.write("big.html", _page("Big", "word " * 50_000))
    site.write("b.html", _page("Bravo", "Bravo explains restores.", "<a href='big.html'>big</a>"))
    source = SiteSource(site.url, settings=fast.sources)
    outcome = {}
    for item in source.items():
        try:
            outcome[item.key] = len(item.read(4096))
        except LoadError as exc:
            outcome[item.key] = str(exc)
    assert outcome[site.at("big.html")].startswith("too large")
    assert all(isinstance(v, int) for k, v in outcome.items() if k != site.at("big.html"))
    assert "hash" not in source.state()["pages"][site.at("big.html")]       # asked for whole next time


def test_an_in_site_redirect_is_indexed_under_its_target_and_resynced_with_a_304(site, fast):
    site.server.redirects["/docs/moved.html"] = site.at("sub/c.html")
    site.write("guide.md", "# Guide\n\nSee [the moved page](moved.html) for the command line flags.\n")
    site.write("index.html", _page("Welcome", "Start here.", "<a href='moved.html'>moved</a> <a href='a.html'>A</a>"))
    source, pages = _crawl(site, fast)
    assert list(pages) == [site.url, site.at("sub/c.html"), site.at("a.html"), site.at("b.html")]
    assert site.server.hits["/docs/sub/c.html"] == 1           # the direct link from a.html is not asked again
    site.server.statuses.clear()
    again, pages = _crawl(site, fast, source.state(), read=False)
    assert list(pages) == [site.url, site.at("sub/c.html"), site.at("a.html"), site.at("b.html")]
    assert site.server.statuses["/docs/moved.html"] == [302] and site.server.statuses["/docs/sub/c.html"] == [304]


def test_a_page_that_fails_is_kept_and_warned_about(site, fast):
    source, _ = _crawl(site, fast)
    site.server.broken.add("/docs/a.html")
    again, pages = _crawl(site, fast, source.state())
    assert site.at("a.html") not in pages and site.at("b.html") in pages     # reached through a's stored links
    assert again.complete and not again.owns(site.at("a.html")) and again.owns(site.at("b.html"))
    assert len(again.warnings) == 1 and "a.html: HTTP 500" in again.warnings[0]
    assert site.at("a.html") in again.state()["pages"]


def test_the_header_named_in_settings_reaches_the_site_and_is_not_stored(site, fast, monkeypatch):
    monkeypatch.setenv("DOCS_AUTH", "Authorization: Bearer sekrit-token")
    source, _ = _crawl(site, fast.with_values("sources", site_header_env="DOCS_AUTH"))
    assert site.server.seen and all(h.get("Authorization") == "Bearer sekrit-token" for h in site.server.seen)
    assert "sekrit" not in repr(source.state())
    monkeypatch.setenv("DOCS_AUTH", "no colon sekrit")
    with pytest.raises(SourceError, match="DOCS_AUTH") as caught:
        _crawl(site, fast.with_values("sources", site_header_env="DOCS_AUTH"))
    assert "sekrit" not in str(caught.value)


def test_a_start_url_that_cannot_be_fetched_is_a_source_error(site, fast):
    dead = f"http://127.0.0.1:{_free_port()}/docs/"
    with pytest.raises(SourceError, match="connection refused") as caught:
        list(SiteSource(dead, settings=fast.sources).items())
    assert str(caught.value).startswith(dead)
    with pytest.raises(SourceError, match="404"):
        list(SiteSource(site.at("nothing/"), settings=fast.sources).items())
    site.server.broken.add("/robots.txt")           # RFC 9309: a failing robots.txt allows nothing
    with pytest.raises(SourceError, match="robots.txt: HTTP 500"):
        list(SiteSource(site.url, settings=fast.sources).items())


# -- through the pipeline -------------------------------------------------------------

def test_resync_with_nothing_changed_asks_once_per_page_and_embeds_nothing(site, fast, fake_embedder):
    ingestor = Ingestor(fast, fake_embedder)
    first = ingestor.ingest([site.url])
    assert first.count("added") == len(PAGES) and first.exit_code == 0
    assert _stored(fast) == {site.at(p) for p in PAGES}
    site.server.hits.clear()
    site.server.statuses.clear()
    report = ingestor.sync()
    assert report.chunks_embedded == 0 and report.count("unchanged") == len(PAGES)
    assert not report.source_errors and report.count("removed") == 0
    pages = {"/docs/" + p for p in (*PAGES, "index.html")}
    assert {p: n for p, n in site.server.hits.items() if p in pages} == {p: 1 for p in pages}
    assert {p: s for p, s in site.server.statuses.items() if p in pages} == {p: [304] for p in pages}


def test_an_edited_page_is_updated_and_a_deleted_one_leaves(site, fast, fake_embedder):
    ingestor = Ingestor(fast, fake_embedder)
    ingestor.ingest([site.url])
    site.write("b.html", _page("Bravo", "Bravo now explains restores from tape, step by step."))
    (site.root / "docs" / "sub" / "c.html").unlink()
    report = ingestor.sync()
    assert [r.path for r in report.results if r.action == "updated"] == [site.at("b.html")]
    assert [r.path for r in report.results if r.action == "removed"] == [site.at("sub/c.html")]
    assert all("tape" in t for t in fake_embedder.embedded_texts[-report.chunks_embedded:])
    assert _stored(fast) == {site.at(p) for p in PAGES if p != "sub/c.html"}


def test_a_budget_cut_sync_removes_nothing(site, fast, fake_embedder):
    Ingestor(fast, fake_embedder).ingest([site.url])
    (site.root / "docs" / "b.html").unlink()        # not reached within the budget anyway
    report = Ingestor(fast.with_values("sources", site_max_pages=3), fake_embedder).sync()
    assert report.count("removed") == 0
    assert _stored(fast) == {site.at(p) for p in PAGES}


def test_a_500_on_resync_keeps_the_page(site, fast, fake_embedder):
    ingestor = Ingestor(fast, fake_embedder)
    ingestor.ingest([site.url])
    site.server.broken.add("/docs/b.html")
    report = ingestor.sync()
    assert report.count("removed") == 0 and not report.source_errors
    assert _stored(fast) == {site.at(p) for p in PAGES}


def test_a_site_that_is_down_is_reported_and_the_index_stays(site, fast, fake_embedder):
    ingestor = Ingestor(fast, fake_embedder)
    ingestor.ingest([site.url])
    site.server.shutdown()
    site.server.server_close()
    report = ingestor.sync()
    assert [spec for spec, _ in report.source_errors] == [site.url]
    assert "connection refused" in report.source_errors[0][1] and report.exit_code != 0
    assert report.count("removed") == 0 and _stored(fast) == {site.at(p) for p in PAGES}


def test_a_page_removed_from_the_index_comes_back_on_sync_despite_its_304(site, fast, fake_embedder):
    ingestor = Ingestor(fast, fake_embedder)
    ingestor.ingest([site.url])
    assert ingestor.remove([site.at("a.html")]) == [site.at("a.html")]
    report = ingestor.sync()
    assert [r.path for r in report.results if r.action == "added"] == [site.at("a.html")]
    assert site.server.statuses["/docs/a.html"][-2:] == [304, 200]       # asked again, whole, to be read
    assert _stored(fast) == {site.at(p) for p in PAGES}


def test_a_citation_opens_the_page_at_the_passage_heading(site, fast, fake_embedder):
    from bot.present import present
    from bot.retrieval import Retriever
    from bot.steps.result import Answer

    long = " ".join(["More words about the topic so that each section makes its own chunk."] * 30)
    site.write("manual.html", (
        "<html><body><section id='installing'><h1>Installing<a class='headerlink' href='#installing'>#</a></h1>"
        f"<p>Installing needs Python. {long}</p>"
        "<h2 id='proxy-settings'>Proxy settings</h2>"
        f"<p>The proxy is read from HTTPS_PROXY, a zebra-striped variable. {long}</p>"
        f"<h2>Offline mirrors</h2><p>Mirrors hold wheels for quokka installs. {long}</p></section></body></html>"))
    site.write("index.html", _page("Welcome", "Start here.", "<a href='manual.html'>manual</a>"))
    Ingestor(fast, fake_embedder).ingest([site.url])
    retriever = Retriever(fast, fake_embedder)

    def top(question):
        return retriever.retrieve(question, k=1, mode="keyword").passages[0]

    proxy = top("zebra-striped HTTPS_PROXY")
    assert proxy.heading_path[-1] == "Proxy settings"
    assert proxy.link == site.at("manual.html#proxy-settings")
    assert proxy.to_dict(1)["link"] == proxy.link
    # A heading without an id of its own: a text fragment the browser scrolls to.
    assert top("quokka mirrors wheels").link == site.at("manual.html#:~:text=Offline%20mirrors")
    # The window's source opens the page in a new tab.
    view = present(Answer("How?", "How?", "Set HTTPS_PROXY [1].", False, [proxy], [1]))
    assert view.sources[0].link == proxy.link
    from docent.window_html import render_answer
    html = render_answer(view, 1)
    assert f'href="{site.at("manual.html#proxy-settings")}"' in html and 'rel="noopener noreferrer"' in html
