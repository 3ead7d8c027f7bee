"""Output written in one step (:mod:`fractal_embeddings.atomic`): a failed overwrite keeps the old
run whole, :func:`atomic_dir` replaces only a folder it may; files and folders (cache entries, records,
downloads, run and index folders) get the umask's default mode. Real short runs on the small CLINC150
user file (conftest)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import pytest

from _helpers import ARRAY, IDENT, no_leftovers, whole_run
from fractal_embeddings.atomic import atomic_write_bytes
from fractal_embeddings.cache import EmbeddingCache


# ------------------------------------------- run directories change in one step
def test_overwrite_that_fails_keeps_the_old_run_whole(two_runs, tmp_path):
    """Defect 1: new weights replaced the old ones before the record was written; a failure between the
    two left the old record with the new weights. Here the new record can't be written (a NaN)."""
    from fractal_embeddings.records import RunRecordError
    from fractal_embeddings.weights import save_run

    old, new = two_runs
    target = old.save(tmp_path / "run")
    before = whole_run(target)
    bad = json.loads(json.dumps(new.record.to_dict()))
    bad["steerability"]["S"] = float("nan")
    with pytest.raises(RunRecordError, match=r"steerability\.S .*not a finite number"):
        save_run(target, bad, new.head, overwrite=True)
    assert whole_run(target) == before
    no_leftovers(tmp_path, {"run"})
    # a successful overwrite: the new run, whole, and nothing left beside it
    new.save(target, overwrite=True)
    assert whole_run(target)["run_id"] == new.record.to_dict()["run_id"] != old.record.to_dict()["run_id"]
    no_leftovers(tmp_path, {"run"})


def test_atomic_dir_replaces_only_what_it_may(tmp_path):
    """The shared helper: a new folder appears whole; a failure inside leaves nothing; a folder without
    the marker is never replaced; with a marker it is replaced only with overwrite."""
    from fractal_embeddings.atomic import atomic_dir
    from fractal_embeddings.errors import OutputPathError

    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(target, marker="done.json", what="a result") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("boom")
    no_leftovers(tmp_path, set())
    with atomic_dir(target, marker="done.json", what="a result") as tmp:
        (tmp / "done.json").write_text("1")
    assert (target / "done.json").read_text() == "1"
    with (
        pytest.raises(OutputPathError, match="already holds a result; .*--overwrite"),
        atomic_dir(target, marker="done.json", what="a result"),
    ):
        pass
    with atomic_dir(target, overwrite=True, marker="done.json", what="a result") as tmp:
        (tmp / "done.json").write_text("2")
    assert (target / "done.json").read_text() == "2"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with (
        pytest.raises(OutputPathError, match="not empty and holds no result"),
        atomic_dir(tmp_path / "mine", overwrite=True, marker="done.json", what="a result"),
    ):
        pass
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    no_leftovers(tmp_path, {"out", "mine"})


# ------------------------------------------- file modes follow the umask
@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_written_files_get_the_umask_default_mode(tmp_path):
    from fractal_embeddings.data.home import RemoteFile, download_file

    for mask in (0o027, 0o002):
        d = tmp_path / f"m{mask:o}"
        with _umask(mask):
            cache = EmbeddingCache(d / "cache")
            key = cache.key(IDENT, "t")
            cache.put(key, ARRAY, IDENT, len(ARRAY))
            atomic_write_bytes(d / "record.json", b"{}")
            src = d / "src.bin"
            src.write_bytes(b"payload")
            download_file(src.as_uri(), d / "data" / "file.bin", RemoteFile("file.bin", src.as_uri(), 7, None))
        for p in (*cache.paths(key), d / "record.json", d / "data" / "file.bin"):
            assert _mode(p) == 0o666 & ~mask, (p, oct(_mode(p)))


def test_index_and_run_folders_get_the_umask_default_modes(index_dir, two_runs, tmp_path):
    from fractal_embeddings.index import ZoomIndex

    with _umask(0o027):
        ix_dir = ZoomIndex.load(index_dir).save(tmp_path / "ix")
        run = two_runs[0].save(tmp_path / "run")
    paths = [ix_dir, *ix_dir.rglob("*"), run, *run.rglob("*")]
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o750 if p.is_dir() else 0o640), (p, oct(mode))
