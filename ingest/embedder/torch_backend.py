"""embedding.backend = "torch": sentence-transformers on PyTorch, for any
sentence-transformers model folder (all-mpnet-base-v2 runs only here)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from docent.settings import EmbeddingSettings
from ingest.embedder.base import Embedder, EmbedderError
from ingest.embedder.folders import resolve_folder

if TYPE_CHECKING:
    import numpy as np


def _offline() -> None:
    """Before transformers/sentence-transformers load: never reach for the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TorchEmbedder(Embedder):
    """sentence-transformers on PyTorch (it sorts inputs by length itself)."""

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> TorchEmbedder:
        return cls(settings, resolve_folder(settings.model))

    def _load(self) -> None:
        _offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(f"the torch backend needs sentence-transformers and torch: {exc}") from None
        if self.settings.threads > 0:            # 0: torch's own choice (all cores)
            torch.set_num_threads(self.settings.threads)
        try:
            self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken folder can fail in many ways inside transformers
            raise EmbedderError(f"cannot load the sentence-transformers model in {self.folder}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self._model.max_seq_length = self.max_tokens

    def _embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        vectors = self._model.encode(texts, batch_size=self.settings.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
