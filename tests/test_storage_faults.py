"""Storage faults met for real: a truncated database file, a read-only home (a read-only
bind mount), a full disk (a 2 MiB tmpfs). Each ends in one line naming the collection,
exit code 5, and the other collections keep working.

The mounts need a private mount namespace (`unshare -m`, as root, which CI is); where
that is not allowed the read-only case uses file permissions and the full-disk case is
skipped, saying why."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FakeGenerator

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "DOCENT_PROFILE": "test", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
ENV.pop("DOCENT_SETTINGS", None)


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


MOUNTS = _can_mount()


def _docent(home: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """The CLI in its own process; `prelude` (shell, run first in a private mount namespace)."""
    command = [sys.executable, "-m", "docent.cli", "--home", str(home), *args]
    if prelude:
        command = ["unshare", "-m", "sh", "-c", f"{prelude} && exec {shlex.join(command)}"]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def two_collections(tmp_path, docs, settings):
    """Collections "good" and "hurt" of the same files, embedded by the model the CLI uses."""
    from ingest.pipeline import Ingestor
    home = Path(settings.paths.home)
    ingestor = Ingestor(settings)
    for name in ("good", "hurt"):
        ingestor.ingest([docs], collection=name)
    return home


def test_a_damaged_database_is_one_line_and_the_other_collections_work(two_collections, docs):
    home = two_collections
    db = home / "hurt" / "docent.sqlite"
    db.write_bytes(db.read_bytes()[:5000])          # a file cut short: a crash, a bad copy
    for args in (["sources", "-c", "hurt"], ["retrieve", "backups", "-c", "hurt"], ["ask", "When do backups run?", "-c", "hurt"],
                 ["ingest", str(docs), "-c", "hurt", "-q"]):
        result = _docent(home, *args)
        assert result.returncode == 5, (args, result.stderr)
        line = _one_line(result)
        assert "collection 'hurt' is damaged" in line and "ingest the documents again" in line
    good = _docent(home, "sources", "-c", "good")
    assert good.returncode == 0 and "faq.txt" in good.stdout


def test_the_window_starts_with_a_damaged_collection_marked(two_collections, settings):
    from bot.service import Service
    db = two_collections / "hurt" / "docent.sqlite"
    db.write_bytes(db.read_bytes()[:5000])
    service = Service(settings.with_values("ingest", collection="hurt").with_values("ui", starter_docs=""),
                      generator=FakeGenerator())
    service.warm_up("hurt")
    assert service.warm_up_error is None                 # the models loaded; the window runs
    assert "is damaged" in service.problem("hurt") and service.problem("good") is None
    assert [r.path for r in service.sources("good")]


def test_a_read_only_home_can_be_read_but_not_written(two_collections, docs, tmp_path):
    home = two_collections
    if MOUNTS:
        prelude = f"mount --bind {shlex.quote(str(home))} {shlex.quote(str(home))} && " \
                  f"mount -o remount,bind,ro {shlex.quote(str(home))}"
    elif os.geteuid() != 0:
        prelude = ""
        for folder in [home, *home.iterdir()]:
            folder.chmod(0o555)
    else:
        pytest.skip("needs `unshare -m` (a read-only bind mount) or a non-root user")
    try:
        listed = _docent(home, "sources", "-c", "good", prelude=prelude)
        assert listed.returncode == 0 and "faq.txt" in listed.stdout, listed.stderr
        found = _docent(home, "retrieve", "backups", "-c", "good", prelude=prelude)
        assert found.returncode == 0 and "guide.rst" in found.stdout, found.stderr
        (docs / "new.md").write_text("# New\n\nA new page.\n")
        written = _docent(home, "ingest", str(docs), "-c", "good", "-q", prelude=prelude)
        assert written.returncode == 5
        line = _one_line(written)
        assert "collection 'good'" in line and "cannot write" in line and "can be read" in line
    finally:
        for folder in [home, *home.iterdir()]:
            folder.chmod(0o755)


@pytest.mark.skipif(not MOUNTS, reason="a full disk is made as a small tmpfs in a private mount namespace "
                                       "(`unshare -m`), which this machine does not allow")
def test_a_full_disk_is_one_line_and_leaves_a_readable_collection(tmp_path, docs):
    disk = tmp_path / "disk"
    disk.mkdir()
    many = tmp_path / "many"
    many.mkdir()
    words = ["alpha", "beta", "gamma", "delta", "backup", "server", "night", "disk", "index", "query"]
    for n in range(40):
        paragraphs = [" ".join(f"{words[(n * 7 + i * 3 + j) % 10]}{(n * 1009 + i * 101 + j * 7) % 99991}"
                               for j in range(60)) + "." for i in range(40)]
        (many / f"d{n}.md").write_text(f"# Doc {n}\n\n" + "\n\n".join(paragraphs) + "\n")
    home = disk / "home"
    # Everything runs inside one namespace: the tmpfs lives as long as the shell.
    script = (f"mount -t tmpfs -o size=2m tmpfs {shlex.quote(str(disk))} && "
              f"{sys.executable} -m docent.cli --home {home} ingest {docs} -q && "
              f"{sys.executable} -m docent.cli --home {home} ingest {many} -q; echo \"exit=$?\" >&2; "
              f"{sys.executable} -m docent.cli --home {home} retrieve backups")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=ENV,
                            cwd=ROOT, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    assert "exit=5" in result.stderr
    assert "collection 'default': the disk holding" in result.stderr and "is full" in result.stderr
    assert "guide.rst" in result.stdout             # what was committed before is intact and readable


def test_storage_faults_are_told_in_the_users_words():
    import errno
    import sqlite3

    from ingest.errors import StorageFault, storage_faults
    cases = [(sqlite3.DatabaseError("database disk image is malformed"), "damaged"),
             (sqlite3.OperationalError("database or disk is full"), "full"),
             (OSError(errno.EROFS, "Read-only file system"), "read-only"),
             (sqlite3.OperationalError("attempt to write a readonly database"), "read-only")]
    for raised, kind in cases:
        with pytest.raises(StorageFault) as caught:
            with storage_faults("corp", Path("/srv/docent/corp")):
                raise raised
        assert caught.value.kind == kind and "collection 'corp'" in str(caught.value)
    with pytest.raises(sqlite3.OperationalError):            # not a storage fault: a bug, raised as it is
        with storage_faults("corp", Path("/srv")):
            raise sqlite3.OperationalError("no such column: x")
