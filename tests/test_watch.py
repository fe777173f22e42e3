"""docent ingest --watch: files written while the watcher runs land in the index."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ingest.pipeline import Ingestor
from ingest.sources.watch import keep_in_sync, watching
from ingest.store import Collection


class Watching:
    """keep_in_sync on a thread, with what it reported and noted."""

    def __init__(self, settings, embedder, folder):
        self.settings = settings.with_values("sources", watch_debounce_ms=100, watch_settle_ms=250)
        self.ingestor = Ingestor(self.settings, embedder)
        self.folder = folder
        self.reports, self.notes = [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=keep_in_sync, daemon=True, args=(
            self.ingestor, [str(folder)], None, self.reports.append, self.notes.append, self.stop))

    def __enter__(self):
        self.thread.start()
        self.until(lambda: self.reports, "the first ingest")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def files(self) -> dict:
        with Collection(self.settings.home_dir(), "default") as coll:
            return {os.path.relpath(f.path, self.folder): f for f in coll.files()}

    def text_of(self, name: str) -> str:
        with Collection(self.settings.home_dir(), "default") as coll:
            return " ".join(c.text for c in coll.chunks_of(str(self.folder / name)))

    def until(self, check, what: str, seconds: float = 20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        pytest.fail(f"watch: {what} did not happen within {seconds} s (notes: {self.notes})")


def test_create_edit_delete_and_rename_land_in_the_index(settings, fake_embedder, docs):
    with Watching(settings, fake_embedder, docs) as w:
        assert set(w.files()) == {"install.md", "faq.txt", "guide.rst"}
        assert watching(settings.home_dir() / "default")["pid"] == os.getpid()
        (docs / "new.md").write_text("# Parking\n\nVisitors park on level -2.\n")
        w.until(lambda: "level -2" in w.text_of("new.md"), "a new file")
        (docs / "new.md").write_text("# Parking\n\nVisitors park on level -3 since May.\n")
        w.until(lambda: "level -3" in w.text_of("new.md"), "an edit")
        (docs / "faq.txt").unlink()
        w.until(lambda: "faq.txt" not in w.files(), "a deletion")
        (docs / "sub").mkdir()
        (docs / "install.md").rename(docs / "sub" / "setup.md")
        w.until(lambda: "sub/setup.md" in w.files() and "install.md" not in w.files(), "a rename")
        embedded = [r for report in w.reports for r in report.results if r.path.endswith("setup.md")]
        assert embedded and embedded[-1].embedded == 0             # the moved file kept its vectors
    assert watching(settings.home_dir() / "default") is None      # the status goes with the watcher


def test_a_file_still_being_written_is_read_once_it_is_complete(settings, fake_embedder, docs):
    with Watching(settings, fake_embedder, docs) as w:
        lines = [f"Step {n}: check valve {n} and write down its pressure." for n in range(12)]
        with open(docs / "procedure.md", "w") as fh:
            fh.write("# Procedure\n\n")
            for line in lines:                     # a slow copy: a line every 0.1 s for 1.2 s
                fh.write(line + "\n\n")
                fh.flush()
                time.sleep(0.1)
        w.until(lambda: "Step 11" in w.text_of("procedure.md"), "the whole file")
        time.sleep(1.0)                            # anything else the watcher would do with it
        reads = [r.action for report in w.reports for r in report.results if r.path.endswith("procedure.md")]
        assert [a for a in reads if a != "unchanged"] == ["added"], reads    # read once, whole


def test_swap_files_and_excluded_paths_are_ignored(settings, fake_embedder, docs):
    with Watching(settings, fake_embedder, docs) as w:
        (docs / ".install.md.swp").write_bytes(b"b0VIM 9.0")
        (docs / "4913").write_text("vim checks it can write here")
        (docs / "~$budget.md").write_text("# lock file of an office suite")
        (docs / "node_modules").mkdir()
        (docs / "node_modules" / "readme.md").write_text("# a dependency's readme")
        (docs / "kept.md").write_text("# Kept\n\nThis one is a document.\n")
        w.until(lambda: "kept.md" in w.files(), "the real document")
        assert set(w.files()) == {"install.md", "faq.txt", "guide.rst", "kept.md"}


def test_a_folder_that_goes_away_keeps_its_files_and_is_read_again_when_back(settings, fake_embedder, tmp_path):
    folder = tmp_path / "share" / "docs"
    folder.mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\nAlpha document.\n")
    with Watching(settings, fake_embedder, folder) as w:
        away = tmp_path / "share" / "docs-away"
        folder.rename(away)
        w.until(lambda: any("gone" in n for n in w.notes), "the note that the folder is gone")
        assert set(w.files()) == {"a.md"}
        (away / "b.md").write_text("# B\n\nBravo document.\n")
        away.rename(folder)
        w.until(lambda: set(w.files()) == {"a.md", "b.md"}, "the folder read again")
        assert any("back" in n for n in w.notes)


def test_ctrl_c_stops_the_watch_with_exit_130_and_keeps_what_it_saw(tmp_path, docs):
    home = tmp_path / "home"
    env = {**os.environ, "DOCENT_PROFILE": "test", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DOCENT_SETTINGS", None)
    proc = subprocess.Popen([sys.executable, "-m", "docent.cli", "--home", str(home), "ingest", str(docs), "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        first = proc.stdout.readline()              # the first ingest's summary
        assert "3 added" in first, first + proc.stderr.read() if proc.poll() is not None else first
        (docs / "late.md").write_text("# Late\n\nWritten while watching.\n")
        line = proc.stdout.readline()
        assert "1 added" in line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "stopped watching" in err
    assert "Traceback" not in err
    with Collection(home, "default") as coll:
        assert any(f.path.endswith("late.md") for f in coll.files())


def test_the_window_shows_that_a_collection_is_watched_and_its_last_change(settings, fake_embedder, docs):
    from bot.service import Service
    service = Service(settings, embedder=fake_embedder)
    with Watching(settings, fake_embedder, docs) as w:
        watched, last = service.watched_since("default")
        assert watched and last is None                       # watching; nothing changed yet
        (docs / "new.md").write_text("# New\n\nSomething changed.\n")
        w.until(lambda: service.watched_since("default")[1] is not None, "the last change recorded")
    assert service.watched_since("default") == (False, None)
