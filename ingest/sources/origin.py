"""What a citation shows of where a file came from (the `origin` a source gave its item).

    link(origin, ("Install", "Linux"))   # "https://wiki/docs/install.html#linux": [n] opens the page there
    revision(origin)                     # "3f2a9c1d0b7e": the git commit the passage was read at

The pipeline stores each file's origin (ingest/sources/*: {"url"} for a page, {"repo",
"ref", "commit", "path"} for a git file) with the heading anchors the loader found.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit


def anchors(headings) -> dict[str, str]:
    """{heading title: its anchor} for the headings that have one (the first of a title wins)."""
    out: dict[str, str] = {}
    for heading in headings:
        if heading.anchor and heading.title not in out:
            out[heading.title] = heading.anchor
    return out


def link(origin: dict, heading_path: tuple[str, ...] = ()) -> str | None:
    """The address that opens the passage: the page's URL, at the anchor of its innermost
    heading that has one. A heading without an anchor is reached by a text fragment
    (#:~:text=, which browsers scroll to and mark). None for a file with no web address."""
    url = origin.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        return None           # only an address the crawler read: never a javascript: or file: link
    url = url.split("#", 1)[0]
    if not heading_path:
        return url
    known = origin.get("anchors") if isinstance(origin.get("anchors"), dict) else {}
    inner = heading_path[-1]
    anchor = known.get(inner)
    if isinstance(anchor, str) and anchor:
        return f"{url}#{quote(anchor, safe='-._~!$&()*+,;=:@/?')}"
    return f"{url}#:~:text={quote(inner, safe='').replace('-', '%2D')}"   # '-' is the fragment's syntax


def revision(origin: dict) -> str | None:
    """The commit a git file was read at, shortened as git shows it (12 hex digits)."""
    commit = origin.get("commit")
    return commit[:12] if isinstance(commit, str) and commit else None
