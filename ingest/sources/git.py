"""A branch of a git repository: `docent ingest git+file:///srv/git/handbook.git@main`.

The repository is mirrored once into the collection's folder (`git clone --mirror`, then
`git fetch --prune` on each sync, which also follows a force-push). Files are listed from
the branch's tree at one commit with their blob ids; a blob id is the item's version, so a
sync reads and embeds only the files whose blob changed since the recorded commit (what
`git diff --name-status` would list), a rename reuses its vectors by chunk hash, and a
file gone from the branch leaves the index. Real git (the `git` command) does the work;
credentials are git's own (ssh agent, credential helper), never asked for interactively.

An item's key is `<spec>:<path>`; its origin names the repository, ref and commit, so a
citation says which version of the file it quotes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from ingest import loaders
from ingest.document import LoadError
from ingest.manifest import is_excluded
from ingest.sources.base import Item, SourceError

_TIMEOUT = 900          # seconds for a clone or fetch; a stalled server ends as a SourceError
_ENV = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'git+URL[@REF]' -> (URL, REF or None). The ref follows the last '@' after the
    URL's host (ssh URLs carry a user@ before it)."""
    url = spec[len("git+"):]
    host_end = url.find("/", url.find("://") + 3) if "://" in url else 0
    at = url.rfind("@")
    if at > max(host_end, 0):
        url, ref = url[:at], url[at + 1:]
        if not ref:
            raise SourceError(f"{spec}: empty branch after '@'")
        return url, ref
    return url, None


def _git(args: list[str], cwd: Path | None = None, timeout: float = _TIMEOUT, what: str = "") -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=_ENV, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SourceError("git is not installed (the `git` command was not found)") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{what or 'git ' + args[0]}: no answer after {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        # git's own reason is its "fatal:" line; hints and "Please make sure..." follow it.
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        reason = (fatal or lines or [f"git {args[0]} exited with {done.returncode}"])[0]
        raise SourceError(f"{what or 'git ' + args[0]}: {reason.removeprefix('fatal: ').removeprefix('error: ')}")
    return done.stdout


class GitSource:
    kind = "git"

    def __init__(self, spec: str, *, workdir: Path, exclude: tuple[str, ...] = (), state: dict | None = None):
        self.spec = spec
        self.url, self.ref = parse_spec(spec)
        if re.match(r"^[a-z][a-z0-9+.-]*://", self.url) is None and not self.url.startswith("/"):
            self.url = str(Path(self.url).expanduser().resolve())     # a local path: absolute
        slug = hashlib.blake2b(self.url.encode(), digest_size=8).hexdigest()
        self.mirror = Path(workdir) / "git" / slug
        self.exclude = tuple(exclude)
        self.previous = (state or {}).get("commit")
        self.commit: str | None = None
        self._prefix = spec + ":"

    # -- the mirror -------------------------------------------------------------
    def update(self) -> str:
        """Clone or fetch, then resolve the ref to a commit. Returns the commit."""
        what = f"{self.spec}"
        if (self.mirror / "HEAD").is_file():
            _git(["fetch", "--quiet", "--prune", "--force", "origin"], cwd=self.mirror, what=what)
        else:
            scratch = self.mirror.with_name(self.mirror.name + ".cloning")
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.parent.mkdir(parents=True, exist_ok=True)
            try:
                _git(["clone", "--quiet", "--mirror", self.url, str(scratch)], what=what)
            finally:
                if not (scratch / "HEAD").is_file():
                    shutil.rmtree(scratch, ignore_errors=True)
            scratch.rename(self.mirror)       # a half-done clone is never taken for a mirror
        ref = self.ref or "HEAD"
        try:
            out = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=self.mirror, what=what)
        except SourceError:
            raise SourceError(f"{self.spec}: no branch, tag or commit named {ref!r} in the repository") from None
        self.commit = out.decode().strip()
        return self.commit

    # -- the Source protocol ------------------------------------------------------
    def items(self) -> Iterator[Item]:
        commit = self.update()
        listing = _git(["ls-tree", "-r", "-z", "-l", "--full-tree", commit], cwd=self.mirror, what=self.spec)
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            mode, kind, blob, size = meta.split()
            if kind != b"blob" or mode == b"120000":       # submodules and symlinks: not files of this tree
                continue
            path = raw_path.decode("utf-8", "surrogateescape")
            if is_excluded(Path(path), Path("."), self.exclude):
                continue
            yield Item(self._prefix + path, Path(path).name, self._reader(blob.decode(), int(size)),
                       version="git:" + blob.decode(), size=int(size),
                       origin={"repo": self.url, "ref": self.ref or "HEAD", "commit": commit, "path": path})

    def _reader(self, blob: str, size: int):
        def read(max_bytes: int | None) -> bytes:
            loaders.check_size(size, max_bytes)          # from ls-tree: nothing read yet
            try:
                return _git(["cat-file", "blob", blob], cwd=self.mirror, timeout=120, what=self.spec)
            except SourceError as exc:
                raise LoadError(str(exc)) from None
        return read

    def owns(self, key: str) -> bool:
        return key.startswith(self._prefix)

    @property
    def complete(self) -> bool:
        return self.commit is not None

    def state(self) -> dict:
        return {"commit": self.commit, "ref": self.ref or "HEAD"} if self.commit else {}
