"""What a search must leave out, as one value: `ChunkFilter`.

Today it carries the labels that are never retrieved (leaks.exclude) and a path rule
(leaks.restricted_paths); a user's access rights will ride on the same value, so every
search path (dense, keyword, any vector backend) honours one filter and k stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable


@dataclass(frozen=True)
class ChunkFilter:
    """Chunks carrying any of `labels`, or belonging to a file whose path `path_rule`
    matches, are excluded. `key` names the rule for caching (two filters with the same
    labels and key exclude the same chunks of one index generation)."""
    labels: tuple[str, ...] = ()
    path_rule: Callable[[str], bool] | None = field(default=None, compare=False)
    key: Hashable = None

    @property
    def empty(self) -> bool:
        return not self.labels and self.path_rule is None

    def cache_key(self) -> tuple:
        return (self.labels, self.key if self.path_rule is not None else None)


NO_FILTER = ChunkFilter()
