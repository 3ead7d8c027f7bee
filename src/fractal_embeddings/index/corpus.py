"""Corpus reading: the texts a zoom index is built from, with ids, payloads and label names.

:func:`read_corpus` reads a built-in dataset's split, a ``.txt`` file (one text per line) or a user
table (CSV / TSV / JSONL / Parquet, read by the data package's
:func:`~fractal_embeddings.data.tabular.read_frame`, so a corpus file and a dataset file are read
and checked the same way) into a :class:`Corpus`. Empty and missing texts are dropped with a
warning; a corpus left with no text is a :class:`~fractal_embeddings.index.ZoomIndexError` (an index
that cannot be built), a file that cannot be read an
:class:`~fractal_embeddings.errors.InputDataError`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import load_dataset
from ..data.loaders import decode_error
from ..errors import InputDataError, ZoomIndexError
from ..extras import require_table_reader

if TYPE_CHECKING:
    import pandas as pd

TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


@dataclass
class Corpus:
    """Texts to index, with ids, payloads and per-level label names (``labels[i]``, or ``None``)."""

    texts: list[str]
    ids: list
    payloads: list
    labels: list | None
    level_names: tuple[str, ...]
    source: dict

    def __len__(self) -> int:
        return len(self.texts)


def _drop_empty(texts: Sequence[Any], keep_rows: list[int], source: str) -> list[int]:
    rows = [i for i in keep_rows if isinstance(texts[i], str) and texts[i].strip()]
    dropped = len(keep_rows) - len(rows)
    if dropped:
        warnings.warn(f"{source}: dropped {dropped} empty or missing texts", stacklevel=3)
    return rows


def read_corpus(
    source: str,
    *,
    split: str | None = None,
    text: str = "text",
    levels: Sequence[str] | None = None,
    id_column: str | None = None,
) -> Corpus:
    """Texts to index from a built-in dataset name (its ``split``, default ``train``, with class
    names at each level), a ``.txt`` file (one text per line; blank lines skipped; id = line index,
    0-based) or a CSV/TSV/JSONL/Parquet file (column ``text``; ``levels`` columns give labels,
    ``id_column`` ids (default: row index, 0-based); the other columns become each item's payload; a
    ``split`` column is filtered by ``split`` when given)."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        if path.is_dir():
            raise InputDataError(f"{path} is a directory, not a file; pass a .txt file (one text per line)")
        if not path.is_file():
            raise InputDataError(f"{path}: no such file")
        try:
            lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): ids are the file's line indices
        except UnicodeDecodeError:
            raise decode_error(path) from None
        if lines and lines[-1] == "":
            lines.pop()
        if levels:
            raise InputDataError(f"{path}: a .txt corpus has no label columns; drop --levels or use a CSV/JSONL file")
        rows = _drop_empty(lines, list(range(len(lines))), str(path))
        if not rows:
            raise ZoomIndexError(f"empty corpus: {path} has no non-empty lines")
        return Corpus([lines[i] for i in rows], rows, [None] * len(rows), None, (), {"kind": "txt", "path": str(path)})
    if suffix in TABLE_SUFFIXES:
        return _table_corpus(path, split, text, levels, id_column)
    if path.exists() and path.is_file():
        raise InputDataError(f"{path}: unsupported file type '{path.suffix}'; use .txt, .csv, .tsv, .jsonl or .parquet")
    ds = load_dataset(source, tuple(levels) if levels else None)
    split = split or "train"
    sp = ds.split(split)
    if len(sp) == 0:
        raise ZoomIndexError(f"empty corpus: split '{split}' of {ds.name} has no rows")
    return Corpus(
        list(sp.texts),
        list(range(len(sp))),
        [None] * len(sp),
        ds.label_names(split),
        ds.level_names,
        {"kind": "dataset", "name": ds.name, "split": split, "fingerprint": ds.fingerprint()},
    )


def _payloads(df: pd.DataFrame, extra: list, keep: list[int], path: Path) -> list:
    """The other columns of the kept rows as JSON objects; a column JSON can't hold (binary) is left out, with a
    warning."""

    def as_json(cols: list) -> list:
        return json.loads(df[cols].iloc[keep].to_json(orient="records"))

    try:
        return as_json(extra)
    except (ValueError, TypeError, OverflowError, UnicodeError):
        good, bad = [], []
        for c in extra:
            try:
                as_json([c])
                good.append(c)
            except (ValueError, TypeError, OverflowError, UnicodeError):
                bad.append(c)
        warnings.warn(
            f"{path}: column{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} left out of the "
            "payloads: its values can't be stored as JSON (binary data?)",
            stacklevel=4,
        )
        return as_json(good) if good else [None] * len(keep)


def _table_corpus(
    path: Path, split: str | None, text: str, levels: Sequence[str] | None, id_column: str | None
) -> Corpus:
    require_table_reader(path)
    from ..data.tabular import check_scalar_columns, describe_columns, read_frame  # pandas: the data extra

    df = read_frame(path)
    if len(df) == 0:
        raise ZoomIndexError(f"empty corpus: {path} has no rows")
    levels = list(levels or [])
    wanted = [text, *levels] + ([id_column] if id_column else []) + (["split"] if split else [])
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}; the file has "
            f"{describe_columns(df.columns)} (set --text / --levels / --id)"
        )
    check_scalar_columns(df, [text, *levels] + (["split"] if split else []), path)
    keep = list(range(len(df)))
    if split:
        col = df["split"].astype(str).str.strip().str.lower().tolist()
        keep = [i for i in keep if col[i] == split]
    texts: list[Any] = [None if (isinstance(t, float) and math.isnan(t)) else t for t in df[text].tolist()]
    for i in keep:
        if texts[i] is not None and not isinstance(texts[i], str):
            texts[i] = str(texts[i])
    keep = _drop_empty(texts, keep, str(path))
    if not keep:
        raise ZoomIndexError(f"empty corpus: {path} has no rows with text" + (f" in split '{split}'" if split else ""))
    extra = [c for c in df.columns if c not in {text, *levels, id_column, "split"}]
    payloads = _payloads(df, extra, keep, path) if extra else [None] * len(keep)
    labels = None
    if levels:
        cols = [df[lv].tolist() for lv in levels]
        labels = [
            ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in (c[i] for c in cols)]
            for i in keep
        ]
    if id_column:
        raw = df[id_column].tolist()
        ids = [raw[i].item() if isinstance(raw[i], np.generic) else raw[i] for i in keep]
        ids = [i if isinstance(i, (int, str)) and not isinstance(i, bool) else str(i) for i in ids]
    else:
        ids = keep
    return Corpus(
        [texts[i] for i in keep],
        ids,
        payloads,
        labels,
        tuple(levels),
        {"kind": path.suffix.lower().lstrip("."), "path": str(path), "split": split},
    )
