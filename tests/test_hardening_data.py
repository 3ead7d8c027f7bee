"""Hardening: user-file readers, the embedding cache, file modes and sweep workers.

Every reader ends in a valid dataset or a one-line FractalError (property tests over generated file
contents); errors name the file's own line / row; malformed cache entries are reported, deleted and
rebuilt; files get the umask's mode; pool workers die with their parent."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fractal_embeddings import load_dataset
from fractal_embeddings.atomic import atomic_write_bytes
from fractal_embeddings.cache import EmbeddingCache
from fractal_embeddings.data.taxonomy import TaxonomyDataset
from fractal_embeddings.errors import FractalError, InputDataError
from fractal_embeddings.index import read_corpus

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and len(msg.splitlines()) == 1, repr(msg)
    return msg


def _write_rows(path: Path, header, rows, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


def _two_level_rows(n=40):
    """(text, coarse, fine) rows with a valid taxonomy: fine f<i> sits under coarse c<i % 2>."""
    return [(f"sample text number {i}", f"c{i % 4 % 2}", f"f{i % 4}") for i in range(n)]


# ================================================================== 9. non-scalar labels, duplicates
def test_non_scalar_labels_are_refused_naming_column_and_row(tmp_path):
    rows = _two_level_rows(12)
    df = pd.DataFrame(rows, columns=["text", "a", "b"])
    # a list column (Parquet stores one type per column); its first list is on row 5. Lists used to
    # become class names like "['f1' 'f2']"
    df["b"] = [None] * 4 + [["f1", "f2"]] + [[b] for b in df["b"][5:]]
    df.to_parquet(tmp_path / "l.parquet")
    with pytest.raises(InputDataError) as e:
        load_dataset(tmp_path / "l.parquet", levels=("a", "b"))
    msg = _one_line(e.value)
    assert "column 'b'" in msg and "row 5" in msg and "list" in msg, msg  # row 5 = the 5th data row (1-based)
    # the index's corpus reader refuses them too
    with pytest.raises(InputDataError, match=r"row 5: column 'b' holds a list"):
        read_corpus(str(tmp_path / "l.parquet"), levels=["a", "b"])
    # JSONL: a dict label, named by the file's line (a blank line before it counts)
    lines = [json.dumps({"text": t, "a": a, "b": b}) for t, a, b in rows]
    lines[6] = json.dumps({"text": "x", "a": {"name": "c0"}, "b": "f0"})
    (tmp_path / "d.jsonl").write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n")
    with pytest.raises(InputDataError) as e:
        load_dataset(tmp_path / "d.jsonl", levels=("a", "b"))
    msg = _one_line(e.value)
    assert "column 'a'" in msg and "line 8" in msg and "dict" in msg, msg


def test_duplicate_texts_with_conflicting_labels_warn_or_refuse(data_home, tmp_path):
    ds = load_dataset("clinc150")
    sp = ds.split("train")
    dom, intent = ds.levels[0].classes, ds.levels[1].classes
    rows = [(t, dom[d], intent[i]) for t, (d, i) in list(zip(sp.texts, sp.labels.tolist(), strict=True))[::50]]
    clean = tmp_path / "clean.csv"
    _write_rows(clean, ["text", "domain", "intent"], rows + rows[:5])  # exact duplicates, same labels: fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(clean, levels=("domain", "intent"))
    other = next(i for i in intent if i != rows[0][2] and ds.parent_map("intent")[i] == rows[0][1])
    conflicting = rows + [(rows[0][0], rows[0][1], other), (rows[1][0], rows[1][1], rows[1][2])]
    path = tmp_path / "dup.csv"
    _write_rows(path, ["text", "domain", "intent"], conflicting)
    with pytest.warns(UserWarning) as w:
        got = load_dataset(path, levels=("domain", "intent"))
    msgs = [str(x.message) for x in w if "different labels" in str(x.message)]
    assert len(msgs) == 1 and len(msgs[0].splitlines()) == 1, [str(x.message) for x in w]
    assert "1 text" in msgs[0] and repr(rows[0][0])[:20] in msgs[0] and "on_duplicates='error'" in msgs[0], msgs[0]
    assert "line 2" in msgs[0] and f"line {len(rows) + 2}" in msgs[0], msgs[0]
    assert sum(len(s) for s in got.splits.values()) == len(conflicting)
    with pytest.raises(InputDataError) as e:
        load_dataset(path, levels=("domain", "intent"), on_duplicates="error")
    assert "different labels" in _one_line(e.value)
    with pytest.raises(FractalError, match="on_duplicates must be"):
        load_dataset(path, levels=("domain", "intent"), on_duplicates="maybe")


# ================================================================== 10. where an error points
def test_decode_errors_name_the_line_and_byte_of_the_bad_byte(tmp_path):
    body = b"text,a,b\n" + b"".join(b"row %d hello,c%d,f%d\n" % (i, i % 2, i % 4 % 2) for i in range(20000))
    data = body + b"caf\xe9 au lait,c0,f0\n"
    (tmp_path / "big.csv").write_bytes(data)
    bad = data.index(b"\xe9")
    for reader in (
        lambda: load_dataset(tmp_path / "big.csv", levels=("a", "b")),
        lambda: read_corpus(str(tmp_path / "big.csv")),
    ):
        with pytest.raises(InputDataError) as e:
            reader()
        msg = _one_line(e.value)
        assert "not valid UTF-8" in msg and "line 20002" in msg and f"byte {bad}" in msg, msg
    (tmp_path / "t.txt").write_bytes(b"one\ntwo\nthr\xffee\n")
    with pytest.raises(InputDataError) as e:
        read_corpus(str(tmp_path / "t.txt"))
    assert "line 3" in _one_line(e.value) and "byte 11" in str(e.value)
    # a built-in reader (a small file in the published GoEmotions layout)
    from fractal_embeddings.data.loaders import read_goemotions

    folder = tmp_path / "goemotions"
    folder.mkdir()
    (folder / "emotions.txt").write_text("joy\nanger\n")
    (folder / "sentiment_dict.json").write_text('{"positive": ["joy"], "negative": ["anger"]}')
    (folder / "ekman_mapping.json").write_text('{"joy": ["joy"], "anger": ["anger"]}')
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_bytes(b"so glad\t0\tid1\nso mad\t1\tid2\n")
    (folder / "test.tsv").write_bytes(b"so glad\t0\tid1\nbad \xff here\t1\tid2\n")
    with pytest.raises(InputDataError) as e:
        read_goemotions(folder)
    msg = _one_line(e.value)
    assert "test.tsv" in msg and "line 2" in msg and "byte 18" in msg, msg


def test_row_errors_name_the_files_own_line_not_the_split_row(tmp_path):
    rows = [list(r) for r in _two_level_rows(200)]
    rows[150][2] = "  "  # an empty label on file line 152 (header = line 1)
    _write_rows(tmp_path / "e.csv", ["text", "a", "b"], rows)
    with pytest.raises(FractalError) as e:
        load_dataset(tmp_path / "e.csv", levels=("a", "b"))
    msg = _one_line(e.value)
    assert "line 152" in msg and "'b'" in msg and "train row" not in msg, msg
    # a quoted cell spanning two lines moves every later line number
    rows[150][2] = "f2"
    rows[10][0] = "two\nlines"
    rows[120][0] = "   "
    _write_rows(tmp_path / "m.csv", ["text", "a", "b"], rows)
    with pytest.raises(FractalError) as e:
        load_dataset(tmp_path / "m.csv", levels=("a", "b"), empty="error")
    msg = _one_line(e.value)
    assert "1 empty" in msg and "line 123" in msg, msg
    # JSONL: a text that is not a string
    lines = [json.dumps({"text": t, "a": a, "b": b}) for t, a, b in _two_level_rows(50)]
    lines[30] = json.dumps({"text": 12.5, "a": "c0", "b": "f0"})
    (tmp_path / "n.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(FractalError) as e:
        load_dataset(tmp_path / "n.jsonl", levels=("a", "b"))
    msg = _one_line(e.value)
    assert "line 31" in msg and "float" in msg, msg


def test_a_directory_is_reported_as_a_directory(tmp_path):
    for name in ("x.csv", "y.parquet", "z.txt", "plain"):
        (tmp_path / name).mkdir()
    for call in (
        lambda: load_dataset(tmp_path / "x.csv", levels=("a", "b")),
        lambda: load_dataset(tmp_path / "y.parquet", levels=("a", "b")),
        lambda: read_corpus(str(tmp_path / "x.csv")),
        lambda: read_corpus(str(tmp_path / "z.txt")),
    ):
        with pytest.raises(InputDataError) as e:
            call()
        msg = _one_line(e.value)
        assert "is a directory" in msg and "no such file" not in msg, msg


# ================================================================== 7. malformed cache entries
IDENT = {"name": "test-encoder", "fingerprint": "0" * 64}
ARRAY = np.arange(12, dtype=np.float32).reshape(4, 3)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@contextlib.contextmanager
def _fresh_cache():
    with tempfile.TemporaryDirectory() as d:
        cache = EmbeddingCache(d)
        key = cache.key(IDENT, "texts-hash")
        cache.put(key, ARRAY, IDENT, len(ARRAY))
        yield cache, key


def _rejected_then_rebuilt(cache: EmbeddingCache, key: str) -> None:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert cache.get(key, IDENT, len(ARRAY)) is None
    assert any("unusable" in str(x.message) and "rebuilding" in str(x.message) for x in w), [str(x.message) for x in w]
    assert not any(p.exists() for p in cache.paths(key))  # deleted
    cache.put(key, ARRAY, IDENT, len(ARRAY))  # rebuilt by the caller
    np.testing.assert_array_equal(cache.get(key, IDENT, len(ARRAY)), ARRAY)


@FAST
@given(meta=JSON_VALUES)
def test_cache_entry_with_any_malformed_metadata_is_reported_deleted_and_rebuilt(meta):
    with _fresh_cache() as (cache, key):
        cache.paths(key)[1].write_text(json.dumps(meta))
        _rejected_then_rebuilt(cache, key)


@FAST
@given(data=st.data())
def test_cache_entry_with_one_wrong_metadata_field_is_rebuilt(data):
    with _fresh_cache() as (cache, key):
        meta_path = cache.paths(key)[1]
        meta = json.loads(meta_path.read_text())
        field = data.draw(st.sampled_from(["format", "encoder", "n_rows", "dim", "dtype", "sha256"]))
        value = data.draw(JSON_VALUES)
        assume(value != meta[field] and not (field == "dtype" and value == "float32"))
        meta[field] = value
        meta_path.write_text(json.dumps(meta))
        _rejected_then_rebuilt(cache, key)


def test_cache_entry_with_a_damaged_array_is_rebuilt(tmp_path):
    import hashlib

    cache = EmbeddingCache(tmp_path)
    key = cache.key(IDENT, "texts-hash")

    def entry(npy_bytes: bytes, **meta_changes):
        cache.put(key, ARRAY, IDENT, len(ARRAY))
        npy, meta_path = cache.paths(key)
        npy.write_bytes(npy_bytes)
        meta = json.loads(meta_path.read_text())
        meta.update({"sha256": hashlib.sha256(npy_bytes).hexdigest(), **meta_changes})  # the bytes "match"
        meta_path.write_text(json.dumps(meta))

    good = cache.paths(key)[0]
    cache.put(key, ARRAY, IDENT, len(ARRAY))
    full = good.read_bytes()
    buf = io.BytesIO()
    np.save(buf, ARRAY.astype(np.float64))
    wrong_dtype = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, ARRAY.reshape(3, 4))
    wrong_shape = buf.getvalue()
    for damaged in (full[: len(full) - 5], full[:70], full[:10], b"", wrong_dtype, wrong_shape, b"\x93NUMPY garbage"):
        entry(damaged)
        _rejected_then_rebuilt(cache, key)
    # an array file that is a directory, a metadata file that is a directory
    for which in (0, 1):
        cache.put(key, ARRAY, IDENT, len(ARRAY))
        p = cache.paths(key)[which]
        p.unlink()
        p.mkdir()
        _rejected_then_rebuilt(cache, key)


# ================================================================== 11. file modes follow the umask
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


# ================================================================== 5. pool workers die with their parent
def _descendants(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


WORKERS_SCRIPT = """
import time
from fractal_embeddings.executors import LocalExecutor

if __name__ == "__main__":
    for _ in LocalExecutor(2).imap_unordered(time.sleep, [(60,)] * 6):
        pass
"""


def test_killed_parent_takes_its_pool_workers_with_it(tmp_path):
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "pool.py"
    script.write_text(WORKERS_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            children = [c for c in _descendants(p.pid) if "python" in c.name().lower()]
            if len(children) >= 2:
                break
            time.sleep(0.2)
        assert len(children) >= 2, "the pool did not start"
        time.sleep(3)  # the workers are up and sleeping in their tasks
        children = _descendants(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait()
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, [(c.pid, c.cmdline()[-3:]) for c in alive]
    finally:
        if p.poll() is None:
            p.kill()
        for c in children:
            with contextlib.suppress(psutil.Error):
                c.kill()


def test_abandoned_iteration_stops_the_workers_at_once():
    psutil = pytest.importorskip("psutil")
    from fractal_embeddings.executors import LocalExecutor

    def pool_workers():
        out = []
        for c in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if c.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(c.cmdline()):
                    out.append(c)
        return out

    before = {c.pid for c in pool_workers()}
    it = LocalExecutor(2).imap_unordered(time.sleep, [(0,), (30,), (30,), (30,)])
    next(it)
    workers = [c for c in pool_workers() if c.pid not in before]
    assert len(workers) == 2
    t0 = time.perf_counter()
    it.close()  # Ctrl+C or an error in the caller: the queued runs must not go on
    took = time.perf_counter() - t0
    try:
        assert took < 10, took
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive
    finally:
        for w in workers:
            with contextlib.suppress(psutil.Error):
                w.kill()


def test_pool_workers_wait_passively_unless_the_environment_says_otherwise(monkeypatch):
    """Workers that share the cores sleep when idle (OMP_WAIT_POLICY=PASSIVE, set before they import
    torch); a value the caller set is kept."""
    from fractal_embeddings.executors import LocalExecutor

    for policy, want in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        if policy is None:
            monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        else:
            monkeypatch.setenv("OMP_WAIT_POLICY", policy)
        ex = LocalExecutor(2)
        try:
            seen = list(ex.imap_unordered(os.getenv, [("OMP_WAIT_POLICY",), ("OMP_WAIT_POLICY",)]))
        finally:
            ex.close()
        assert seen == [want, want], policy


RAY_SCRIPT = """
import signal, sys, time

def previous(signum, frame):
    print("previous handler ran; restored:", signal.getsignal(signal.SIGTERM) is previous, flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, previous)
from fractal_embeddings.executors import RayExecutor

ex = RayExecutor(num_cpus=1)
print("ready", flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_sigterm_shuts_the_local_ray_down_and_restores_the_previous_handler(tmp_path):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("ray")
    script = tmp_path / "ray_driver.py"
    script.write_text(RAY_SCRIPT)
    env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1"}
    p = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    family = []
    try:
        seen = []
        for line in p.stdout:
            seen.append(line)
            if line.strip() == "ready":
                break
        assert seen and seen[-1].strip() == "ready", "".join(seen)
        family = _descendants(p.pid)
        assert family, "no Ray processes under the driver"
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
        assert "previous handler ran; restored: True" in out, out
        gone, alive = psutil.wait_procs(family, timeout=20)
        assert not alive, [c.cmdline()[:2] for c in alive]
    finally:
        if p.poll() is None:
            p.kill()
        for c in family:
            with contextlib.suppress(psutil.Error):
                c.kill()


# ================================================================== property tests: every user-file reader
LABELS = st.sampled_from(["x", "y", "z", " x ", ""])
CELLS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        ["", " ", "\t", "\n", '"', '""', "a,b", "a\tb", "é", "\u2028", "\r\n", "NaN", "None", "null", "1.0"]
    ),
    st.none(),
    st.integers(-5, 5),
    st.floats(),
    st.booleans(),
)
COLUMNS = st.lists(st.sampled_from(["text", "a", "b", "split", "other"]), unique=True, max_size=5)


@st.composite
def tables(draw, nested: bool = False):
    """A list of row dicts: some columns missing, cells of any kind, tiny sizes; about half of them
    with the text and both label columns and labels that can form a valid taxonomy."""
    complete = draw(st.booleans())
    extra = draw(st.lists(st.sampled_from(["split", "other"]), unique=True, max_size=2))
    cols = ["text", "a", "b", *extra] if complete else draw(COLUMNS)
    n = draw(st.integers(0, 12))
    consistent = complete or draw(st.booleans())
    cells = CELLS | (
        st.lists(st.sampled_from(["x", "y"]), max_size=2) | st.dictionaries(st.just("k"), LABELS)
        if nested
        else st.nothing()
    )
    rows = []
    for _ in range(n):
        row = {}
        for c in cols:
            if c == "text":
                row[c] = draw(
                    st.text(min_size=1, max_size=12) if complete else st.text(min_size=1, max_size=12) | cells
                )
            elif c == "split":
                row[c] = draw(st.sampled_from(["train", "val", "test", " Test", "dev"]) | cells)
            elif consistent and c in ("a", "b"):
                b = draw(st.sampled_from(["f0", "f1", "f2", "f3"]))
                row["b"], row["a"] = b, f"c{int(b[1]) % 2}"
            else:
                row[c] = draw(LABELS | cells)
        rows.append({c: row[c] for c in cols})
    return cols, rows


def _outcome(fn):
    """The reader's result, or its FractalError (one line); any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn()
        except FractalError as e:
            _one_line(e)
            return e


def _check_dataset(ds) -> None:
    if isinstance(ds, FractalError):
        return
    assert isinstance(ds, TaxonomyDataset)
    for sp in ds.splits.values():
        assert all(isinstance(t, str) and t.strip() for t in sp.texts)
    for lv in ds.levels:
        assert all(isinstance(c, str) and c and c == c.strip() for c in lv.classes)


def _read_all(path: Path) -> None:
    _check_dataset(_outcome(lambda: load_dataset(path, levels=("a", "b"))))
    _outcome(lambda: load_dataset(path, levels=("a", "b"), empty="error", on_duplicates="error"))
    corpus = _outcome(lambda: read_corpus(str(path), levels=["a", "b"]))
    if not isinstance(corpus, FractalError):
        assert all(isinstance(t, str) and t.strip() for t in corpus.texts)
        assert all(isinstance(x, str) for lab in corpus.labels for x in lab)
    _outcome(lambda: read_corpus(str(path), split="test"))


def _cell_str(v) -> str:
    return "" if v is None else str(v)


@FAST
@given(table=tables(), delimiter=st.sampled_from([",", "\t"]), bom=st.booleans())
def test_csv_and_tsv_readers_end_in_a_dataset_or_one_line_error(table, delimiter, bom):
    cols, rows = table
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("f.csv" if delimiter == "," else "f.tsv")
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=delimiter)
        w.writerow(cols)
        w.writerows([[_cell_str(r[c]) for c in cols] for r in rows])
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8", "surrogatepass"))
        _read_all(path)


@FAST
@given(
    content=st.binary(max_size=200) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt", ".parquet"]),
)
def test_raw_file_contents_end_in_a_dataset_or_one_line_error(content, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"raw{suffix}"
        path.write_bytes(content)
        if suffix == ".txt":
            corpus = _outcome(lambda: read_corpus(str(path)))
            if not isinstance(corpus, FractalError):
                assert all(t.strip() and "\n" not in t for t in corpus.texts)
                lines = content.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")
                assert [lines[i] for i in corpus.ids] == corpus.texts  # ids are the file's line indices
        else:
            _read_all(path)


@FAST
@given(table=tables(nested=True), blank_lines=st.booleans())
def test_jsonl_reader_ends_in_a_dataset_or_one_line_error(table, blank_lines):
    cols, rows = table
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.jsonl"
        lines = [json.dumps(r) for r in rows]
        if blank_lines:
            lines = [x for line in lines for x in (line, "")]
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        _read_all(path)


@FAST
@given(data=st.data())
def test_parquet_reader_ends_in_a_dataset_or_one_line_error(data):
    complete = data.draw(st.booleans())  # text + both levels, labels that can form a taxonomy
    cols = ["text", "a", "b"] if complete else data.draw(COLUMNS)
    n = data.draw(st.integers(0, 10))
    kinds = {
        "str": st.text(max_size=8) | LABELS,
        "int": st.integers(-3, 3),
        "float": st.floats(),
        "optional": st.none() | LABELS,
        "list": st.lists(LABELS, max_size=2),
        "struct": st.fixed_dictionaries({"k": LABELS}),
        "bool": st.booleans(),
        "bytes": st.binary(max_size=4),
    }
    frame = {}
    if complete:
        fine = [data.draw(st.integers(0, 3)) for _ in range(n)]
        frame["text"] = [data.draw(st.text(min_size=1, max_size=8)) for _ in range(n)]
        frame["a"] = [f"c{f % 2}" for f in fine]
        frame["b"] = fine if data.draw(st.booleans()) else [f"f{f}" for f in fine]  # int or string labels
    else:
        for c in cols:
            kind = data.draw(st.sampled_from(sorted(kinds)))
            frame[c] = [data.draw(kinds[kind]) for _ in range(n)]
    df = pd.DataFrame(frame, columns=cols)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.parquet"
        try:
            df.to_parquet(path)
        except Exception:  # noqa: BLE001 - a frame pyarrow cannot store is not a file we can test
            assume(False)
        _read_all(path)


# ================================================================== the data layer's argument contract
def test_a_text_column_that_is_also_a_level_is_refused(tmp_path):
    """`--text intent --levels domain,intent` used to train on the label itself (accuracy 1.0, S 0)."""
    path = tmp_path / "f.csv"
    _write_rows(path, ["text", "domain", "intent"], _two_level_rows(20))
    with pytest.raises(InputDataError) as e:
        load_dataset(path, levels=("domain", "intent"), text="intent")
    msg = _one_line(e.value)
    assert "'intent'" in msg and "text" in msg and "level" in msg and "--text" in msg, msg


def test_levels_given_as_one_string_is_refused_naming_the_fix(tmp_path, data_home):
    """A string where a list belongs used to be read as its characters (columns 'd', 'o', 'm', ...)."""
    path = tmp_path / "f.csv"
    _write_rows(path, ["text", "domain", "intent"], _two_level_rows(20))
    for name in (path, "clinc150"):
        with pytest.raises(FractalError) as e:
            load_dataset(name, levels="domain,intent")
        msg = _one_line(e.value)
        assert "levels" in msg and "['domain', 'intent']" in msg and "'d'" not in msg, msg
    for bad in (5, ["domain", 3.5], ["domain", ""], ["domain", "domain"]):
        with pytest.raises(FractalError) as e:
            load_dataset(path, levels=bad)
        _one_line(e.value)
    assert load_dataset(path, levels=["domain", "intent"]).level_names == ("domain", "intent")
    assert load_dataset(path, levels=("domain", "intent")).level_names == ("domain", "intent")


def test_a_duplicated_header_column_is_named(tmp_path):
    """pandas renames a repeated header `intent, intent` to `intent, intent.1`; the error names `intent`."""
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        path = tmp_path / f"dup{suffix}"
        _write_rows(path, ["text", "intent", "intent"], [(t, c, f) for t, c, f in _two_level_rows(8)], sep)
        for levels in (("domain", "intent"), ("intent",)):
            with pytest.raises(InputDataError) as e:
                load_dataset(path, levels=levels)
            msg = _one_line(e.value)
            assert "'intent'" in msg and "twice" in msg and "intent.1" not in msg, msg
        with pytest.raises(InputDataError, match=r"'intent' appears twice"):
            read_corpus(str(path), levels=["intent"])
