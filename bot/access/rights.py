"""What one user may read: `Rights`, made from the access store's grants, and handed to
retrieval as part of the one ChunkFilter every search honours (so a chunk the user may not
read is never a candidate, and k stays exact).

A collection with no grants is readable by every user. Once it has one, only the granted
groups (and the admin group) read it, and only the documents their grants cover: a grant
without a path covers the whole collection, one with a path covers the documents whose
path, or any tail of it, matches the glob ("eng/**" covers /srv/docs/eng/setup.md), the
matching leaks.restricted_paths uses. With no users at all docent is a single-user tool
and nothing is filtered (`Rights` is then None everywhere).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable, Sequence

from bot.access.users import ADMIN_GROUP, Grant, User


def path_matches(glob: str, path: str) -> bool:
    """The glob matches the whole path or its tail from any folder (case folded)."""
    parts = PurePath(path).parts
    candidates = [path] + ["/".join(parts[i:]) for i in range(len(parts))]
    rule = glob.casefold()
    return any(fnmatch.fnmatchcase(c.casefold(), rule) for c in candidates)


@dataclass(frozen=True)
class Rights:
    user: str
    groups: frozenset[str]
    grants: tuple[Grant, ...]          # every grant of the home, of every collection

    @classmethod
    def of(cls, user: User, grants: Sequence[Grant]) -> "Rights":
        return cls(user.name, frozenset(user.groups), tuple(grants))

    @property
    def admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    def _grants_of(self, collection: str) -> list[Grant]:
        return [g for g in self.grants if g.collection == collection]

    def _mine(self, collection: str) -> list[Grant]:
        return [g for g in self._grants_of(collection) if g.group in self.groups]

    def open_to_all(self, collection: str) -> bool:
        return not self._grants_of(collection)

    def can_read_collection(self, collection: str) -> bool:
        """Whether the user may read anything of the collection (else: 403, and not listed)."""
        return self.admin or self.open_to_all(collection) or bool(self._mine(collection))

    def can_read(self, collection: str, path: str) -> bool:
        if self.admin or self.open_to_all(collection):
            return True
        return any(g.path is None or path_matches(g.path, path) for g in self._mine(collection))

    def can_write(self, collection: str) -> bool:
        """Uploads and removals: the admin group, or a grant with write rights."""
        return self.admin or any(g.write for g in self._mine(collection))

    def hidden_rule(self, collection: str) -> Callable[[str], bool] | None:
        """A predicate on file paths: True for a document this user may not read; None
        when the user reads the whole collection."""
        if self.admin or self.open_to_all(collection):
            return None
        mine = self._mine(collection)
        if any(g.path is None for g in mine):
            return None
        globs = tuple(sorted({g.path for g in mine}))
        return lambda path: not any(path_matches(glob, path) for glob in globs)

    def key(self, collection: str) -> tuple:
        """Names what hidden_rule hides, for caches: two users with the same covering
        globs hide the same documents."""
        rule_globs = None
        if self.hidden_rule(collection) is not None:
            rule_globs = tuple(sorted({g.path for g in self._mine(collection)}))
        return ("rights", rule_globs)
