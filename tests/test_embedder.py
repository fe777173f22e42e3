"""The default embedder: the bundled int8 ONNX MiniLM (loads in about a second)."""

import numpy as np
import pytest

from docent.settings import EmbeddingSettings
from ingest.embedder import EmbedderError, make_embedder


@pytest.fixture(scope="module")
def embedder():
    e = make_embedder(EmbeddingSettings())
    e.warm_up()
    return e


def test_vectors_are_unit_length_float32_rows_in_input_order(embedder):
    texts = ["short", "a much longer text about rotating the API keys of the admin console " * 5, "mid length text"]
    together = embedder.embed(texts)
    assert together.shape == (3, embedder.dim) == (3, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(together, one_by_one, atol=1e-4)


def test_meaning_decides_closeness(embedder):
    q, near, far = embedder.embed(["How do I rotate the API keys?",
                                   "To rotate API keys, open the admin console and press Rotate.",
                                   "The cafeteria serves lunch from noon."])
    assert q @ near > q @ far + 0.3


def test_token_counts_include_special_tokens_and_are_not_truncated(embedder):
    short, long = embedder.count_tokens(["hello world", "word " * 1000])
    assert short == 4
    assert long == 1002 > embedder.max_tokens


def test_empty_input_gives_an_empty_matrix(embedder):
    assert embedder.embed([]).shape == (0, 384)


def test_unknown_model_or_backend_is_explained():
    with pytest.raises(EmbedderError, match="all-MiniLM-L6-v2"):
        make_embedder(EmbeddingSettings(model="no-such-model"))
    with pytest.raises(EmbedderError, match="onnx-int8, torch"):
        make_embedder(EmbeddingSettings(backend="tensorflow"))


def test_name_and_dimension_are_known_without_loading_weights():
    e = make_embedder(EmbeddingSettings())
    assert (e.name, e.dim, e.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    assert e.seconds == 0.0
