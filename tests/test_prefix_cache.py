"""llama.cpp's state after a fixed prompt start, kept across processes in docent's cache
(LlamaCppGenerator.keep_prefix): the same answer with it as without it, and a file that
does not fit or cannot be read is ignored with one line and replaced."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bot.generators import LlamaCppGenerator
from bot.prompts import Prompts
from docent.settings import load_settings

SETTINGS = load_settings(profile="test", env={})
PROMPTS = Prompts(SETTINGS.prompts_dir())
PREFIX = PROMPTS.answer_prefix()          # the answer prompt's rules and worked examples
PASSAGE = [(1, "faq.txt", "Open the admin console and press Rotate. Old keys stop working after 24 hours.")]
QUESTION = PREFIX + [{"role": "user", "content": PROMPTS.answer_turn("How do I rotate the API keys?", PASSAGE)}]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCENT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fresh() -> LlamaCppGenerator:
    """A generator as a new process has it: nothing evaluated yet."""
    generator = LlamaCppGenerator(SETTINGS.generation)
    generator.warm_up()
    return generator


def answer(generator) -> tuple[str, list[float]]:
    return "".join(generator.stream(QUESTION, max_tokens=24)), generator.choice_probabilities(QUESTION, ["yes", "no"])


@pytest.fixture(scope="module")
def plain():
    """The answer and P(yes) without any kept state."""
    return answer(fresh())


def state_file(cache):
    files = list((cache / "prompt-states").glob("answer-*.npz"))
    assert len(files) == 1, files
    return files[0]


def test_a_restored_prefix_gives_the_same_answer(cache, plain):
    first = fresh()
    assert first.keep_prefix(PREFIX, "answer") == "pending"        # nothing saved yet
    assert answer(first) == plain
    assert first.prefix_report["status"] == "saved"
    with np.load(state_file(cache), allow_pickle=False) as data:    # plain arrays only: no pickle
        assert len(data["tokens"]) == first.prefix_report["tokens"] and data["state"].size > 0
    second = fresh()
    assert second.keep_prefix(PREFIX, "answer") == "loaded"
    assert second.llm.n_tokens == second.prefix_report["tokens"] > 100     # the prefix is in the cache, not read again
    text, probabilities = answer(second)
    assert text == plain[0] and np.allclose(probabilities, plain[1], atol=1e-6)


def test_a_server_saves_the_prefix_at_start(cache, plain):
    generator = fresh()
    assert generator.keep_prefix(PREFIX, "answer", build=True) == "saved"
    assert state_file(cache).is_file() and answer(generator)[0] == plain[0]


def test_a_state_from_another_prefix_or_model_is_ignored_and_replaced(cache, plain, caplog):
    other = PREFIX[:1] + [{"role": "user", "content": "Another example."}, {"role": "assistant", "content": "Yes [1]."}]
    fresh().keep_prefix(other, "answer", build=True)
    with caplog.at_level(logging.WARNING):
        generator = fresh()
        assert generator.keep_prefix(PREFIX, "answer") == "pending"
    assert len(caplog.records) == 1 and "ignored" in caplog.records[0].getMessage()
    assert answer(generator)[0] == plain[0]
    assert generator.prefix_report["status"] == "saved"         # replaced by this prefix's state
    assert fresh().keep_prefix(PREFIX, "answer") == "loaded"
    # Another model file (its size or time differs): the key says so.
    path = state_file(cache)
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    key = bytes(arrays["key"]).replace(b'"model_bytes": ', b'"model_bytes": 1')
    with open(path, "wb") as out:
        np.savez(out, **{**arrays, "key": np.frombuffer(key, dtype=np.uint8)})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert fresh().keep_prefix(PREFIX, "answer") == "pending"
    assert "another model" in caplog.records[0].getMessage()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad state"])
def test_a_damaged_state_file_is_ignored_and_replaced(cache, plain, caplog, damage):
    fresh().keep_prefix(PREFIX, "answer", build=True)
    path = state_file(cache)
    if damage == "garbage":
        path.write_bytes(b"not a state file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100_000])
    else:                                   # a readable file whose llama.cpp state is cut short
        with np.load(path, allow_pickle=False) as data:
            arrays = dict(data)
        with open(path, "wb") as out:
            np.savez(out, **{**arrays, "state": arrays["state"][:1000]})
    with caplog.at_level(logging.WARNING):
        generator = fresh()
        assert generator.keep_prefix(PREFIX, "answer") == "pending"
    assert [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()] != []
    assert all("Traceback" not in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)
    assert answer(generator)[0] == plain[0]
    assert generator.prefix_report["status"] == "saved"
    assert fresh().keep_prefix(PREFIX, "answer") == "loaded"


def test_an_unwritable_cache_costs_nothing_but_a_line(cache, plain, caplog):
    cache.mkdir(parents=True)
    (cache / "prompt-states").write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING):
        generator = fresh()
        assert generator.keep_prefix(PREFIX, "answer") == "pending"
        assert answer(generator)[0] == plain[0]
    assert generator.prefix_report["status"] == "unsaved"
    assert len([r for r in caplog.records if "not saved" in r.getMessage()]) == 1


def test_other_generators_keep_nothing():
    from bot.generators.llama import keep_prefix
    from conftest import FakeGenerator
    assert keep_prefix(FakeGenerator(), PREFIX, "answer") is None
