"""One settings object for the whole of docent: defaults (the field defaults below) +
optional user file + profile + environment, loaded once by the entry point and passed down.

Every section is a frozen pydantic dataclass: a value outside its allowed set or range
is refused when the settings are loaded (and when a section is built or `replace`d), as
one SettingsError line naming the key, where it came from and what is allowed.
docent/settings.toml explains each key beside its default (commented out) and holds the
profiles. Nothing here reads configuration at import time.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, get_args, get_origin

import pydantic.dataclasses
from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = Path(__file__).resolve().parent / "settings.toml"
ENV_PREFIX = "DOCENT_"


class SettingsError(ValueError):
    """A settings file or environment override that cannot be used."""

    key: str | None = None          # the field at fault, when a section refused a value
    detail: str = ""
    related: str | None = None      # the other field of a cross-field rule


# Constraints shared by many fields.
Count = Annotated[int, Field(ge=1)]                  # 0 makes no sense
Threads = Annotated[int, Field(ge=0)]                # 0: all cores
NonNegative = Annotated[int, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]          # shares, probabilities, 0: off
Positive = Annotated[float, Field(gt=0)]             # sizes, timeouts
Name = Annotated[str, Field(min_length=1)]
# Closed sets, as their consumers accept them (bot/guard/leaks.py POLICIES, bot/guard/labels.py LABELS).
Policy = Literal["allow", "flag", "redact", "block"]
Label = Literal["secret", "pii", "confidential", "restricted", "injection"]

# Numbers are taken for strings (a TOML `password = 1234`) as before; unknown keywords are
# refused; defaults are validated too, so a cross-field rule sees a default against a new value.
_section = functools.partial(pydantic.dataclasses.dataclass, frozen=True, config=ConfigDict(
    extra="forbid", coerce_numbers_to_str=True, validate_default=True))


def _validated(cls: type) -> type:
    """A settings section whose constructor (and so `dataclasses.replace`) raises
    SettingsError instead of pydantic's multi-line ValidationError."""
    cls = _section(cls)
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            raise _error(cls, exc) from None

    cls.__init__ = __init__
    return cls


@_validated
class PathSettings:
    home: str = ""


@_validated
class IngestSettings:
    collection: Name = "default"
    max_file_mb: Positive = 50
    exclude: tuple[str, ...] = (".*", "__pycache__", "node_modules", "*~", "*.tmp")
    checkpoint_seconds: Annotated[float, Field(ge=0)] = 60     # 0: after every file (profile test)


@_validated
class ChunkingSettings:
    max_tokens: Count = 240
    min_tokens: NonNegative = 48
    overlap_tokens: NonNegative = 24

    # Fields are validated in order, so max_tokens is in info.data when it was valid.
    @field_validator("min_tokens")
    @classmethod
    def _min_within_max(cls, value: int, info: ValidationInfo) -> int:
        limit = info.data.get("max_tokens")
        if limit is not None and value > limit:
            raise PydanticCustomError("cross_field", "{value} is more than chunking.max_tokens ({limit})",
                                      {"value": value, "limit": limit, "other": "max_tokens"})
        return value

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_below_max(cls, value: int, info: ValidationInfo) -> int:
        limit = info.data.get("max_tokens")
        if limit is not None and value >= limit:
            raise PydanticCustomError("cross_field", "{value} is not less than chunking.max_tokens ({limit})",
                                      {"value": value, "limit": limit, "other": "max_tokens"})
        return value


@_validated
class EmbeddingSettings:
    model: Name = "all-MiniLM-L6-v2"
    backend: Literal["onnx-int8", "torch"] = "onnx-int8"        # ingest/embedder/ BACKENDS
    batch_size: Count = 8
    threads: Threads = 0


@_validated
class RetrievalSettings:
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"      # bot/retrieval.py MODES
    k: Count = 4
    candidates: Count = 30
    rrf_k: NonNegative = 10                                     # ranks start at 1: 0 divides by >= 1
    keyword_weight: Annotated[float, Field(ge=0)] = 1.0
    keyword_max_df: Share = 1.0
    rerank: str = "none"                                        # "none" or a model name or folder
    rerank_candidates: Count = 12
    dedupe_overlap: Share = 0.8
    merge_neighbours: bool = True
    widen_chars: NonNegative = 0                                # bot/merge.py widen_short; 0: off
    # A cosine, but above 1 is allowed: tests use 2.0 for "nothing is relevant enough".
    min_score: Annotated[float, Field(ge=-1)] = 0.4


@_validated
class GenerationSettings:
    backend: Name = "llama-cpp"          # open set: checked by the component builder
    model: Name = "qwen2.5-coder-1.5b"
    context_window: Count = 4096
    max_answer_tokens: Count = 320
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0      # 2: OpenAI's ceiling
    seed: int = 0
    threads: Threads = 0
    base_url: str = ""
    server_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_seconds: Positive = 120


@_validated
class AnswerSettings:
    prompts: str = ""
    style: Literal["grammar", "plain"] = "plain"                           # bot/steps/prompt.py (grammar)
    fallback: Literal["auto", "extractive", "abstain", "none"] = "auto"   # bot/steps/finish.py
    repoint_citations: bool = True
    min_coverage: Share = 0.0
    judge_answerable: Share = 0.62
    judge_addresses: Share = 0.0
    judge_backs: bool = True          # bot/steps/finish.py: the guard's judge may back a reworded answer
    restated: bool = True             # bot/steps/finish.py: an answer that only restates the question falls back
    restated_yes_no: bool = True      # bot/steps/finish.py: so does a bare yes / no restating a yes / no question
    answers_asked: bool = True        # bot/steps/asked.py: so does an answer without the number or the action asked
    unnamed: bool = True              # bot/steps/asked.py: a question naming what no document mentions is not answered
    cite_uncited: bool = True         # bot/steps/guard.py: a backed sentence without a citation gets its passage's
    history_turns: NonNegative = 3
    max_question_chars: Count = 2000


@_validated
class GuardSettings:
    groundedness: bool = True
    unsupported: Literal["flag", "drop"] = "flag"               # bot/guard/groundedness.py
    threshold: Share = 0.0                                      # a probability; 0: the fitted one
    judge: bool = True
    scanners: tuple[Name, ...] = ()     # bot/guard/scanners.py: names under the docent.scanners entry point


@_validated
class LeakSettings:
    secret: Policy = "redact"
    pii: Policy = "flag"
    confidential: Policy = "flag"
    restricted_paths: tuple[str, ...] = ()
    paths_case_sensitive: bool = False
    exclude: tuple[Label, ...] = ("restricted",)
    restricted: Literal["allow", "flag", "block"] = "block"     # bot/answer.py: no redact here
    # A passage's instructions to the assistant ("ignore previous instructions..."): always
    # flagged; "withhold": also left out of what the model reads (the passage shown keeps them).
    injection: Literal["flag", "withhold"] = "withhold"


@_validated
class StoreSettings:
    # faiss: a folder per collection under the home folder; postgres: a database (ingest/store/backends.py)
    backend: Literal["faiss", "postgres"] = "faiss"
    url: Name = "embedded"         # postgres: postgresql://user:password@host/db, or a private server under the home
    vectors: Name = "faiss"        # a key of ingest/store/vectors.py's registry (plugins may add one)
    # FAISS: exact search up to this many chunks, approximate (IVF) above; 0: always exact.
    approximate_above: Annotated[int, Field(ge=0)] = 250_000
    nprobe: Annotated[int, Field(ge=1, le=65536)] = 512    # IVF lists a search reads: more is slower and finds more
    # PostgreSQL: exact search (a scan, ~0.6 µs a chunk) up to this many chunks, a pgvector index above; 0: always exact
    pg_index_above: Annotated[int, Field(ge=0)] = 20_000
    pg_index: Literal["ivfflat", "hnsw"] = "ivfflat"      # that index (benchmarks/postgres.py)
    pg_probes: Annotated[int, Field(ge=1, le=65536)] = 192  # IVFFlat lists a search reads: more is slower and finds more


@_validated
class UiSettings:
    host: Name = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 7860
    user: str = ""
    password: str = ""
    max_upload_mb: Positive = 50
    max_upload_files: Count = 2000
    feedback_file: str = ""
    starter_docs: str = "docs/guide"


@_validated
class ServerSettings:
    host: Name = "127.0.0.1"                # docent serve: another address needs users (docent users add)
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    max_waiting: Annotated[int, Field(ge=0, le=10000)] = 8     # questions queued for the model; more: 429
    max_body_kb: Annotated[int, Field(ge=1)] = 256
    audit_retention_days: Annotated[int, Field(ge=0)] = 0      # 0: keep the audit log forever
    # Questions answered at once when the generator serves several (an OpenAI-compatible
    # backend); the local model always answers one at a time.
    parallel: Annotated[int, Field(ge=1, le=256)] = 4
    cors_origins: tuple[str, ...] = ()        # browser origins allowed to call the API; none: CORS off


@_validated
class SourcesSettings:
    # Documentation sites (ingest/sources/site.py).
    site_max_pages: Count = 500                  # pages read per crawl; the rest wait for the next sync
    site_delay_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5    # between requests to one site
    site_timeout_seconds: Positive = 20
    site_header_env: str = ""                    # env var holding one "Header: value" sent to the site
    # Watch mode (docent ingest --watch): changes are gathered this long before a batch,
    # and a file is read only once its size and time stop changing for settle_ms.
    watch_debounce_ms: Annotated[int, Field(ge=50, le=60_000)] = 400
    watch_settle_ms: Annotated[int, Field(ge=0, le=60_000)] = 300


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
    store: StoreSettings = field(default_factory=StoreSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
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
        """A copy with some values of one section changed (used by CLI flags and tests);
        a value the section refuses raises SettingsError."""
        return replace(self, **{section: replace(getattr(self, section), **values)})


_SECTIONS = {"paths": PathSettings, "ingest": IngestSettings, "chunking": ChunkingSettings,
             "embedding": EmbeddingSettings, "retrieval": RetrievalSettings,
             "generation": GenerationSettings, "answer": AnswerSettings, "guard": GuardSettings,
             "leaks": LeakSettings, "store": StoreSettings, "ui": UiSettings, "server": ServerSettings,
             "sources": SourcesSettings}
_LABELS = {cls: name for name, cls in _SECTIONS.items()}


def _error(cls: type, exc: ValidationError) -> SettingsError:
    """pydantic's first complaint as one line: the key, the value, what is allowed."""
    err = exc.errors(include_url=False)[0]
    key = err["loc"][0] if err["loc"] else None
    key = fields(cls)[key].name if isinstance(key, int) else key       # a positional argument
    info = cls.__pydantic_fields__.get(key or "")
    value, kind, related = err.get("input"), err["type"], None
    if kind == "literal_error" and info is not None:
        detail = f"{value!r} is not one of {', '.join(map(str, _choices(info.annotation)))}"
    elif kind.startswith(("greater_than", "less_than")) and info is not None:
        detail = f"{value} is out of range: {_range(info.metadata)}"
    elif kind == "cross_field":
        detail, related = err["msg"], err["ctx"]["other"]
    elif kind == "string_too_short":
        detail = "must not be empty"
    elif kind == "unexpected_keyword_argument":
        detail = f"unknown setting (known: {', '.join(f.name for f in fields(cls))})"
    else:
        detail = f"cannot use {value!r}: {err['msg'][0].lower()}{err['msg'][1:]}"
    label = _LABELS.get(cls, cls.__name__)
    out = SettingsError(f"setting {f'{label}.{key}' if key else label}: {detail}")
    out.key, out.detail, out.related = key, detail, related
    return out


def _choices(annotation: Any) -> tuple:
    """The values of the Literal in a field's type (also inside tuple[Literal[...], ...])."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return next((c for arg in get_args(annotation) if (c := _choices(arg))), ())


def _range(metadata: list) -> str:
    bounds = {name: getattr(m, name) for m in metadata for name in ("ge", "gt", "le", "lt") if hasattr(m, name)}
    if "ge" in bounds and "le" in bounds:
        return f"must be from {bounds['ge']} to {bounds['le']}"
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return "must be " + " and ".join(f"{words[name]} {bound}" for name, bound in bounds.items())


def load_settings(
    file: str | os.PathLike | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: field defaults, then docent/settings.toml (explanations and
    profiles only), the user file, the profile, then env.

    `env` defaults to os.environ; tests pass their own mapping.
    """
    env = os.environ if env is None else env
    tables: dict[str, dict] = {}        # "retrieval" or "collections.hr.leaks" -> values set
    origins: dict[str, str] = {}        # "retrieval.mode" -> where that value came from
    data = _read_toml(DEFAULTS_FILE)
    profiles = data.pop("profile", {})
    _apply(tables, origins, data, str(DEFAULTS_FILE.relative_to(PROJECT_ROOT)))
    file = file or env.get(ENV_PREFIX + "SETTINGS")
    if file:
        user = _read_toml(Path(file))
        profiles.update(user.pop("profile", {}))
        _apply(tables, origins, user, str(file))
    profile = profile if profile is not None else env.get(ENV_PREFIX + "PROFILE", "")
    if profile:
        if profile not in profiles:
            raise SettingsError(f"unknown settings profile {profile!r} (known: {', '.join(sorted(profiles)) or 'none'})")
        _apply(tables, origins, profiles[profile], f"profile {profile}")
    if env.get(ENV_PREFIX + "HOME"):
        _apply(tables, origins, {"paths": {"home": env[ENV_PREFIX + "HOME"]}}, ENV_PREFIX + "HOME")
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            section, _, name = key[len(ENV_PREFIX):].lower().partition("__")
            _apply(tables, origins, {section: {name: raw}}, key)
    return _build(tables, origins, profile)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None


def _apply(tables: dict, origins: dict, layer: Mapping, source: str) -> None:
    """Lay one source's values over `tables`, remembering where each came from."""
    for section, values in layer.items():
        if section == "collections" and isinstance(values, dict):
            for name, sub in values.items():
                if not isinstance(sub, dict) or set(sub) - {"leaks"} or not isinstance(sub.get("leaks", {}), dict):
                    raise SettingsError(f"[collections.{name}] may only hold a [collections.{name}.leaks] table "
                                        f"(in {source})")
                _put(tables, origins, f"collections.{name}.leaks", LeakSettings, sub.get("leaks", {}), source)
        elif not isinstance(values, dict) and "." in section:     # a quoted dotted key in a profile
            head, _, name = section.partition(".")
            _apply(tables, origins, {head: {name: values}}, source)
        elif section in _SECTIONS and isinstance(values, dict):
            _put(tables, origins, section, _SECTIONS[section], values, source)
        else:
            raise SettingsError(f"unknown settings section {section!r} (from {source}); "
                                f"known: {', '.join(_SECTIONS)}, collections")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0", "")


def _put(tables: dict, origins: dict, label: str, cls: type, values: Mapping, source: str) -> None:
    names = [f.name for f in fields(cls)]
    for key, value in values.items():
        if key not in names:
            raise SettingsError(f"unknown setting {label}.{key} (from {source}); [{label}] has: {', '.join(names)}")
        default = cls.__dataclass_fields__[key].default
        # Text (env, or a string in a file): yes/no spellings for bools, commas for lists.
        if isinstance(value, str) and isinstance(default, bool):
            if value.strip().lower() not in _TRUE + _FALSE:
                raise SettingsError(f"setting {label}.{key} (from {source}): {value!r} is not one of "
                                    f"{', '.join(_TRUE + _FALSE[:-1])}")
            value = value.strip().lower() in _TRUE
        elif isinstance(value, str) and isinstance(default, tuple):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        tables.setdefault(label, {})[key] = value
        origins[f"{label}.{key}"] = source


def _build(tables: dict, origins: dict, profile: str) -> Settings:
    sections = {name: _make(name, origins, cls, tables.get(name, {})) for name, cls in _SECTIONS.items()}
    per_collection = {
        label[len("collections."):-len(".leaks")]: _make(label, origins, functools.partial(replace, sections["leaks"]), values)
        for label, values in tables.items() if label.startswith("collections.")}
    return Settings(profile=profile, collection_leaks=per_collection, **sections)


def _make(label: str, origins: dict, build, values: dict):
    """build(**values), its error re-worded with the key as the user wrote it and its source."""
    try:
        return build(**values)
    except SettingsError as exc:
        if exc.key is None:
            raise
        def where(key: str | None) -> str | None:
            return origins.get(f"{label}.{key}") if key else None
        source, other = where(exc.key), where(exc.related)
        raise SettingsError(f"setting {label}.{exc.key}{f' (from {source})' if source else ''}: {exc.detail}"
                            f"{f'; {label}.{exc.related} is set by {other}' if other else ''}") from None
