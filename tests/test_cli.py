"""The `docent` command as a user runs it, with the real (int8 ONNX) embedding model."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from docent.cli import main
from ingest.pipeline import Ingestor
from ingest.store import CollectionWriter

from conftest import FakeEmbedder


@pytest.fixture
def run(tmp_path):
    home = tmp_path / "home"

    def invoke(*args):
        runner = CliRunner()
        return runner.invoke(main, ["--home", str(home), *map(str, args)],
                             env={"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None}, catch_exceptions=False)
    invoke.home = home
    return invoke


def test_ingest_sources_reingest_and_remove(run, docs):
    first = run("ingest", docs)
    assert first.exit_code == 0, first.output
    assert "3 added" in first.output
    listing = run("sources")
    assert listing.exit_code == 0
    for name in ("install.md", "faq.txt", "guide.rst"):
        assert name in listing.output
    assert "3 files (3 ok, 0 failed)" in listing.output
    again = run("ingest", docs)
    assert again.exit_code == 0 and "3 unchanged" in again.output and "0 chunks embedded" in again.output
    removed = run("remove", docs / "faq.txt")
    assert removed.exit_code == 0 and "removed:" in removed.output
    assert "faq.txt" not in run("sources").output


def test_failed_and_skipped_files_are_named_with_reasons_and_exit_1(run, docs):
    (docs / "empty.txt").write_text("   \n")
    (docs / "logo.psd").write_bytes(b"8BPS")
    result = run("ingest", docs)
    assert result.exit_code == 1
    assert f"failed: {docs / 'empty.txt'}: empty file" in result.output
    assert "skipped (unsupported format)" in result.output and "logo.psd" in result.output
    assert "3 added" in result.output and "1 failed" in result.output


def test_json_report(run, docs):
    result = run("ingest", docs, "--json", "-c", "team")
    data = json.loads(result.output)
    assert data["collection"] == "team" and data["counts"]["added"] == 3
    assert data["chunks_embedded"] > 0
    sources = json.loads(run("sources", "-c", "team", "--json").output)
    assert {s["status"] for s in sources} == {"ok"} and len(sources) == 3


def test_second_writer_gets_a_clear_message_and_status_3(run, docs):
    run("ingest", docs)
    with CollectionWriter(run.home, "default", model=None, dim=None):
        result = run("ingest", docs)
    assert result.exit_code == 3
    assert "being written by another docent process" in result.output


def test_model_mismatch_says_what_to_do_and_reembed_fixes_it(run, docs, settings):
    settings = settings.with_values("paths", home=str(run.home))
    Ingestor(settings, FakeEmbedder()).ingest([docs])
    result = run("ingest", docs)
    assert result.exit_code == 4
    assert "fake-embedder" in result.output and "--reembed" in result.output
    fixed = run("ingest", "--reembed", docs)
    assert fixed.exit_code == 0 and "re-embedded" in fixed.output


def test_usage_errors(run, tmp_path):
    assert run("ingest").exit_code == 2
    missing = run("ingest", tmp_path / "nope")
    assert missing.exit_code == 2 and "nope: no such file or folder" in missing.output
    assert run("sources", "-c", "nothing").exit_code == 5


def test_help_explains_itself_without_loading_heavy_libraries():
    code = ("import sys; from docent.cli import main\n"
            "try:\n    main(['ingest', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'onnxruntime', 'pypdf') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Exit status" in out and "--reembed" in out and "--collection" in out
    assert "HEAVY []" in out


def test_names_and_text_from_documents_cannot_drive_the_terminal(tmp_path):
    """A file name with a newline and an escape sequence, and a passage holding escape
    and bidirectional control characters: printed as escapes by ingest, retrieve and
    sources, never sent raw (they could recolour or retitle the terminal)."""
    from docent.cli import main
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "odd\nname\x1b[31m.md").write_text("# Backups\n\nBackups run \x1b]0;owned\x07nightly \u202eat 02:00.\n")
    (docs / "bad\x1b[2J.pdf").write_bytes(b"%PDF-1.4 not really")
    env = {"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None}
    run = lambda *args: CliRunner().invoke(main, ["--home", str(tmp_path / "home"), *args], env=env)
    outputs = [run("ingest", str(docs), "-q"), run("retrieve", "When do backups run?"), run("sources")]
    for result in outputs:
        shown = result.output + (result.stderr if result.stderr_bytes is not None else "")
        assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "\\x1b" in outputs[1].output and "\\u202e" in outputs[1].output
