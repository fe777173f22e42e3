"""The one atomic writer (docent/atomic.py): the old file or the new one, never half."""

import threading

import pytest

from docent.atomic import is_scratch, replacing, scratch_for, write_atomically


def test_a_failed_write_leaves_the_old_file_and_no_scratch(tmp_path):
    target = tmp_path / "rows.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with replacing(target) as scratch:
            scratch.write_text("half of the ne")
            raise RuntimeError("disk full (simulated)")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "report.html"
    write_atomically(target, "<p>first</p>")
    write_atomically(target, b"<p>second</p>")
    assert target.read_text() == "<p>second</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_writers_in_several_threads_never_mix_their_files(tmp_path):
    target = tmp_path / "state.json"
    texts = [str(n) * 200_000 for n in range(8)]
    threads = [threading.Thread(target=write_atomically, args=(target, text)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_scratch_file_left_by_a_crash_is_recognised_by_its_name(tmp_path):
    # A kill -9 between writing and renaming leaves the scratch file: the store's clean-up
    # finds it by name (and only it, not the FAISS files themselves).
    left = scratch_for(tmp_path / "vectors-3.faiss")
    assert is_scratch(left, ".faiss.") and left.parent == tmp_path
    assert not is_scratch(tmp_path / "vectors-3.faiss", ".faiss.")
    assert not is_scratch(scratch_for(tmp_path / "report.html"), ".faiss.")
