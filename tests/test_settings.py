import pytest

from docent.settings import PROJECT_ROOT, SettingsError, load_settings


def test_defaults_come_from_the_settings_file():
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
