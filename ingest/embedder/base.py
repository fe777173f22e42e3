"""The Embedder interface every backend implements, and what it reads of a model folder
without its weights (vector size, token limit, pooling) so that name, dim and
max_tokens are known before anything heavy loads."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from docent.settings import EmbeddingSettings

if TYPE_CHECKING:
    import numpy as np


class EmbedderError(Exception):
    """The embedding model cannot be used; the message says why and what to do."""


class Embedder:
    """name, dim and max_tokens are known without loading weights. `seconds` adds up the
    wall time spent in embed() and in loading the model (the benchmarks report the share
    of ingestion spent in the model); `load_seconds` is the loading alone.

    A backend implements `from_settings` (find and check its model files: config files
    only), `_load` (the weights) and `_embed` (unit-length rows in input order)."""

    name: str
    dim: int
    max_tokens: int
    seconds: float

    def __init__(self, settings: EmbeddingSettings, folder: Path):
        self.settings = settings
        self.name = settings.model
        self.folder = folder
        self.dim, self.max_tokens, self.pooling, self.extra_modules = describe(folder)
        self.seconds = 0.0
        self.load_seconds = 0.0
        self._counter = None
        self._lock = threading.Lock()
        self._loaded = False

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> Embedder:
        """This backend's embedder for the settings' model; reads config files only."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim}, max_tokens={self.max_tokens})"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text including [CLS]/[SEP], not truncated. Needs only the tokenizer."""
        texts = list(texts)
        if not texts:
            return []
        if self._counter is None:
            self._counter = self._tokenizer(truncate=False)
        # In batches: a big file's paragraphs encoded at once hold every token's offsets
        # and ids in memory together (gigabytes for a 50 MB file).
        counts: list[int] = []
        for i in range(0, len(texts), 512):
            counts += [len(e.ids) for e in self._counter.encode_batch(texts[i:i + 512])]
        return counts

    def _tokenizer(self, truncate: bool):
        # Tokenizing is well under 1% of embedding time; its thread pool is not worth the
        # "process forked after parallelism" warnings (and deadlock risk) in child processes.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from tokenizers import Tokenizer
        path = self.folder / "tokenizer.json"
        if not path.is_file():
            raise EmbedderError(f"{self.folder} has no tokenizer.json (a fast tokenizer file is needed)")
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_padding()   # the file may pad to a fixed length (MiniLM's: 128)
        if truncate:
            tokenizer.enable_truncation(self.max_tokens)
        else:
            tokenizer.no_truncation()
        return tokenizer

    def warm_up(self) -> None:
        """Load the weights (once; later calls return at once)."""
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                started = time.perf_counter()
                self._load()
                self._loaded = True
                self.load_seconds = time.perf_counter() - started
                self.seconds += self.load_seconds

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""
        import numpy as np
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.warm_up()
        started = time.perf_counter()
        try:
            return self._embed(texts)
        finally:
            self.seconds += time.perf_counter() - started

    def _load(self) -> None:
        raise NotImplementedError

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(folder: Path) -> tuple[int, int, str, list[str]]:
    """dim, max_tokens, pooling mode and the module types after pooling, from the folder's
    config files (no weights read)."""
    config = _read_json(folder / "config.json")
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        modules = []
    dim = int(config.get("hidden_size") or config.get("d_model") or config.get("dim") or 0)
    pooling, after = "mean", []
    for module in modules if isinstance(modules, list) else []:
        if not isinstance(module, dict):
            continue
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        module_config = _read_json(folder / str(module.get("path", "")) / "config.json")
        if kind == "Pooling":
            dim = int(module_config.get("word_embedding_dimension") or dim)
            modes = [m for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
                     if module_config.get(f"pooling_mode_{m}")]
            pooling = {"": "mean", "mean_tokens": "mean", "cls_token": "cls"}.get("+".join(modes), "+".join(modes))
        elif kind == "Dense":
            dim = int(module_config.get("out_features") or dim)
            after.append(kind)
        elif kind not in ("Transformer", "Normalize"):
            after.append(kind)
    if not dim:
        raise EmbedderError(f"{folder} does not look like a sentence-transformers model folder "
                            f"(no config.json giving the vector size)")
    st_config = _read_json(folder / "sentence_bert_config.json")
    limits = [st_config.get("max_seq_length")]
    if not limits[0]:
        limits = [_read_json(folder / "tokenizer_config.json").get("model_max_length"),
                  config.get("max_position_embeddings")]
    limits = [int(v) for v in limits if isinstance(v, (int, float)) and 0 < v < 1_000_000]
    return dim, min(limits) if limits else 512, pooling, after
