"""User files: CSV, TSV, JSONL or Parquet with a text column and one column per level (coarse -> fine).

An optional ``split`` column (values ``train``/``val``/``test``) assigns rows to splits; without it
every row is ``train`` and a seeded stratified ``val`` split is made (``build.build_dataset``),
plus a seeded stratified ``test`` split (20 %) so the file can be evaluated.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputDataError, TaxonomyError
from ..extras import MissingExtraError
from ..validation import quoted
from .loaders import RawData, check_path, decode_error
from .splits import SPLIT_SEED, TEST_FRACTION, holdout_rows
from .taxonomy import DUPLICATES, check_levels

try:
    import pandas as pd
except ImportError:  # user files are an extra: one line naming it, never a bare ModuleNotFoundError
    raise MissingExtraError(
        'reading CSV / JSONL / Parquet files needs pandas: pip install "fractal-embeddings[data]"'
    ) from None

_READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def read_frame(path: Path) -> pd.DataFrame:
    """A user file (CSV, TSV, JSONL or Parquet, by suffix) as a DataFrame, CSV/TSV cells as strings;
    any failure is a one-line :class:`~fractal_embeddings.errors.InputDataError` naming the file."""
    check_path(path)
    if path.is_dir():
        raise InputDataError(
            f"{path} is a directory, not a file; pass the path of a .csv, .tsv, .jsonl or .parquet file"
        )
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InputDataError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .tsv, .jsonl or .parquet")
    if not path.is_file():
        raise InputDataError(f"{path}: no such file")
    try:
        if kind in ("csv", "tsv"):
            df = pd.read_csv(
                path,
                sep="," if kind == "csv" else "\t",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
                encoding_errors="strict",
            )
            check_header(path, df, "," if kind == "csv" else "\t")
            return df
        if kind == "jsonl":
            return pd.read_json(
                path, lines=True, dtype=False, encoding="utf-8-sig"
            )  # dtype=False: no date guessing either
        return pd.read_parquet(path)
    except UnicodeDecodeError:
        raise decode_error(path) from None
    except (MemoryError, InputDataError):
        raise
    except Exception as e:  # noqa: BLE001 - pandas / pyarrow raise many kinds for a malformed file
        first = str(e).splitlines()[0].strip() if str(e).strip() else ""
        msg = f"{type(e).__name__}: {first}" if first else type(e).__name__
        raise InputDataError(f"{path}: cannot be read as {kind} ({msg[:200]}); check the file's format") from None


def check_header(path: Path, df: pd.DataFrame, sep: str) -> None:
    """Refuse a CSV / TSV header that names a column twice, naming it (pandas would have renamed the
    copy ``intent.1``, and an error would list a column the file does not have)."""
    if not any("." in str(c) for c in df.columns):  # pandas marks a renamed copy NAME.N
        return
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next((rec for rec in csv.reader(f, delimiter=sep) if "".join(rec).strip()), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(header, 1):
        seen.setdefault(name, []).append(i)
    for name, where in seen.items():
        if len(where) > 1:
            times = "twice" if len(where) == 2 else f"{len(where)} times"
            raise InputDataError(
                f"{path}: column {name!r} appears {times} in the header (columns {', '.join(map(str, where))}); "
                "rename the copies so every column has its own name"
            )


class RowNames:
    """Where data row ``i`` (0-based, file order) of a user file is: ``line L`` of a CSV / TSV / JSONL
    file (blank lines and quoted cells spanning lines counted as pandas reads them), ``row N``
    (1-based) of a Parquet file or when the lines can't be matched to the rows."""

    def __init__(self, path: Path, n_rows: int):
        self.path, self.n_rows = path, n_rows
        self._starts: list[int] | None = None

    def _scan(self) -> list[int]:
        kind = _READERS.get(self.path.suffix.lower())
        starts: list[int] = []
        try:
            if kind in ("csv", "tsv"):
                with open(self.path, encoding="utf-8-sig", newline="") as f:
                    reader = csv.reader(f, delimiter="," if kind == "csv" else "\t")
                    while True:
                        begin = reader.line_num + 1
                        try:
                            rec = next(reader)
                        except StopIteration:
                            break
                        if len(rec) <= 1 and not "".join(rec).strip():  # a blank line: pandas skips it
                            continue
                        starts.append(begin)
                starts = starts[1:]  # the header
            elif kind == "jsonl":
                with open(self.path, encoding="utf-8-sig") as f:
                    starts = [n for n, line in enumerate(f, 1) if line.strip()]
        except (OSError, UnicodeDecodeError, csv.Error):
            starts = []
        return starts if len(starts) == self.n_rows else []

    def __call__(self, i: int) -> str:
        if self._starts is None:
            self._starts = self._scan()
        return f"line {self._starts[i]}" if self._starts else f"row {i + 1}"


_NON_SCALAR = {
    list: "list",
    tuple: "list",
    set: "set",
    frozenset: "set",
    dict: "dict",
    np.ndarray: "list",
    bytes: "bytes value",
    bytearray: "bytes value",
    memoryview: "bytes value",
}


_NON_SCALAR_TYPES = tuple(_NON_SCALAR)


def _non_scalar(v: Any) -> str | None:
    if not isinstance(v, _NON_SCALAR_TYPES):
        return None
    return next(name for cls, name in _NON_SCALAR.items() if isinstance(v, cls))


def _missing(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def cell_text(v: Any) -> str:
    """A scalar cell as a label string ("" for a missing value); numbers keep pandas' spelling (``1.0``)."""
    if _missing(v):
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    return str(v)


def check_scalar_columns(df: pd.DataFrame, columns: Sequence, path: Path, rows: RowNames | None = None) -> None:
    """Refuse a column holding lists, dicts, arrays or bytes: one line naming the column and the first bad row."""
    rows = rows or RowNames(path, len(df))
    for c in dict.fromkeys(columns):
        if df[c].dtype != object:  # a string, number or bool column can't hold a list
            continue
        for i, v in enumerate(df[c].tolist()):
            what = _non_scalar(v)
            if what:
                shown = repr(v.tolist() if isinstance(v, np.ndarray) else v)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise InputDataError(
                    f"{path}: {rows(i)}: column {c!r} holds a {what} ({shown}); every cell of a text or label column "
                    "must be one value: write one label per cell (a string or a number)"
                )


def describe_columns(columns: Iterable[Any], limit: int = 20) -> str:
    """Column names for a one-line message (names with unprintable characters quoted and escaped)."""
    names = [c if isinstance(c, str) and c.isprintable() and c.strip() == c and c else repr(c) for c in columns]
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "no columns"


def read_table(
    path: Path, text: str, levels: Sequence[str], *, empty: str = "drop", on_duplicates: str = "warn"
) -> RawData:
    """Read a user file into :class:`RawData`. Checked here, naming the file's own line (or row) of the
    first offender: cells that are not one value (lists, dicts, arrays, bytes), texts that are not
    strings, a missing label on a row with text, empty texts with ``empty="error"``, and texts seen
    with different labels (counted and warned about; refused with ``on_duplicates="error"``). The
    taxonomy itself is validated by ``build_dataset``."""
    levels = _check_read_args(path, text, levels, on_duplicates)
    df = read_frame(path)
    if len(df) == 0:
        raise InputDataError(f"{path}: the file has no rows")
    missing = [c for c in [text, *levels] if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}; the file has {describe_columns(df.columns)} "
            "(set --text / --levels)"
        )
    rows_at = RowNames(path, len(df))
    check_scalar_columns(df, [text, *levels] + (["split"] if "split" in df.columns else []), path, rows_at)
    texts, labels, has_text = _texts_and_labels(df, path, text, levels, rows_at)
    n_empty = has_text.count(False)
    if n_empty and empty == "error":
        raise TaxonomyError(
            f"{path}: {n_empty} empty or whitespace-only texts (first at {rows_at(has_text.index(False))}); "
            "remove them or pass empty='drop'"
        )
    _check_duplicates(path, texts, labels, has_text, levels, rows_at, on_duplicates)
    if "split" in df.columns:
        rows = _rows_by_split_column(df, path, texts, labels, rows_at)
        return RawData(tuple(levels), rows, info={"file": str(path), "splits_from": "column 'split'"})
    rows = holdout_rows(texts, labels, TEST_FRACTION, SPLIT_SEED)
    return RawData(
        tuple(levels), rows, info={"file": str(path), "test_split": {"fraction": TEST_FRACTION, "seed": SPLIT_SEED}}
    )


def _check_read_args(path: Path, text: Any, levels: Any, on_duplicates: Any) -> tuple[str, ...]:
    """:func:`read_table`'s arguments, checked before the file is read; returns the level names."""
    if on_duplicates not in DUPLICATES:
        raise InputDataError(f"on_duplicates must be 'warn' or 'error', got {on_duplicates!r}")
    names = check_levels(levels) or ()
    if not names:
        raise TaxonomyError(f"{path}: name the label columns, coarse -> fine (levels=['domain', 'intent'])")
    if not isinstance(text, str) or not text:
        raise InputDataError(f"{path}: text must name the text column (--text), got {text!r}")
    if text in names:
        raise InputDataError(
            f"{path}: column {text!r} is both the text column (--text) and a level (--levels): the texts would be "
            f"their own labels; pick the column of the texts with --text, or drop {text!r} from --levels"
        )
    return tuple(str(n) for n in names)


def _texts_and_labels(
    df: Any, path: Path, text: str, levels: Sequence[str], rows_at: Callable[[int], str]
) -> tuple[list[str | None], list[tuple[str, ...]], list[bool]]:
    """Every row's text (``None``: a missing cell; a non-string is refused), its labels (stripped
    strings, one per level; a row with text needs every one) and whether it has text."""
    texts: list[str | None] = []
    for i, t in enumerate(df[text].tolist()):
        if _missing(t):
            t = None
        elif not isinstance(t, str):
            raise TaxonomyError(
                f"{path}: {rows_at(i)}: column {text!r} holds a {type(t).__name__} ({t!r}); texts must "
                "be strings: quote it in the file or pick another --text column"
            )
        texts.append(t)
    has_text = [t is not None and bool(t.strip()) for t in texts]
    columns = [[cell_text(v).strip() for v in df[lv].tolist()] for lv in levels]
    labels = list(zip(*columns, strict=True))
    for i, lab in enumerate(labels):
        if has_text[i] and "" in lab:
            lv = levels[lab.index("")]
            raise TaxonomyError(
                f"{path}: {rows_at(i)}: empty label in column {lv!r}; every row with text needs a label "
                "at every level: fill it in or drop the row"
            )
    return texts, labels, has_text


def _rows_by_split_column(
    df: Any, path: Path, texts: list[str | None], labels: list[tuple[str, ...]], rows_at: Callable[[int], str]
) -> dict[str, tuple[list, list]]:
    """The rows of each split named by the file's ``split`` column (train, val or test; any case)."""
    split_col = np.array([cell_text(v).strip().lower() for v in df["split"].tolist()], dtype=object)
    ok = np.isin(split_col, ["train", "val", "test"])
    if not ok.all():
        first = int(np.flatnonzero(~ok)[0])
        bad = sorted(set(split_col[~ok].tolist()))
        raise InputDataError(
            f"{path}: column 'split' has values {bad[:3]} (first at {rows_at(first)}); use train, val or test"
        )
    rows = {}
    for s in ("train", "val", "test"):
        idx = np.flatnonzero(split_col == s)
        if len(idx):
            rows[s] = ([texts[i] for i in idx], [labels[i] for i in idx])
    return rows


def _check_duplicates(
    path: Path,
    texts: Sequence[str | None],
    labels: Sequence[Sequence[str]],
    has_text: Sequence[bool],
    levels: Sequence[str],
    rows_at: Callable[[int], str],
    on_duplicates: str,
) -> None:
    """Texts that appear more than once with different labels (at some level): warn, or refuse."""
    first: dict[str, int] = {}
    conflicts: dict[str, tuple[int, int]] = {}
    for i, t in enumerate(texts):
        if not has_text[i] or t is None:  # has_text is False for a missing text
            continue
        key = t.strip()
        j = first.setdefault(key, i)
        if j != i and labels[j] != labels[i] and key not in conflicts:
            conflicts[key] = (j, i)
    if not conflicts:
        return
    n = len(conflicts)
    key, (j, i) = next(iter(conflicts.items()))
    k = next(k for k in range(len(levels)) if labels[j][k] != labels[i][k])
    example = (
        f"e.g. {quoted(key)}: {levels[k]} {quoted(labels[j][k], 40)} at {rows_at(j)}, "
        f"{quoted(labels[i][k], 40)} at {rows_at(i)}"
    )
    what = f"{path}: {n} text{' appears' if n == 1 else 's appear'} more than once with different labels ({example})"
    if on_duplicates == "error":
        raise InputDataError(f"{what}; give each text one set of labels, or pass on_duplicates='warn' to accept them")
    warnings.warn(
        f"{what}; they are kept (each row trains on its own labels); pass on_duplicates='error' to refuse such files",
        stacklevel=5,
    )
