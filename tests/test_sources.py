"""Sources a collection remembers and syncs: folders and git branches (real git)."""

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from docent.cli import main
from ingest.pipeline import Ingestor
from ingest.sources.git import parse_spec
from ingest.store import Collection

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A repository with a branch of three documents and a file docent does not read."""
    root = tmp_path / "handbook"
    (root / "docs").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "Tester")
    (root / "docs" / "deploy.md").write_text("# Deploy\n\nDeploys run every Tuesday at 10:00 from the release branch.\n")
    (root / "docs" / "oncall.md").write_text("# On call\n\nThe on-call engineer answers pages within 15 minutes.\n")
    (root / "refunds.txt").write_text("Refunds are paid within 14 days of the request.\n")
    (root / "logo.psd").write_bytes(b"8BPS")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def spec_of(repo, branch="main"):
    return f"git+file://{repo}@{branch}"


def files_of(settings, name="default"):
    with Collection(settings.home_dir(), name) as coll:
        return {f.path: f for f in coll.files()}


def test_a_branch_is_ingested_with_the_commit_each_file_came_from(settings, fake_embedder, repo):
    report = Ingestor(settings, fake_embedder).ingest([spec_of(repo)])
    assert report.count("added") == 3 and [r.path.rsplit(":", 1)[1] for r in report.skipped] == ["logo.psd"]
    files = files_of(settings)
    key = spec_of(repo) + ":docs/deploy.md"
    assert key in files
    origin = files[key].origin_info()
    assert origin["commit"] == git(repo, "rev-parse", "HEAD").strip() and origin["path"] == "docs/deploy.md"
    with Collection(settings.home_dir(), "default") as coll:
        [source] = coll.sources()
    assert source.kind == "git" and source.state["commit"] == origin["commit"] and source.error is None


def test_a_citation_names_the_repository_path_and_commit(settings, fake_embedder, repo):
    from bot.retrieval import Retriever

    Ingestor(settings, fake_embedder).ingest([spec_of(repo)])
    commit = git(repo, "rev-parse", "HEAD").strip()
    [passage] = Retriever(settings, fake_embedder).retrieve("on-call engineer pages", k=1, mode="keyword").passages
    assert passage.source == spec_of(repo) + ":docs/oncall.md" and passage.revision == commit[:12]
    assert passage.location == f"{spec_of(repo)}:docs/oncall.md, commit {commit[:12]}, On call"
    assert passage.to_dict(1)["commit"] == commit[:12] and passage.link is None     # no web page to open


def test_sync_reads_only_the_files_changed_on_the_branch(settings, fake_embedder, repo):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([spec_of(repo)])
    (repo / "docs" / "deploy.md").write_text("# Deploy\n\nDeploys run every Thursday at 09:00 from the release branch.\n")
    git(repo, "mv", "refunds.txt", "money-back.txt")               # a rename: the same text
    git(repo, "rm", "-q", "docs/oncall.md")
    (repo / "docs" / "new.md").write_text("# Holidays\n\nThe office is closed on 24 December.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "second")
    fake_embedder.calls.clear()
    report = ingestor.sync()
    actions = {r.path.rsplit(":", 1)[1]: r.action for r in report.results if r.action != "skipped"}
    assert actions == {"docs/deploy.md": "updated", "money-back.txt": "added", "docs/new.md": "added",
                       "docs/oncall.md": "removed", "refunds.txt": "removed"}
    embedded = fake_embedder.embedded_texts
    assert any("Thursday" in t for t in embedded) and any("24 December" in t for t in embedded)
    assert not any("Refunds" in t for t in embedded)                   # the renamed file reused its vector
    with Collection(settings.home_dir(), "default") as coll:
        assert coll.sources()[0].state["commit"] == git(repo, "rev-parse", "HEAD").strip()
    again = ingestor.sync()
    assert again.count("unchanged") == 3 and again.chunks_embedded == 0


def test_sync_follows_a_force_push(settings, fake_embedder, repo):
    ingestor = Ingestor(settings, fake_embedder)
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "docs" / "secret-plan.md").write_text("# Plan\n\nThe merger closes in March.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "oops")
    ingestor.ingest([spec_of(repo)])
    assert any(k.endswith(":docs/secret-plan.md") for k in files_of(settings))
    git(repo, "reset", "-q", "--hard", first)                         # history rewritten on the branch
    report = ingestor.sync()
    assert [r.path.rsplit(":", 1)[1] for r in report.results if r.action == "removed"] == ["docs/secret-plan.md"]
    assert report.source_errors == []


def test_an_unreadable_repository_leaves_the_collection_as_it_was(settings, fake_embedder, repo, tmp_path):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([spec_of(repo)])
    before = files_of(settings)
    moved = tmp_path / "moved-away"
    repo.rename(moved)                                                  # the server is gone
    shutil.rmtree(settings.home_dir() / "default" / "sources")          # and no mirror to fall back on
    report = ingestor.sync()
    [(spec, reason)] = report.source_errors
    assert spec == spec_of(repo) and "does not appear to be a git repository" in reason
    assert report.exit_code == 1 and files_of(settings).keys() == before.keys()
    with Collection(settings.home_dir(), "default") as coll:
        assert "git repository" in coll.sources()[0].error
    missing_branch = ingestor.ingest([spec_of(moved, "nope")])
    assert "no branch, tag or commit named 'nope'" in missing_branch.source_errors[0][1]
    with Collection(settings.home_dir(), "default") as coll:
        assert [s.spec for s in coll.sources()] == [spec_of(repo)]        # a source never read is not remembered


def test_folder_sources_are_remembered_and_synced(settings, fake_embedder, docs, tmp_path):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    ingestor.ingest([docs / "faq.txt"])                 # inside the folder: no second source
    (docs / "faq.txt").write_text("How do I rotate API keys?\n\nPress Rotate twice.\n")
    (docs / "guide.rst").unlink()
    (docs / "new.md").write_text("# New\n\nA page added later.\n")
    report = ingestor.sync()
    actions = {r.path.rsplit("/", 1)[1]: r.action for r in report.results}
    assert actions == {"faq.txt": "updated", "install.md": "unchanged", "new.md": "added", "guide.rst": "removed"}
    with Collection(settings.home_dir(), "default") as coll:
        assert [s.spec for s in coll.sources()] == [str(docs)]
    # An unmounted folder is not a folder emptied: nothing leaves the index.
    docs.rename(tmp_path / "elsewhere")
    gone = ingestor.sync()
    assert gone.count("removed") == 0 and "not found" in gone.source_errors[0][1]
    assert len(files_of(settings)) == 3


def test_cli_ingest_sync_and_sources_by_source(tmp_path, repo, docs):
    home = tmp_path / "clihome"

    def run(*args):
        return CliRunner().invoke(main, ["--home", str(home), *map(str, args)],
                                  env={"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None}, catch_exceptions=False)

    assert run("ingest", spec_of(repo), docs).exit_code == 0
    listing = run("sources", "--by-source")
    assert listing.exit_code == 0
    assert f"{spec_of(repo)}  [git]  3 files (0 failed)" in listing.output
    assert f"{docs}  [folder]  3 files (0 failed)" in listing.output
    assert "commit " + git(repo, "rev-parse", "HEAD")[:12] in listing.output
    as_json = json.loads(run("sources", "--by-source", "--json").output)
    assert {s["kind"] for s in as_json["sources"]} == {"git", "folder"}
    (docs / "install.md").unlink()
    synced = run("sync")
    assert synced.exit_code == 0 and "1 removed" in synced.output
    bad = run("ingest", tmp_path / "no-such-folder")
    assert bad.exit_code == 2 and "no such file or folder" in bad.output
    unreadable = run("ingest", f"git+file://{tmp_path}/nothing-here@main")
    assert unreadable.exit_code == 1 and "source not read:" in unreadable.output
    removed = run("remove", spec_of(repo))
    assert removed.exit_code == 0 and "(source)" in removed.output
    assert spec_of(repo) not in run("sources", "--by-source").output


@pytest.mark.parametrize("spec, url, ref", [
    ("git+file:///srv/git/handbook.git@main", "file:///srv/git/handbook.git", "main"),
    ("git+ssh://git@host.example/team/repo.git", "ssh://git@host.example/team/repo.git", None),
    ("git+ssh://git@host.example/team/repo.git@release/2.1", "ssh://git@host.example/team/repo.git", "release/2.1"),
    ("git+https://host.example/repo.git", "https://host.example/repo.git", None),
])
def test_git_specs_name_the_repository_and_the_branch(spec, url, ref):
    assert parse_spec(spec) == (url, ref)
