"""kill -9 at arbitrary moments of a real ingest process: the index must stay readable,
with vectors and metadata agreeing, and the next run must finish the job."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from docent.settings import load_settings
from ingest.pipeline import Ingestor
from ingest.store import Collection, CollectionNotFound

from conftest import FakeEmbedder, open_reader

SCRIPT = textwrap.dedent("""
    import signal, sys, time
    # A shell that starts a job in the background without job control makes it ignore
    # SIGINT, and children inherit that: restore Python's Ctrl-C handling.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    from docent.settings import load_settings
    import ingest.pipeline as pipeline
    from ingest.pipeline import Ingestor

    class Slow(FakeEmbedder):
        def embed(self, texts):
            time.sleep({delay})
            return super().embed(texts)

    pipeline._EMBED_POOL = 1          # commit after every file: many chances to be killed mid-write
    settings = load_settings(profile="test", env={{}}).with_values("paths", home={home!r}).with_values(
        "store", approximate_above={above}, pg_index_above={above}, backend={backend!r}, url={url!r})
    print("ready", flush=True)
    report = Ingestor(settings, Slow()).ingest([{docs!r}])
    sys.exit(report.exit_code)
""")


def _check(home: Path, settings=None) -> int:
    with (open_reader(settings) if settings is not None else Collection(home, "default")) as coll:
        index = coll.vector_index()
        assert len(index) == coll.chunk_count()
        ids = [int(i) for i in index.ids()]
        assert len(coll.chunks(ids)) == len(ids)
        for f in coll.files():
            assert len(coll.chunks_of(f.path)) == f.n_chunks
        return len(coll.files())


def _committed_files(home: Path) -> int:
    try:
        with Collection(home, "default") as coll:
            return len(coll.files())
    except Exception:           # created but not yet initialised: nothing committed
        return 0


def _setup(tmp_path: Path, delay: float = 0.02, above: int = 250_000, backend: str = "faiss",
           url: str = "embedded") -> tuple[Path, Path, str]:
    """60 pages to ingest, and the script of an ingest process that commits after each
    (each embedding call takes `delay` seconds longer); past `above` chunks its index is
    approximate."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"page{i:02d}.md").write_text(f"# Page {i}\n\n" + f"Paragraph about subject {i}. " * 40)
    home = tmp_path / "home"
    return docs, home, SCRIPT.format(tests=str(Path(__file__).parent), home=str(home), docs=str(docs), delay=delay,
                                     above=above, backend=backend, url=url)


@pytest.mark.parametrize("backend, above", [("faiss", 250_000), ("faiss", 20), ("postgres", 20)],
                         ids=["exact", "approximate", "postgres"])
def test_kill_9_at_any_moment_leaves_a_readable_consistent_index(tmp_path, request, backend, above):
    """Approximate: past 20 chunks the FAISS index is IVF, mostly published without a new
    file (a generation names an older file and readers catch up from the catalog); in
    PostgreSQL, an IVFFlat index (the default) is built past 20 chunks while writes go on."""
    url = request.getfixturevalue("pg_url") if backend == "postgres" else "embedded"
    docs, home, script = _setup(tmp_path, above=above, backend=backend, url=url)
    settings = load_settings(profile="test", env={}).with_values("paths", home=str(home)).with_values(
        "store", approximate_above=above, pg_index_above=above, backend=backend, url=url)
    seen = []
    for delay in (0.4, 0.7, 1.0, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        try:
            seen.append(_check(home, settings))
        except CollectionNotFound:          # killed before the collection was made
            pass
    assert seen and max(seen) > 0, "the runs were killed before anything was committed"
    report = Ingestor(settings, FakeEmbedder()).ingest([docs])
    assert not report.failed
    assert _check(home, settings) == 60
    if backend == "faiss":
        assert not [p for p in (home / "default").iterdir() if p.name.endswith(".tmp")]
        with Collection(home, "default") as coll:
            assert coll.vector_index().approximate == (above < 60)
    else:
        with open_reader(settings) as coll:
            assert coll.info()["vector_search"].startswith("approximate (pgvector IVFFlat")


def test_ctrl_c_stops_with_status_130_and_keeps_finished_files(tmp_path):
    docs, home, script = _setup(tmp_path, delay=0.1)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    # Interrupt once the run is under way (a first file committed), however slow the machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (home / "default" / "docent.sqlite").exists() and _committed_files(home) > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert 0 < _check(home) < 60


BIG_SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    from bot.guard.labels import ChunkLabeller
    from docent.settings import load_settings
    from ingest.pipeline import Ingestor

    settings = load_settings(profile="test", env={{}}).with_values("paths", home={home!r})
    print("ready", flush=True)
    try:
        report = Ingestor(settings, FakeEmbedder(), labeller=ChunkLabeller(settings.leaks)).ingest([{docs!r}])
    except KeyboardInterrupt:
        sys.exit(131)                  # the interrupt escaped the ingest: not what a user should see
    print("interrupted" if report.interrupted else "finished", flush=True)
    sys.exit(report.exit_code)
""")


def test_ctrl_c_is_honoured_within_seconds_while_a_50_mb_file_is_read_and_scanned(tmp_path):
    """A 49 MiB text file (under the 50 MiB limit) keeps the loader, chunker and secret
    scanner busy for minutes; Ctrl-C must not wait for them."""
    docs = tmp_path / "docs"
    docs.mkdir()
    line = "The backup job copies the nightly snapshot to the archive bucket and checks it. " * 8 + "\n"
    with (docs / "a-big.txt").open("w") as out:
        for _ in range(49 * 1024 * 1024 // len(line)):
            out.write(line)
    home = tmp_path / "home"
    script = BIG_SCRIPT.format(tests=str(Path(__file__).parent), home=str(home), docs=str(docs))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(4)                       # well into reading, chunking and scanning the big file
    assert proc.poll() is None, "the big file was done already: the test proves nothing"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    assert code == 130 and proc.stdout.read().strip() == "interrupted"
    assert time.monotonic() - sent < 15, "Ctrl-C waited for the file being read"
