"""Backends by the name in settings.generation.backend: the built-in ones, then those
other packages install under the entry-point group `docent.generators`

    [project.entry-points."docent.generators"]
    my-server = "my_package.module:MyGenerator"     # a class taking GenerationSettings

Installed backends are looked up only when a name is not built in (reading every
installed package's metadata costs time at start), and then kept."""

from __future__ import annotations

import importlib

from bot.generators.base import Generator, GeneratorError
from docent.plugins import EntryPoints
from docent.settings import GenerationSettings

ENTRY_POINT_GROUP = "docent.generators"
# Built-in backends as "module:class", imported when chosen.
BUILT_IN = {
    "llama-cpp": "bot.generators.llama:LlamaCppGenerator",
    "openai": "bot.generators.openai_compat:OpenAIGenerator",
}
PLUGINS = EntryPoints(ENTRY_POINT_GROUP, "generation backend")


def installed_backends() -> dict:
    """Backends other packages register (name -> importlib.metadata.EntryPoint)."""
    return PLUGINS.installed()


def forget_installed_backends() -> None:
    """Read the entry points again on the next lookup (after installing a package)."""
    PLUGINS.forget()


def known_backends() -> list[str]:
    return list(BUILT_IN) + sorted(set(installed_backends()) - set(BUILT_IN))


def backend_class(name: str) -> type:
    """The generator class registered under `name`."""
    if name in BUILT_IN:
        module, _, attribute = BUILT_IN[name].partition(":")
        return getattr(importlib.import_module(module), attribute)
    if name not in installed_backends():
        raise GeneratorError(f"unknown generation.backend {name!r}: use one of {', '.join(known_backends())}")
    return PLUGINS.load(name, GeneratorError)


def make_generator(settings: GenerationSettings) -> Generator:
    """The generator settings.backend names (cheap: weights load in warm_up())."""
    return backend_class(settings.backend)(settings)
