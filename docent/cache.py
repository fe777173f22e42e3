"""Where docent keeps files it derives from installed packages (unpacked or joined model
weights): env DOCENT_CACHE, else $XDG_CACHE_HOME/docent, else ~/.cache/docent."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("DOCENT_CACHE"):
        return Path(os.environ["DOCENT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "docent"
