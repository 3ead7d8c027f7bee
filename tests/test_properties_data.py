"""Property tests over the data API and the validation contract: any input ends in a result or a
one-line :class:`~fractal_embeddings.errors.FractalError`, never another exception.

Covered: :func:`load_dataset` (arbitrary ``levels``, ``text``, paths -- missing, a folder, random bytes,
an empty file -- and label values), :func:`build_dataset` / :class:`TaxonomyDataset` construction and
its views, the user-file readers (``read_frame``, ``read_table``), and every check in
:mod:`fractal_embeddings.validation`. Small ``max_examples`` and temporary files keep them fast.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fractal_embeddings import load_dataset
from fractal_embeddings.data.build import build_dataset
from fractal_embeddings.data.tabular import read_frame, read_table
from fractal_embeddings.data.taxonomy import TaxonomyDataset
from fractal_embeddings.errors import FractalError
from fractal_embeddings.validation import (
    SEED_LIMIT,
    check_int,
    check_labels,
    check_matrix,
    check_output_dir,
    check_output_file,
    check_query,
    check_real,
    check_seed,
    check_texts,
    check_url,
    is_int,
    is_real,
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

# anything a caller might pass where a name, a list of names or a number belongs
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.binary(max_size=6)
)
NAMES = st.sampled_from(["text", "a", "b", "split", "domain", "intent", "L0", "L1", "", " a", "a,b", "ä"])
LEVELS = (
    SCALARS
    | st.lists(NAMES, max_size=4)
    | st.lists(NAMES, max_size=3).map(tuple)
    | st.lists(SCALARS, max_size=3)
    | st.lists(NAMES, max_size=3).map(",".join)
    | st.dictionaries(NAMES, NAMES, max_size=2)
    | st.just(np.array(["a", "b"]))
)
TEXT_COLUMNS = SCALARS | NAMES
LABELS = st.sampled_from(["c0", "c1", "f0", "f1", "f2", "", " ", "x y", "é", "1", "1.0", "nan", "NA"]) | st.text(
    max_size=4
)


ANY_PARENT = (
    SCALARS
    | st.lists(st.integers(-1, 3) | st.floats(-1, 3) | SCALARS, min_size=0, max_size=9)
    | st.lists(st.integers(0, 2), min_size=8, max_size=8)
)


def outcome(fn):
    """``fn()``'s result, or its FractalError (checked to be one line); any other exception fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn()
        except FractalError as e:
            msg = str(e)
            assert msg and len(msg.splitlines()) == 1, repr(msg)
            return e


def assert_dataset(ds) -> None:
    """A dataset that came back is whole: string texts, >= 2 classes a level, labels within range."""
    if isinstance(ds, FractalError):
        return
    assert isinstance(ds, TaxonomyDataset)
    for lv in ds.levels:
        assert lv.n_classes >= 2 and all(isinstance(c, str) for c in lv.classes)
    for sp in ds.splits.values():
        assert all(isinstance(t, str) and t.strip() for t in sp.texts)
        assert sp.labels.shape == (len(sp.texts), ds.n_levels)
        for k, lv in enumerate(ds.levels):
            assert sp.labels.size == 0 or 0 <= sp.labels[:, k].min() <= sp.labels[:, k].max() < lv.n_classes


# ------------------------------------------------------------------ files
@st.composite
def csv_files(draw):
    """CSV contents: a header drawn from a few names (repeats allowed), rows of arbitrary labels."""
    header = draw(st.lists(NAMES.filter(bool), min_size=1, max_size=5))
    n = draw(st.integers(0, 10))
    rows = [[draw(LABELS) for _ in header] for _ in range(n)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


def _consistent_csv(n: int = 24) -> bytes:
    lines = ["text,a,b"] + [f"sample {i},c{i % 4 % 2},f{i % 4}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


SOURCES = st.sampled_from(["missing", "folder", "empty", "bytes", "csv", "good", "builtin-like", "nul", "long"])


def _make_source(kind: str, root: Path, data) -> str | os.PathLike:
    suffix = data.draw(st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet", ".txt", ""]))
    path = root / f"f{suffix}"
    if kind == "missing":
        return root / "nope" / f"f{suffix}"
    if kind == "folder":
        d = root / f"d{suffix}"
        d.mkdir()
        return d
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=120)))
    elif kind == "csv":
        path = root / "f.csv"
        path.write_bytes(data.draw(csv_files()))
    elif kind == "good":
        path = root / "f.csv"
        path.write_bytes(_consistent_csv())
    elif kind == "builtin-like":
        return data.draw(st.sampled_from(["nope", "clinc", "", " ", "trec-x"]))
    elif kind == "nul":
        return str(root / "a\0b.csv")
    elif kind == "long":
        return str(root / ("x" * 300 + ".csv"))
    return path if data.draw(st.booleans()) else str(path)


@FAST
@given(data=st.data(), kind=SOURCES, levels=LEVELS, text=TEXT_COLUMNS)
def test_load_dataset_ends_in_a_dataset_or_a_fractal_error(data, kind, levels, text):
    with tempfile.TemporaryDirectory() as d:
        source = _make_source(kind, Path(d), data)
        assert_dataset(outcome(lambda: load_dataset(source, levels=levels, text=text, download=False)))


@FAST
@given(
    name=SCALARS | st.lists(NAMES, max_size=2),
    on_conflict=SCALARS | st.sampled_from(["error", "majority"]),
    empty=SCALARS | st.sampled_from(["drop", "error"]),
    on_duplicates=SCALARS | st.sampled_from(["warn", "error"]),
    val_fraction=SCALARS | st.floats(0, 1),
    seed=SCALARS | st.integers(-1, SEED_LIMIT),
)
def test_load_dataset_options_end_in_a_dataset_or_a_fractal_error(
    name, on_conflict, empty, on_duplicates, val_fraction, seed
):
    with tempfile.TemporaryDirectory() as d:
        good = Path(d) / "f.csv"
        good.write_bytes(_consistent_csv())
        for source in (name, good):
            ds = outcome(
                lambda source=source: load_dataset(
                    source,
                    levels=["a", "b"],
                    on_conflict=on_conflict,
                    empty=empty,
                    on_duplicates=on_duplicates,
                    val_fraction=val_fraction,
                    seed=seed,
                    download=False,
                )
            )
            assert_dataset(ds)


def test_a_good_file_loads_and_its_options_are_kept(tmp_path):
    """The properties above are not vacuous: the consistent file loads, with its arguments recorded."""
    path = tmp_path / "f.csv"
    path.write_bytes(_consistent_csv())
    ds = load_dataset(path, levels=["a", "b"], val_fraction=0.25, seed=3)
    assert ds.level_names == ("a", "b") and ds.info["load_args"]["levels"] == ["a", "b"]
    assert ds.info["load_args"]["seed"] == 3
    with pytest.raises(FractalError, match="val_fraction"):
        load_dataset(path, levels=["a", "b"], val_fraction=1.0)
    with pytest.raises(FractalError, match="seed"):
        load_dataset(path, levels=["a", "b"], seed=-1)


@FAST
@given(data=st.data(), kind=SOURCES, levels=LEVELS, text=TEXT_COLUMNS)
def test_the_file_readers_end_in_a_table_or_a_fractal_error(data, kind, levels, text):
    with tempfile.TemporaryDirectory() as d:
        source = _make_source(kind, Path(d), data)
        path = Path(source) if isinstance(source, str) else source
        outcome(lambda: read_frame(path))
        raw = outcome(lambda: read_table(path, text, levels))
        if not isinstance(raw, FractalError):
            assert all(len(lab) == len(raw.levels) for _, labs in raw.rows.values() for lab in labs)


# ------------------------------------------------------------------ the data model
ROWS = st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=6), SCALARS), st.lists(LABELS | SCALARS, max_size=3)))


@FAST
@given(
    rows=st.dictionaries(st.sampled_from(["train", "val", "test", "x"]), ROWS, max_size=3) | SCALARS,
    level_names=LEVELS,
    on_conflict=st.sampled_from(["error", "majority"]) | SCALARS,
    empty=st.sampled_from(["drop", "error"]) | SCALARS,
    val_fraction=st.floats(0.05, 0.5) | SCALARS,
    seed=st.integers(0, 10) | SCALARS,
)
def test_build_dataset_ends_in_a_dataset_or_a_fractal_error(rows, level_names, on_conflict, empty, val_fraction, seed):
    def build():
        split_rows = (
            {s: ([t for t, _ in r], [lab for _, lab in r]) for s, r in rows.items()} if isinstance(rows, dict) else rows
        )
        return build_dataset(
            "p", split_rows, level_names, on_conflict=on_conflict, empty=empty, val_fraction=val_fraction, seed=seed
        )

    assert_dataset(outcome(build))


@FAST
@given(
    levels=LEVELS | st.lists(st.integers(-4, 4) | NAMES, max_size=3),
    level=SCALARS | NAMES | st.integers(-4, 4),
    rows=st.dictionaries(st.sampled_from(["train", "val", "test", "x"]), st.none() | st.integers(-2, 30) | SCALARS),
)
def test_dataset_views_end_in_a_dataset_or_a_fractal_error(levels, level, rows):
    ds = build_dataset(
        "v",
        {"train": ([f"t{i}" for i in range(24)], [(f"c{i % 2}", f"m{i % 4}", f"f{i % 8}") for i in range(24)])},
        ("coarse", "mid", "fine"),
    )
    assert_dataset(outcome(lambda: ds.select_levels(levels)))
    outcome(lambda: ds.level_index(level))
    outcome(lambda: ds.parent_map(level))
    outcome(lambda: ds.split(level))
    assert_dataset(outcome(lambda: ds.subset(rows)))


@FAST
@given(
    fraction=SCALARS | st.floats(0, 1),
    seed=SCALARS | st.integers(-1, 5),
    splits=SCALARS | st.lists(st.sampled_from(["train", "val", "x"]), max_size=2),
    n_groups=SCALARS | st.integers(-1, 10),
    parent=ANY_PARENT,
)
def test_variants_end_in_a_dataset_or_a_fractal_error(fraction, seed, splits, n_groups, parent):
    from fractal_embeddings.data.taxonomy import Level
    from fractal_embeddings.data.variants import with_coarse_level, with_coarse_noise, with_random_coarse

    ds = build_dataset(
        "v", {"train": ([f"t{i}" for i in range(24)], [(f"c{i % 2}", f"f{i % 8}") for i in range(24)])}, ("c", "f")
    )
    assert_dataset(outcome(lambda: with_coarse_noise(ds, fraction, seed, splits)))
    assert_dataset(outcome(lambda: with_random_coarse(ds, n_groups, seed)))
    coarse = Level("g", ("g0", "g1", "g2"))
    assert_dataset(outcome(lambda: with_coarse_level(ds, coarse, parent, {"kind": "test"})))


# ------------------------------------------------------------------ validation.py
ANY = (
    SCALARS
    | st.lists(SCALARS, max_size=4)
    | st.lists(st.lists(st.integers(-3, 5) | st.floats(), max_size=3), max_size=4)
    | st.just(np.arange(6).reshape(2, 3))
    | st.just(np.array([[1.5, np.nan]]))
    | st.just(object())
)


@FAST
@given(
    v=ANY | st.integers(-(10**20), 10**20) | st.just(np.int64(3)) | st.just(np.bool_(True)),
    lo=st.none() | st.integers(-5, 5),
    hi=st.none() | st.integers(-5, 5),
)
def test_check_int_and_check_seed(v, lo, hi):
    got = outcome(lambda: check_int(v, "n", lo=lo, hi=hi))
    if not isinstance(got, FractalError):
        assert type(got) is int and is_int(v) and (lo is None or got >= lo) and (hi is None or got <= hi)
    else:
        assert not is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi)
    seed = outcome(lambda: check_seed(v))
    assert isinstance(seed, FractalError) or (type(seed) is int and 0 <= seed < SEED_LIMIT)


@FAST
@given(v=ANY, lo=st.none() | st.floats(-2, 2), hi=st.none() | st.floats(-2, 2), lo_open=st.booleans())
def test_check_real(v, lo, hi, lo_open):
    got = outcome(lambda: check_real(v, "x", lo=lo, hi=hi, lo_open=lo_open))
    if not isinstance(got, FractalError):
        assert isinstance(got, float) and math.isfinite(got) and is_real(v)
        assert lo is None or (got > lo if lo_open else got >= lo)
        assert hi is None or got <= hi


@FAST
@given(texts=ANY | st.lists(st.text(max_size=5), max_size=4) | st.text(max_size=5), allow_empty=st.booleans())
def test_check_texts_and_query(texts, allow_empty):
    got = outcome(lambda: check_texts(texts, allow_empty=allow_empty))
    if not isinstance(got, FractalError):
        assert isinstance(got, list) and all(isinstance(t, str) for t in got) and (allow_empty or got)
        assert not isinstance(texts, str)
    q = outcome(lambda: check_query(texts))
    assert isinstance(q, FractalError) or (isinstance(q, str) and q.strip())


@FAST
@given(
    labels=ANY | st.lists(st.lists(st.integers(-1, 4), min_size=2, max_size=2), max_size=6),
    n_classes=st.none() | st.lists(st.integers(0, 5), max_size=3),
    n_rows=st.none() | st.integers(0, 6),
    nested=st.booleans(),
)
def test_check_labels(labels, n_classes, n_rows, nested):
    got = outcome(lambda: check_labels(labels, n_classes, n_rows=n_rows, nested=nested))
    if not isinstance(got, FractalError):
        assert got.dtype == np.int64 and got.ndim == 2 and (got.size == 0 or got.min() >= 0)
        assert n_rows is None or got.shape[0] == n_rows
        if n_classes is not None and got.size:
            assert all(got[:, j].max() < n for j, n in enumerate(n_classes))


@FAST
@given(x=ANY, width=st.none() | st.integers(0, 4), allow_1d=st.booleans())
def test_check_matrix(x, width, allow_1d):
    got = outcome(lambda: check_matrix(x, width=width, allow_1d=allow_1d))
    if not isinstance(got, FractalError):
        assert got.dtype == np.float32 and got.ndim == 2 and np.all(np.isfinite(got))
        assert width is None or got.shape[1] == width


@FAST
@given(
    url=SCALARS
    | st.text(max_size=30)
    | st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["http", "https", "ftp", ""]),
        st.sampled_from(["localhost", "127.0.0.1", "[::1]", "", "a b", "ex.com"]),
        st.sampled_from(["", ":6333", ":0", ":65536", ":x", ":-1"]),
        st.sampled_from(["", "/", "/p?q=1"]),
    )
)
def test_check_url(url):
    got = outcome(lambda: check_url(url))
    if not isinstance(got, FractalError):
        assert got == url and url.startswith(("http://", "https://"))


@FAST
@given(
    name=st.sampled_from(["", ".", "new", "new/deeper", "file", "file/below", "empty", "full", "run", "x.csv"]),
    overwrite=st.booleans(),
    suffix=st.sampled_from([".csv", ".json"]),
)
def test_check_output_paths(name, overwrite, suffix):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "file").write_text("x")
        (root / "empty").mkdir()
        (root / "full").mkdir()
        (root / "full" / "notes.txt").write_text("x")
        (root / "run").mkdir()
        (root / "run" / "record.json").write_text("{}")
        (root / "x.csv").write_text("a\n")
        before = sorted(p.relative_to(root) for p in root.rglob("*"))
        path = root / name if name else ""
        got = outcome(lambda: check_output_dir(path, overwrite=overwrite, marker="record.json"))
        if not isinstance(got, FractalError):
            assert not Path(got).is_file() and root / "full" != Path(got)
        got = outcome(lambda: check_output_file(path, overwrite, suffix=suffix))
        if not isinstance(got, FractalError):
            assert str(got).endswith(suffix) and not Path(got).is_dir()
            assert overwrite or not Path(got).exists()
        assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # the checks create nothing
