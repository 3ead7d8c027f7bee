"""The user-file readers: :func:`load_dataset` on CSV / TSV / JSONL / Parquet files, the index's
:func:`read_corpus` and a built-in reader (GoEmotions' layout).

Errors name the file's own line, row, byte or column (non-scalar labels, conflicting duplicates, bad
UTF-8, a directory given as a file, a text column that is also a level, ``levels`` given as one string,
a repeated header); property tests over generated file contents: every reader ends in a valid dataset
or a one-line FractalError, never another exception. Small files written here, plus CLINC150 rows for
the duplicates test.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fractal_embeddings import load_dataset
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


# ================================================================== non-scalar labels, duplicates
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


# ================================================================== where an error points
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
