"""One settings object for the whole of docent: defaults file + optional user file +
profile + environment, loaded once by the entry point and passed down.

Nothing here reads configuration at import time.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = Path(__file__).resolve().parent / "settings.toml"
ENV_PREFIX = "DOCENT_"


class SettingsError(ValueError):
    """A settings file or environment override that cannot be used."""


@dataclass(frozen=True)
class PathSettings:
    home: str = ""


@dataclass(frozen=True)
class IngestSettings:
    collection: str = "default"
    max_file_mb: float = 50
    exclude: tuple[str, ...] = (".*", "__pycache__", "node_modules", "*~", "*.tmp")
    checkpoint_seconds: float = 60


@dataclass(frozen=True)
class ChunkingSettings:
    max_tokens: int = 240
    min_tokens: int = 48
    overlap_tokens: int = 24


@dataclass(frozen=True)
class EmbeddingSettings:
    model: str = "all-MiniLM-L6-v2"
    backend: str = "onnx-int8"
    batch_size: int = 8
    threads: int = 0


@dataclass(frozen=True)
class RetrievalSettings:
    mode: str = "hybrid"
    k: int = 4
    candidates: int = 30
    rrf_k: int = 10
    keyword_weight: float = 2.0
    keyword_max_df: float = 1.0
    rerank: str = "none"
    rerank_candidates: int = 12
    dedupe_overlap: float = 0.8
    merge_neighbours: bool = True
    min_score: float = 0.4


@dataclass(frozen=True)
class GenerationSettings:
    backend: str = "llama-cpp"
    model: str = "qwen2.5-coder-1.5b"
    context_window: int = 4096
    max_answer_tokens: int = 320
    temperature: float = 0.0
    seed: int = 0
    threads: int = 0
    base_url: str = ""
    server_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: float = 120


@dataclass(frozen=True)
class AnswerSettings:
    prompts: str = ""
    style: str = "plain"
    fallback: str = "auto"
    repoint_citations: bool = True
    min_coverage: float = 0.0
    judge_answerable: float = 0.62
    judge_addresses: float = 0.0
    history_turns: int = 3
    max_question_chars: int = 2000


@dataclass(frozen=True)
class GuardSettings:
    groundedness: bool = True
    unsupported: str = "flag"
    threshold: float = 0.0
    judge: bool = True


@dataclass(frozen=True)
class LeakSettings:
    secret: str = "redact"
    pii: str = "flag"
    confidential: str = "flag"
    restricted_paths: tuple[str, ...] = ()
    paths_case_sensitive: bool = False
    exclude: tuple[str, ...] = ("restricted",)
    restricted: str = "block"


@dataclass(frozen=True)
class UiSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    user: str = ""
    password: str = ""
    max_upload_mb: float = 50
    max_upload_files: int = 2000
    feedback_file: str = ""
    starter_docs: str = "docs/guide"


@dataclass(frozen=True)
class Settings:
    paths: PathSettings = field(default_factory=PathSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    guard: GuardSettings = field(default_factory=GuardSettings)
    leaks: LeakSettings = field(default_factory=LeakSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    # [collections.NAME.leaks]: a collection's own leak policy, over [leaks] (e.g. hr
    # redacts personal data, the public handbook allows it).
    collection_leaks: Mapping[str, LeakSettings] = field(default_factory=dict)
    profile: str = ""

    def leaks_for(self, collection: str | None = None) -> LeakSettings:
        """The leak policy of a collection (None: the default collection)."""
        return self.collection_leaks.get(collection or self.ingest.collection, self.leaks)

    def home_dir(self, override: str | os.PathLike | None = None) -> Path:
        """Where collections live: --home, else settings/env DOCENT_HOME, else indexes/."""
        if override:
            return Path(override).expanduser().resolve()
        if self.paths.home:
            return Path(self.paths.home).expanduser().resolve()
        return PROJECT_ROOT / "indexes"

    def prompts_dir(self) -> Path:
        """Prompt templates: answer.prompts, else the project's prompts/."""
        if self.answer.prompts:
            return Path(self.answer.prompts).expanduser().resolve()
        return PROJECT_ROOT / "prompts"

    def with_values(self, section: str, **values: Any) -> "Settings":
        """A copy with some values of one section changed (used by CLI flags and tests)."""
        return replace(self, **{section: replace(getattr(self, section), **values)})


_SECTIONS = {"paths": PathSettings, "ingest": IngestSettings, "chunking": ChunkingSettings,
             "embedding": EmbeddingSettings, "retrieval": RetrievalSettings,
             "generation": GenerationSettings, "answer": AnswerSettings, "guard": GuardSettings,
             "leaks": LeakSettings, "ui": UiSettings}


def load_settings(
    file: str | os.PathLike | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults file, then the user file, then the profile, then env.

    `env` defaults to os.environ; tests pass their own mapping.
    """
    env = os.environ if env is None else env
    data = _read_toml(DEFAULTS_FILE)
    profiles = data.pop("profile", {})
    collections = data.pop("collections", {})
    file = file or env.get(ENV_PREFIX + "SETTINGS")
    if file:
        user = _read_toml(Path(file))
        profiles.update(user.pop("profile", {}))
        _merge(collections, user.pop("collections", {}))
        _merge(data, user)
    profile = profile if profile is not None else env.get(ENV_PREFIX + "PROFILE", "")
    if profile:
        if profile not in profiles:
            raise SettingsError(f"unknown settings profile {profile!r} (known: {', '.join(sorted(profiles)) or 'none'})")
        for dotted, value in profiles[profile].items():
            _set_dotted(data, dotted, value) if not isinstance(value, dict) else _merge(data.setdefault(dotted, {}), value)
    if env.get(ENV_PREFIX + "HOME"):
        data.setdefault("paths", {})["home"] = env[ENV_PREFIX + "HOME"]
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            section, _, name = key[len(ENV_PREFIX):].lower().partition("__")
            _set_dotted(data, f"{section}.{name}", raw, from_env=True)
    return _build(data, profile, collections)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(data: dict, dotted: str, value: Any, from_env: bool = False) -> None:
    section, _, name = dotted.partition(".")
    if section not in _SECTIONS or name not in {f.name for f in fields(_SECTIONS[section])}:
        if from_env:
            raise SettingsError(f"unknown setting in environment: {ENV_PREFIX}{section.upper()}__{name.upper()}")
        raise SettingsError(f"unknown setting {dotted!r}")
    data.setdefault(section, {})[name] = value


def _coerce(cls: type, name: str, value: Any) -> Any:
    default = next(f for f in fields(cls) if f.name == name).default
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(value)
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {cls.__name__}.{name}: cannot use {value!r}") from None


def _build(data: dict, profile: str, collections: dict | None = None) -> Settings:
    sections = {}
    for section, cls in _SECTIONS.items():
        values = data.get(section, {})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SettingsError(f"unknown setting(s) in [{section}]: {', '.join(sorted(unknown))}")
        sections[section] = cls(**{k: _coerce(cls, k, v) for k, v in values.items()})
    unknown_sections = set(data) - set(_SECTIONS)
    if unknown_sections:
        raise SettingsError(f"unknown settings section(s): {', '.join(sorted(unknown_sections))}")
    per_collection = {}
    for name, overrides in (collections or {}).items():
        if not isinstance(overrides, dict) or set(overrides) - {"leaks"}:
            raise SettingsError(f"[collections.{name}] may only hold a [collections.{name}.leaks] table")
        values = overrides.get("leaks", {})
        unknown = set(values) - {f.name for f in fields(LeakSettings)}
        if unknown:
            raise SettingsError(f"unknown setting(s) in [collections.{name}.leaks]: {', '.join(sorted(unknown))}")
        per_collection[name] = replace(sections["leaks"], **{k: _coerce(LeakSettings, k, v) for k, v in values.items()})
    return Settings(profile=profile, collection_leaks=per_collection, **sections)
