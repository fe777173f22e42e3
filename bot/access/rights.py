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

from dataclasses import dataclass
from typing import Callable, Sequence

from bot.access.users import ADMIN_GROUP, Grant, User
from bot.guard.labels import matching_rule


@dataclass(frozen=True)
class Rights:
    user: str
    groups: frozenset[str]
    grants: tuple[Grant, ...]          # every grant of the home, of every collection

    @classmethod
    def of(cls, user: User, grants: Sequence[Grant]) -> "Rights":
        return cls(user.name, frozenset(user.groups), tuple(grants))

    @classmethod
    def of_name(cls, store, name: str) -> "Rights | None":
        """The rights of the user called `name` in `store` (an AccessStore), read now;
        None when there is no such user."""
        user = store.user(name)
        return None if user is None else cls.of(user, store.grants())

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
        mine = self._mine(collection)
        return any(g.path is None for g in mine) or matching_rule([g.path for g in mine], path) is not None

    def can_write(self, collection: str, path: str | None = None) -> bool:
        """Uploads and removals: the admin group, or a grant with write rights; with a
        `path`, one whose glob covers it (a write grant on eng/** writes nothing in hr/)."""
        if self.admin:
            return True
        writes = [g for g in self._mine(collection) if g.write]
        if path is None or any(g.path is None for g in writes):
            return bool(writes)
        return matching_rule([g.path for g in writes], path) is not None

    def hidden_rule(self, collection: str) -> Callable[[str], bool] | None:
        """A predicate on file paths: True for a document this user may not read; None
        when the user reads the whole collection."""
        if self.admin or self.open_to_all(collection):
            return None
        mine = self._mine(collection)
        if any(g.path is None for g in mine):
            return None
        globs = tuple(sorted({g.path for g in mine}))
        return lambda path: matching_rule(globs, path) is None

    def key(self, collection: str) -> tuple:
        """Names what hidden_rule hides, for caches: two users with the same covering
        globs hide the same documents."""
        rule_globs = None
        if self.hidden_rule(collection) is not None:
            rule_globs = tuple(sorted({g.path for g in self._mine(collection)}))
        return ("rights", rule_globs)
