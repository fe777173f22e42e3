"""Word lists the name rules consult, loaded once per process from two pip packages
(nothing is downloaded):

- first names and surnames: Faker's person providers, every locale (MIT; ~26,000 first
  names and ~26,000 surnames drawn from national name-frequency lists);
- ordinary English words: the lower-case entries of Webster's Second International
  (public domain) as the english-words package ships it (MIT). Names are capitalised
  there ("Scott"), words are not ("wisdom"), so a first name that is also a word
  ("Grant", "Ruby", "Chase") is known to be one.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache


@lru_cache(maxsize=1)
def _people() -> tuple[frozenset[str], frozenset[str]]:
    import faker.providers.person as person
    first: set[str] = set()
    last: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        try:
            provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in dir(provider):
            target = first if attr.startswith("first_names") else last if attr.startswith("last_names") else None
            values = getattr(provider, attr) if target is not None else None
            if isinstance(values, (dict, list, tuple)):        # dicts weigh names by frequency
                target.update(v.lower() for v in values if isinstance(v, str) and v.isalpha())
    return frozenset(first), frozenset(last)


def first_names() -> frozenset[str]:
    """Lower-case first names."""
    return _people()[0]


def surnames() -> frozenset[str]:
    """Lower-case surnames."""
    return _people()[1]


@lru_cache(maxsize=1)
def ordinary_words() -> frozenset[str]:
    """Lower-case English words (Webster's 2nd: few plurals or inflections)."""
    from english_words import get_english_words_set
    return frozenset(w for w in get_english_words_set(["web2"], lower=False) if w.islower())


def warm_up() -> None:
    _people()
    ordinary_words()
