"""A documentation site: `docent ingest https://wiki.intranet.example/docs/`.

Crawled breadth-first from the start URL, staying on its scheme, host and port and under
its path prefix (the start path up to its last "/"). Pages come from <a href> links and
from the site's sitemaps (at the prefix, at the host's root, and those robots.txt names).
robots.txt is honoured for docent's user agent, with its Crawl-delay when longer than
sources.site_delay_seconds. At most sources.site_max_pages pages are fetched per crawl;
a crawl cut short is not `complete`, so the pages it did not reach stay in the index.

Re-syncs are cheap: the state keeps, per page, its ETag, Last-Modified, content hash,
loader name and in-scope links. A page answering 304 Not Modified becomes an item whose
version is the stored hash (the pipeline reads nothing) and the crawl goes on from the
stored links. A page gone (404, 410) leaves the index; one that fails otherwise (5xx, a
timeout) is not `owned` this time, so it stays. A start URL that fails is a SourceError.
HTTP is the standard library's (urllib); the header of sources.site_header_env (e.g.
credentials) goes only to the site's own origin and is never stored.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
import urllib.robotparser
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

from docent import __version__
from ingest import loaders
from ingest.document import LoadError
from ingest.manifest import content_hash
from ingest.sources.base import Item, SourceError

USER_AGENT = f"docent/{__version__} (+docs crawler)"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Suffixes of pages rendered by a server; other suffixes are fetched only if a loader reads them.
_PAGE_SUFFIXES = {".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx", ".jsp"}
_GONE = (404, 410)
_FAULTS = (OSError, ValueError, http.client.HTTPException)   # URLError and HTTPError are OSErrors
_BLOCK = 64 * 1024
_SITEMAP_BYTES = 20 * 1024 * 1024
_SITEMAP_FILES = 20                 # sitemaps (and nested ones of an index) read per crawl
_DEFAULT_MAX = 50 * 1024 * 1024     # the size limit until the pipeline's is known (ingest.max_file_mb's default)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")   # an HTTP header name


def normalize(url: str) -> str:
    """One spelling per page (the key the index stores): fragment dropped, scheme and host
    lower-cased, default port dropped, spaces and non-ASCII percent-encoded. Raises ValueError."""
    parts = urlsplit(urldefrag(url.strip())[0])
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc[:-len(default)]
    return urlunsplit((scheme, netloc, quote(parts.path or "/", safe="/%:@!$&'()*+,;=~"),
                       quote(parts.query, safe="/%:@!$&'()*+,;=~?"), ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _readable(name: str) -> bool:
    """A loader reads it; linked pictures (OCR) are left out: screenshots, not documentation."""
    return loaders.format_for(Path(name)) not in (None, "image")


def _reason(exc: BaseException, timeout: float) -> str:
    """One line for a failed request."""
    if isinstance(exc, urllib.error.HTTPError):
        if 300 <= exc.code < 400:
            return f"redirected off the site (to {exc.headers.get('Location', '?')})"
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, TimeoutError):
        return f"no answer after {timeout:g} s"
    return str(reason) or type(reason).__name__


def _read_upto(resp, n: int | None) -> bytes:
    """At most n bytes of a body: a huge page is cut off, not downloaded whole."""
    blocks, size = [], 0
    while n is None or size < n:
        block = resp.read(_BLOCK if n is None else min(_BLOCK, n - size))
        if not block:
            break
        blocks.append(block)
        size += len(block)
    return b"".join(blocks)


def _header(var: str) -> dict[str, str]:
    """The one header named by sources.site_header_env; its value is never put in a message."""
    if not var:
        return {}
    value = os.environ.get(var)
    if value is None:
        raise SourceError(f"{var} (sources.site_header_env) is not set in the environment")
    name, colon, text = value.partition(":")
    if not colon or not _TOKEN.fullmatch(name.strip()) or re.search(r"[\r\n\0]", value):
        raise SourceError(f"{var} (sources.site_header_env) is not one 'Header-Name: value' line")
    return {name.strip(): text.strip()}


class _StayOnSite(urllib.request.HTTPRedirectHandler):
    """Follows redirects only on the site's own origin, so its header (credentials) never
    reaches another host; any other redirect ends as an HTTPError with its 3xx code."""

    def __init__(self, origin: str):
        self.origin = origin

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(normalize(newurl)) != self.origin:
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") if tag in ("a", "area", "base") else None
        if href and tag == "base":
            self.base = self.base or href
        elif href:
            self.hrefs.append(href.strip())


class SiteSource:
    kind = "site"
    lazy = True             # pages are found while crawling: the pipeline reads them as they come

    def __init__(self, spec: str, *, settings, state: dict | None = None):
        self.spec = spec
        try:
            self.start = normalize(spec)
        except ValueError:
            raise SourceError(f"{spec}: not a valid address") from None
        parts = urlsplit(self.start)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"{spec}: not an http(s) address")
        self.origin = _origin(self.start)
        self.prefix = self.origin + parts.path[:parts.path.rfind("/") + 1]
        self.settings = settings
        self.timeout = settings.site_timeout_seconds
        self.headers = {"User-Agent": USER_AGENT, **_header(settings.site_header_env)}
        self._opener = urllib.request.build_opener(_StayOnSite(self.origin))
        self.old: dict = dict((state or {}).get("pages") or {})
        self.pages: dict = {}           # url asked for -> what the next crawl needs (the new state)
        self.failed: set[str] = set()   # keys that failed this time: stay in the index
        self.gone: set[str] = set()
        self.done: set[str] = set()     # keys yielded in this crawl
        self._hashes: set[str] = set()  # and their content hashes
        self._cap: int | None = _DEFAULT_MAX    # body size limit: the pipeline's, once it has read a page
        self.warnings: list[str] = []
        self.note = ""                  # one line for the CLI when the crawl stopped early
        self._finished = self._cut = False
        self._delay = settings.site_delay_seconds
        self._last: float | None = None

    # -- HTTP ---------------------------------------------------------------------
    def _open(self, url: str, extra: dict | None = None):
        """GET url, the delay after the previous answer began; raises HTTPError for non-2xx.
        Counted from the answer, not the request: a slow server gets the whole delay as rest."""
        if self._last is not None:
            wait = self._last + self._delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        request = urllib.request.Request(url, headers={**self.headers, **(extra or {})})
        try:
            return self._opener.open(request, timeout=self.timeout)
        finally:
            self._last = time.monotonic()

    def _robots(self) -> urllib.robotparser.RobotFileParser:
        robots = urllib.robotparser.RobotFileParser(self.origin + "/robots.txt")
        try:
            with self._open(robots.url) as resp:
                charset = resp.headers.get_content_charset() or "utf-8"
                robots.parse(_read_upto(resp, _SITEMAP_BYTES).decode(charset, "replace").splitlines())
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code >= 500:     # RFC 9309: an unreachable robots.txt disallows everything
                raise SourceError(f"{robots.url}: {_reason(exc, self.timeout)}") from None
            robots.allow_all = True     # missing or refused (4xx): everything is allowed
        except _FAULTS as exc:
            raise SourceError(f"{self.spec}: {_reason(exc, self.timeout)}") from None
        return robots

    def _sitemaps(self, robots) -> list[str]:
        """Page URLs within the prefix from the site's sitemaps; a missing or broken one is no fault."""
        todo = deque(dict.fromkeys([self.prefix + "sitemap.xml", self.origin + "/sitemap.xml",
                                    *(robots.site_maps() or [])]))
        seen: set[str] = set()
        urls: list[str] = []
        while todo and len(seen) < _SITEMAP_FILES:
            try:
                url = normalize(todo.popleft())
            except ValueError:
                continue
            if url in seen or _origin(url) != self.origin or not robots.can_fetch(USER_AGENT, url):
                continue
            seen.add(url)
            try:
                with self._open(url) as resp:
                    root = ElementTree.fromstring(_read_upto(resp, _SITEMAP_BYTES))
            except (*_FAULTS, ElementTree.ParseError):
                continue
            locs = [el.text.strip() for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "loc" and el.text]
            (todo if root.tag.endswith("sitemapindex") else urls).extend(locs)
        return urls

    # -- the crawl ------------------------------------------------------------------
    def _scoped(self, url: str, fetched: bool = False) -> str | None:
        """The normalized URL if it lies under the prefix and (a link not fetched yet) may be
        a document: an image, a stylesheet or an archive is not worth a request."""
        try:
            url = normalize(url)
        except ValueError:
            return None
        suffix = Path(urlsplit(url).path).suffix.lower()
        worth = (fetched or suffix in _PAGE_SUFFIXES or not re.fullmatch(r"\.[a-z][a-z0-9]{0,4}", suffix)
                 or _readable("x" + suffix))
        return url if worth and url.startswith(self.prefix) else None

    def _links(self, data: bytes, charset: str, url: str) -> list[str]:
        try:
            text = data.decode(charset, "replace")
        except LookupError:         # an unknown charset: links are ASCII anyway
            text = data.decode("utf-8", "replace")
        parser = _Links()
        try:
            parser.feed(text)
            parser.close()
        except Exception:           # broken markup: the links found before it still count
            pass
        base = urljoin(url, parser.base) if parser.base else url
        found = []
        for href in parser.hrefs:
            try:
                link = self._scoped(urljoin(base, href))
            except ValueError:      # urljoin of a malformed address
                continue
            if link and link not in found:
                found.append(link)
        return found

    def items(self) -> Iterator[Item]:
        robots = self._robots()
        delay = robots.crawl_delay(USER_AGENT)
        self._delay = max(self._delay, min(float(delay or 0), 60.0))    # 60 s: the setting's own maximum
        if not robots.can_fetch(USER_AGENT, self.start):
            raise SourceError(f"{self.spec}: disallowed by the site's robots.txt")
        queue, queued, fetched = deque([self.start]), {self.start}, 0
        while queue:
            url = queue.popleft()
            if url in self.done or not robots.can_fetch(USER_AGENT, url):
                continue
            if fetched >= self.settings.site_max_pages:
                self._cut = True
                self.note = (f"stopped at the page budget ({self.settings.site_max_pages} pages; "
                             "see sources.site_max_pages)")
                break
            fetched += 1
            links = yield from self._visit(url, first=fetched == 1)
            if fetched == 1:
                links = [*links, *filter(None, map(self._scoped, self._sitemaps(robots)))]
            for link in links:
                if link not in queued:
                    queued.add(link)
                    queue.append(link)
        self._finished = True

    def _visit(self, url: str, first: bool):
        """Fetch one page, yield its item (if it is a new document docent reads); return its links."""
        old = self.old.get(url) or {}
        asks = {}
        if old.get("hash") and old.get("name"):
            asks = {k: old[v] for k, v in (("If-None-Match", "etag"), ("If-Modified-Since", "modified")) if old.get(v)}
        try:
            with self._open(url, asks) as resp:
                final = self._scoped(resp.geturl(), fetched=True)
                ctype, headers, cap = resp.headers.get_content_type(), resp.headers, self._cap
                name = self._name(final, ctype in _HTML_TYPES) if final else None
                if first and not name:
                    raise SourceError(f"{self.spec}: " + (f"not a page or document docent reads ({ctype})" if final
                                                          else f"redirected out of the site (to {resp.geturl()})"))
                if not name or final in self.done:
                    return []
                data = _read_upto(resp, None if cap is None else cap + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304 and asks:
                self.pages[url] = old
                key = old.get("url", url)
                if self._new(key, old["hash"]):
                    yield Item(key, old["name"], self._refetch(url), version=old["hash"], origin={"url": key})
                return [self.prefix + link for link in old.get("links", [])]
            if (exc.code in _GONE or 300 <= exc.code < 400) and not first:    # gone, or moved off the site
                self.gone.add(url)
                return []
            return self._failed(url, exc, first, old)
        except _FAULTS as exc:
            return self._failed(url, exc, first, old)
        whole = cap is None or len(data) <= cap
        links = self._links(data, headers.get_content_charset() or "utf-8", final) if ctype in _HTML_TYPES else []
        entry = {"name": name, "links": [link[len(self.prefix):] for link in links], "url": final}
        if whole:                   # a page cut off at the size limit is asked for whole next time
            entry.update(hash=content_hash(data), etag=headers.get("ETag"), modified=headers.get("Last-Modified"))
        self.pages[url] = {k: v for k, v in entry.items() if v is not None and (k != "url" or v != url)}
        if self._new(final, entry.get("hash")):
            yield Item(final, name, self._reader(data, whole, cap), version=entry.get("hash"), origin={"url": final})
        return links

    def _new(self, key: str, digest: str | None) -> bool:
        """Not seen yet in this crawl, by address or by content: docs/ and docs/index.html
        are one page, indexed once (under the address met first)."""
        if key in self.done or (digest and digest in self._hashes):
            return False
        self.done.add(key)
        if digest:
            self._hashes.add(digest)
        return True

    def _reader(self, data: bytes, whole: bool, cap: int | None):
        def read(max_bytes: int | None) -> bytes:
            self._cap = max_bytes       # the next pages are read up to the pipeline's own limit
            if not whole:               # cut off while downloading
                raise LoadError(f"too large: over {cap / 1e6:.3g} MB (see ingest.max_file_mb)")
            loaders.check_size(len(data), max_bytes)
            return data
        return read

    @staticmethod
    def _name(url: str, html: bool) -> str | None:
        """A file name whose suffix picks the loader: <segment>.html for a page, else the
        URL's own name when a loader reads it (a linked .pdf, .md, .txt)."""
        segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if html:
            segment = segment or "index"
            return segment if segment.lower().endswith((".html", ".htm", ".xhtml")) else segment + ".html"
        return segment if segment and _readable(segment) else None

    def _failed(self, url: str, exc, first: bool, old: dict) -> list[str]:
        """A page that could not be fetched: kept in the index as it was, crawled on from its stored links."""
        reason = exc if isinstance(exc, str) else _reason(exc, self.timeout)
        if first:
            raise SourceError(f"{self.spec}: {reason}")
        self.failed.update({url, old.get("url", url)})
        if old:
            self.pages[url] = old
        self.warnings.append(f"{url}: {reason} (left as it was)")
        return [self.prefix + link for link in old.get("links", [])]

    def _refetch(self, url: str):
        """read() of a 304 page: needed only when the index lost its copy (the state did not)."""
        def read(max_bytes: int | None) -> bytes:
            try:
                with self._open(url) as resp:
                    data = _read_upto(resp, None if max_bytes is None else max_bytes + 1)
            except _FAULTS as exc:
                raise LoadError(_reason(exc, self.timeout)) from None
            return self._reader(data, max_bytes is None or len(data) <= max_bytes, max_bytes)(max_bytes)
        return read

    # -- the Source protocol ------------------------------------------------------------
    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix) and key not in self.failed

    @property
    def complete(self) -> bool:
        return self._finished and not self._cut

    def state(self) -> dict:
        """Per page: ETag, Last-Modified, content hash, loader name, links (relative to the prefix)."""
        pages = self.pages if self.complete else {**self.old, **self.pages}
        return {"pages": {url: page for url, page in pages.items() if url not in self.gone}}
