"""Where files come from: the source registry.

    open_source("~/company-docs", ...)                          # a folder or a file (folder.py)
    open_source("git+file:///srv/git/handbook.git@main", ...)   # a git branch (git.py)
    open_source("https://wiki.intranet.example/docs/", ...)     # a documentation site (site.py)

`kind_of(spec)` tells which without opening anything. A collection remembers the specs it
was built from (the `sources` table), so `docent sync` opens each again with its state.
"""

from __future__ import annotations

from pathlib import Path

from ingest.sources.base import Item, Source, SourceError

KINDS = ("folder", "git", "site")


def kind_of(spec: str) -> str:
    if spec.startswith("git+"):
        return "git"
    if spec.startswith(("http://", "https://")):
        return "site"
    return "folder"


def open_source(spec: str, *, workdir: Path, settings, state: dict | None = None) -> Source:
    """The source for `spec`; `workdir` is the collection's folder for a source's own files
    (a git mirror), `settings` the whole Settings (exclusions, site limits), `state` what
    the source saved at its last sync. Raises SourceError for a spec it cannot use."""
    kind = kind_of(spec)
    if kind == "git":
        from ingest.sources.git import GitSource
        return GitSource(spec, workdir=Path(workdir), exclude=settings.ingest.exclude, state=state or {})
    if kind == "site":
        from ingest.sources.site import SiteSource
        return SiteSource(spec, settings=settings.sources, state=state or {})
    from ingest.sources.folder import FolderSource
    return FolderSource(spec, exclude=settings.ingest.exclude)


__all__ = ["Item", "KINDS", "Source", "SourceError", "kind_of", "open_source"]
