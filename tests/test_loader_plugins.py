"""Third-party loaders: packages declaring `docent.loaders` entry points, found on first use."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import loaders
from ingest.document import LoadError
from ingest.loaders import format_for, load_file

# A format where "! " opens a heading line; the module a plugin package would ship.
XYZ_LOADER = '''
from ingest.document import ExtractedDocument, Heading, LoadError
from ingest.loaders import Loader


def load(data):
    text = data.decode("utf-8").rstrip()
    if "boom" in text:
        raise ValueError("the parser fell over")
    headings, offset = [], 0
    for line in text.split("\\n"):
        if line.startswith("! "):
            headings.append(Heading(offset, 1, line[2:]))
        offset += len(line) + 1
    return ExtractedDocument(text, "xyz", headings[::-1])     # unsorted: load_file sorts


LOADER = Loader("xyz", (".xyz",), load)


def make_loader():                    # an entry point may name a factory instead
    return Loader("xyz-factory", (".xyzf",), load)


GREEDY = Loader("greedy", (".md", ".greedy"), load)
NOT_A_LOADER = "a string"
'''


def install(folder: Path, dist: str, entry_points: str, module: str | None = None) -> None:
    """What pip leaves in site-packages: the module and a dist-info folder with entry points."""
    if module is not None:
        (folder / f"{dist}.py").write_text(module)
    info = folder / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[docent.loaders]\n{entry_points}\n")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """An importable folder for plugin packages; the registry is forgotten before and after."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    loaders.reset_registry()
    yield folder
    loaders.reset_registry()
    sys.modules.pop("xyz_loader", None)


def test_a_plugin_adds_a_format_found_on_first_use_and_cached(plugins, tmp_path):
    install(plugins, "xyz_loader", "xyz = xyz_loader:LOADER", XYZ_LOADER)
    assert format_for(Path("a.xyz")) == "xyz" and format_for(Path("A.XYZ")) == "xyz"
    assert loaders.FORMATS[".xyz"] == "xyz" and loaders.FORMATS[".md"] == "markdown"
    doc_path = tmp_path / "notes.xyz"
    doc_path.write_text("! First\nbody\n! Second\nmore\n")
    doc = load_file(doc_path)
    assert doc.format == "xyz" and [h.title for h in doc.headings] == ["First", "Second"]

    install(plugins, "late_loader", "late = xyz_loader:make_loader")
    assert format_for(Path("a.xyzf")) is None            # cached: installed after the first look
    loaders.reset_registry()
    assert format_for(Path("a.xyzf")) == "xyz-factory"   # a factory's Loader


def test_a_plugin_cannot_take_a_builtin_suffix(plugins, caplog):
    install(plugins, "xyz_loader", "greedy = xyz_loader:GREEDY", XYZ_LOADER)
    assert format_for(Path("README.md")) == "markdown"
    assert format_for(Path("a.greedy")) == "greedy"      # its other suffix still works
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'greedy'" in record.getMessage() and ".md (markdown)" in record.getMessage()


def test_broken_plugins_are_skipped_with_one_line_each(plugins, caplog, tmp_path):
    install(plugins, "xyz_loader", "xyz = xyz_loader:LOADER\nodd = xyz_loader:NOT_A_LOADER", XYZ_LOADER)
    install(plugins, "broken_loader", "broken = no_such_module_here:LOADER")
    assert format_for(Path("a.xyz")) == "xyz" and format_for(Path("a.pdf")) == "pdf"
    warnings = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert any("'broken'" in w and "ModuleNotFoundError" in w for w in warnings)
    assert any("'odd'" in w and "not a Loader" in w for w in warnings)
    (tmp_path / "a.md").write_text("# Still read\n")
    assert load_file(tmp_path / "a.md").headings[0].title == "Still read"


def test_a_plugin_exception_becomes_a_load_error(plugins, tmp_path):
    install(plugins, "xyz_loader", "xyz = xyz_loader:LOADER", XYZ_LOADER)
    (tmp_path / "bad.xyz").write_text("boom\n")
    with pytest.raises(LoadError, match=r"^xyz loader failed: ValueError: the parser fell over$"):
        load_file(tmp_path / "bad.xyz")


def test_docent_ingest_reads_a_plugin_format_end_to_end(tmp_path):
    """The real command in a fresh process, the plugin importable through PYTHONPATH only."""
    site = tmp_path / "site"
    site.mkdir()
    install(site, "xyz_loader", "xyz = xyz_loader:LOADER", XYZ_LOADER)
    install(site, "broken_loader", "broken = no_such_module_here:LOADER")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.xyz").write_text("! Backups\nBackups run nightly at 02:00 and are kept for 30 days.\n")
    (docs / "install.md").write_text("# Install\n\nRun the installer with sudo.\n")
    env = {**os.environ, "DOCENT_PROFILE": "test", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.pop("DOCENT_SETTINGS", None)
    cli = [sys.executable, "-m", "docent.cli", "--home", str(tmp_path / "home")]

    ingest = subprocess.run([*cli, "ingest", str(docs), "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["counts"]["added"] == 2
    [warning] = [line for line in ingest.stderr.splitlines() if "loader plugin" in line]
    assert "'broken'" in warning

    listed = subprocess.run([*cli, "sources", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    sources = {Path(s["path"]).name: s for s in json.loads(listed.stdout)}
    assert sources["runbook.xyz"]["format"] == "xyz" and sources["runbook.xyz"]["status"] == "ok"
    assert sources["runbook.xyz"]["n_chunks"] >= 1 and sources["install.md"]["format"] == "markdown"
