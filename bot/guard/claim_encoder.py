"""A small cross-encoder trained here: (claim, passage) -> probability that the passage
backs the claim.

MiniLM-L6 (the bundled all-MiniLM-L6-v2 weights) reads the claim and the passage as one
pair; its top layers and a one-logit head were fine-tuned by `python -m bot.guard.train
--encoder` on licensed data (HaluEval QA's training half, synthetic claims from SQuAD
passages). Only what training changed is stored, in fp16, in claim_encoder.safetensors
(a few MB); the rest is read from the MiniLM package. Loaded once, in warm_up().
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

WEIGHTS_FILE = Path(__file__).with_name("claim_encoder.safetensors")


class ClaimEncoderError(RuntimeError):
    pass


def base_folder() -> Path:
    from ingest.embedder import minilm_folder
    return minilm_folder()


def build(trained_layers: int):
    """MiniLM with a scoring head: (model, tokenizer). Weights: the bundled MiniLM's."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    class PairScorer(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)      # mean pooling, as MiniLM was trained
            return self.head(pooled).squeeze(-1)

    folder = base_folder()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = PairScorer(AutoModel.from_pretrained(str(folder)))
    layers = model.encoder.config.num_hidden_layers
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith("head.") or any(
            name.startswith(f"encoder.encoder.layer.{i}.") for i in range(layers - trained_layers, layers))
    return model, tokenizer


class ClaimEncoder:
    def __init__(self, weights: Path = WEIGHTS_FILE, max_tokens: int = 256, batch: int = 16):
        self.weights, self.max_tokens, self.batch = Path(weights), max_tokens, batch
        self._model = self._tokenizer = None

    @property
    def available(self) -> bool:
        return self.weights.is_file()

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not self.available:
            raise ClaimEncoderError(f"claim encoder weights not found: {self.weights} "
                                    f"(train them with `python -m bot.guard.train --encoder`)")
        import torch
        from safetensors.torch import load_file
        from safetensors import safe_open
        with safe_open(str(self.weights), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("docent", "{}"))
        model, tokenizer = build(int(meta.get("trained_layers", 2)))
        missing = model.load_state_dict({k: v.float() for k, v in load_file(str(self.weights)).items()}, strict=False)
        if missing.unexpected_keys:
            raise ClaimEncoderError(f"{self.weights} does not fit MiniLM: {missing.unexpected_keys[:3]}")
        model.eval()
        self.max_tokens = int(meta.get("max_tokens", self.max_tokens))
        self._model, self._tokenizer = model, tokenizer
        self._torch = torch

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(backed) for each (claim, passage). A passage longer than the model's window
        is read in overlapping windows; the best window counts."""
        self.warm_up()
        torch = self._torch
        windows = [(index, claim, part) for index, (claim, passage) in enumerate(pairs) for part in windows_of(passage)]
        best = [0.0] * len(pairs)
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch):
                chunk = windows[start:start + self.batch]
                encoded = encode(self._tokenizer, [(c, p) for _, c, p in chunk], self.max_tokens)
                for (index, _, _), value in zip(chunk, torch.sigmoid(self._model(**encoded)).tolist()):
                    best[index] = max(best[index], value)
        return best


def encode(tokenizer, pairs: Sequence[tuple[str, str]], max_tokens: int):
    return tokenizer([c for c, _ in pairs], [p for _, p in pairs], truncation=True, max_length=max_tokens,
                     padding=True, return_tensors="pt")


def windows_of(passage: str, words: int = 160, overlap: int = 40) -> list[str]:
    """The passage in overlapping pieces of about `words` words (one piece when short)."""
    tokens = passage.split()
    if len(tokens) <= words + overlap:
        return [passage]
    return [" ".join(tokens[i:i + words]) for i in range(0, len(tokens) - overlap, words - overlap)]
