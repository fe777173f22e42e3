import dataclasses
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields

import pytest

from docent.settings import DEFAULTS_FILE, PROJECT_ROOT, LeakSettings, Settings, SettingsError, load_settings


def test_defaults():
    s = load_settings(env={})
    assert s.embedding.model == "all-MiniLM-L6-v2"
    assert s.ingest.collection == "default"
    assert s.home_dir() == PROJECT_ROOT / "indexes"


def test_user_file_then_profile_then_environment(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[ingest]\nmax_file_mb = 5\ncollection = "team"\n[chunking]\nmax_tokens = 300\n')
    s = load_settings(user, profile="test", env={"DOCENT_INGEST__MAX_FILE_MB": "7", "DOCENT_HOME": str(tmp_path)})
    assert s.ingest.collection == "team"
    assert s.ingest.max_file_mb == 7.0            # env beats the file
    assert s.chunking.max_tokens == 120           # the profile beats the file
    assert s.home_dir() == tmp_path
    assert s.home_dir(tmp_path / "x") == tmp_path / "x"   # --home beats everything


def test_list_settings_from_the_environment_are_comma_separated():
    s = load_settings(env={"DOCENT_INGEST__EXCLUDE": "drafts, *.bak"})
    assert s.ingest.exclude == ("drafts", "*.bak")


@pytest.mark.parametrize("env, message", [
    ({"DOCENT_EMBEDDING__MODLE": "x"}, "DOCENT_EMBEDDING__MODLE"),
    ({"DOCENT_CHUNKING__MAX_TOKENS": "many"}, "max_tokens"),
    ({"DOCENT_PROFILE": "nope"}, "unknown settings profile"),
])
def test_mistakes_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_unknown_key_in_a_file_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[embedding]\nbakend = 'torch'\n")
    with pytest.raises(SettingsError, match="bakend"):
        load_settings(bad, env={})
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})


# --- validated at load --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["env", "file", "profile"])
def test_a_value_outside_its_set_names_the_key_its_source_and_the_choices(tmp_path, where):
    file = tmp_path / "mine.toml"
    file.write_text('[profile.mine]\nretrieval.mode = "hybird"\n' if where == "profile"
                    else '[retrieval]\nmode = "hybird"\n')
    args = {"env": ({}, {"DOCENT_RETRIEVAL__MODE": "hybird"}),
            "file": ({"file": file}, {}),
            "profile": ({"file": file, "profile": "mine"}, {})}[where]
    with pytest.raises(SettingsError) as caught:
        load_settings(**args[0], env=args[1])
    source = {"env": "DOCENT_RETRIEVAL__MODE", "file": str(file), "profile": "profile mine"}[where]
    assert str(caught.value) == (f"setting retrieval.mode (from {source}): "
                                 "'hybird' is not one of hybrid, dense, keyword")


@pytest.mark.parametrize("env, message", [
    ({"DOCENT_UI__PORT": "70000"}, r"ui.port \(from DOCENT_UI__PORT\): 70000 is out of range: must be from 1 to 65535"),
    ({"DOCENT_RETRIEVAL__K": "0"}, r"retrieval.k \(from DOCENT_RETRIEVAL__K\): 0 is out of range: must be at least 1"),
    ({"DOCENT_GUARD__THRESHOLD": "1.5"}, r"guard.threshold \(from DOCENT_GUARD__THRESHOLD\): 1.5 is out of range: must be from 0 to 1"),
    ({"DOCENT_GENERATION__TIMEOUT_SECONDS": "0"}, "must be more than 0"),
    ({"DOCENT_ANSWER__FALLBACK": "maybe"}, "answer.fallback .*auto, extractive, abstain, none"),
    ({"DOCENT_LEAKS__EXCLUDE": "restricted, secrets"}, "leaks.exclude .*'secrets' is not one of secret, pii"),
    ({"DOCENT_GUARD__JUDGE": "ture"}, "guard.judge .*'ture' is not one of true, yes, on, 1, false, no, off, 0"),
    ({"DOCENT_GENERATION__BACKEND": ""}, "generation.backend .*must not be empty"),
    ({"DOCENT_CHUNKING__MAX_TOKENS": "40"},
     r"chunking.min_tokens: 48 is more than chunking.max_tokens \(40\); chunking.max_tokens is set by DOCENT_CHUNKING__MAX_TOKENS"),
    ({"DOCENT_CHUNKING__OVERLAP_TOKENS": "240"}, "overlap_tokens .*240 is not less than chunking.max_tokens"),
])
def test_ranges_and_rules_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_bools_keep_their_spellings_and_lists_their_commas():
    s = load_settings(env={"DOCENT_GUARD__JUDGE": "off", "DOCENT_RETRIEVAL__MERGE_NEIGHBOURS": "Yes",
                           "DOCENT_LEAKS__EXCLUDE": "restricted, secret", "DOCENT_RETRIEVAL__MIN_SCORE": "0"})
    assert s.guard.judge is False and s.retrieval.merge_neighbours is True
    assert s.leaks.exclude == ("restricted", "secret") and s.retrieval.min_score == 0.0


def test_a_collection_policy_is_validated_like_leaks(tmp_path):
    file = tmp_path / "mine.toml"
    file.write_text('[collections.hr.leaks]\npii = "mask"\n')
    with pytest.raises(SettingsError, match=re.escape(
            f"setting collections.hr.leaks.pii (from {file}): 'mask' is not one of allow, flag, redact, block")):
        load_settings(file, env={})
    file.write_text('[collections.hr.leaks]\npii = "redact"\nrestricted = "redact"\n')
    with pytest.raises(SettingsError, match="collections.hr.leaks.restricted .*allow, flag, block"):
        load_settings(file, env={})


def test_sections_built_or_replaced_in_code_are_validated_too():
    s = load_settings(profile="test", env={})
    assert dataclasses.replace(s.retrieval, k=7).k == 7
    assert s.with_values("retrieval", min_score=2.0).retrieval.min_score == 2.0   # "nothing is relevant"
    assert s.generation.__class__(backend="openai", base_url="http://x").backend == "openai"
    with pytest.raises(SettingsError, match="setting retrieval.mode: 'x' is not one of hybrid, dense, keyword"):
        s.with_values("retrieval", mode="x")
    with pytest.raises(SettingsError, match="retrieval.bogus: unknown setting"):
        s.with_values("retrieval", bogus=1)
    with pytest.raises(SettingsError, match="leaks.pii"):
        LeakSettings(pii="mask")
    with pytest.raises(SettingsError, match="retrieval.k"):
        dataclasses.replace(s.retrieval, k=0)


def _documented_defaults() -> dict[str, dict[str, object]]:
    """settings.toml's commented-out `# key = value` lines, per section (profiles excluded)."""
    found: dict[str, dict[str, object]] = {}
    section = None
    for line in DEFAULTS_FILE.read_text().splitlines():
        if line.startswith("[profile."):
            break
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section = header.group(1)
        elif entry := re.fullmatch(r"# (\w+) = (.+)", line):
            found.setdefault(section, {})[entry.group(1)] = tomllib.loads(f"v = {entry.group(2)}")["v"]
    return found


def test_settings_toml_documents_every_default_as_the_code_has_it():
    documented = _documented_defaults()
    sections = {f.name: f.type for f in fields(Settings) if f.name not in ("collection_leaks", "profile")}
    assert set(documented) == set(sections)
    defaults = Settings()
    for name in sections:
        section = getattr(defaults, name)
        assert set(documented[name]) == {f.name for f in fields(section)}, name
        for f in fields(section):
            value = documented[name][f.name]
            assert (tuple(value) if isinstance(value, list) else value) == f.default, f"{name}.{f.name}"
    # Values are only documented there, never set (apart from the profiles).
    assert all(not table for key, table in tomllib.loads(DEFAULTS_FILE.read_text()).items() if key != "profile")


@pytest.mark.parametrize("command", [["ask", "How do I rotate the keys?"], ["retrieve", "api keys"]])
def test_a_bad_value_stops_the_cli_at_once_with_one_line(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    env.update(DOCENT_RETRIEVAL__MODE="hybird", DOCENT_HOME=str(tmp_path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # -X importtime lists every module imported, on stderr: none of the heavy ones may be.
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "docent.cli", *command],
                          env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    said = [line for line in lines if not line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    assert done.returncode == 2, done.stderr
    assert said == ["docent: setting retrieval.mode (from DOCENT_RETRIEVAL__MODE): "
                    "'hybird' is not one of hybrid, dense, keyword"]
    assert "docent.settings" in imported and not imported & {
        "torch", "faiss", "onnxruntime", "sentence_transformers", "llama_cpp", "gradio", "pypdf",
        "bot.retrieval", "bot.answer", "ingest.embedder"}


@pytest.mark.parametrize("setting, value, command, known", [
    ("DOCENT_GENERATION__BACKEND", "ollama-ish", ["ask", "How do I rotate the keys?"], "llama-cpp, openai"),
    ("DOCENT_STORE__VECTORS", "annoy", ["retrieve", "api keys"], "faiss"),
    ("DOCENT_STORE__VECTORS", "annoy", ["sources"], "faiss"),
])
def test_an_unknown_backend_stops_the_cli_at_start_naming_the_known_ones(tmp_path, setting, value, command, known):
    """Backends are open to plugins, so pydantic cannot list them: the builder looks them
    up before any model loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    env.update({setting: value, "DOCENT_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "docent.cli", *command],
                          env=env, capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    said = [line for line in lines if not line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    assert done.returncode == 2 and len(said) == 1, done.stderr
    assert repr(value) in said[0] and known in said[0]
    assert not imported & {"torch", "faiss", "onnxruntime", "llama_cpp", "sentence_transformers"}
