"""Where docent keeps files it derives from installed packages (unpacked or joined model
weights, llama.cpp's state after a fixed prompt start): env DOCENT_CACHE, else
$XDG_CACHE_HOME/docent, else ~/.cache/docent. Everything here can be deleted: it is
rebuilt when needed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("DOCENT_CACHE"):
        return Path(os.environ["DOCENT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "docent"


def prompt_state_path(label: str, model: str, context_window: int) -> Path:
    """The one file that keeps llama.cpp's state after the fixed prompt start `label`
    ("answer", "judge") for one model file and window; a newer state replaces it."""
    digest = hashlib.sha256(str(model).encode("utf-8")).hexdigest()[:10]
    return cache_dir() / "prompt-states" / f"{label}-{Path(model).stem[:48]}-{context_window}-{digest}.npz"
