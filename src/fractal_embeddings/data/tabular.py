"""User files: CSV, TSV, JSONL or Parquet with a text column and one column per level (coarse -> fine).

An optional ``split`` column (values ``train``/``val``/``test``) assigns rows to splits; without it
every row is ``train`` and a seeded stratified ``val`` split is made (``taxonomy.build_dataset``),
plus a seeded stratified ``test`` split (20 %) so the file can be evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputDataError
from .loaders import RawData
from .taxonomy import holdout_rows

TEST_FRACTION = 0.2
SPLIT_SEED = 0
_READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def _read_frame(path: Path) -> pd.DataFrame:
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InputDataError(f"{path}: unsupported file type '{path.suffix}'; use .csv, .tsv, .jsonl or .parquet")
    if not path.is_file():
        raise InputDataError(f"{path}: no such file")
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False,
                               encoding="utf-8", encoding_errors="strict")
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        return pd.read_parquet(path)
    except UnicodeDecodeError as e:
        raise InputDataError(f"{path}: not valid UTF-8 (byte {e.start}: {e.object[e.start:e.start + 1]!r}); re-save the file as UTF-8") from None
    except (ValueError, OSError, pd.errors.ParserError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputDataError(f"{path}: cannot be read as {kind} ({msg})") from None


def read_table(path: Path, text: str, levels: Sequence[str]) -> RawData:
    """Read a user file into :class:`RawData` (validation happens in ``build_dataset``)."""
    df = _read_frame(path)
    if len(df) == 0:
        raise InputDataError(f"{path}: the file has no rows")
    wanted = [text, *levels]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}; the file has {', '.join(map(str, df.columns))} "
            "(set --text / --levels)"
        )
    texts = [None if (isinstance(t, float) and np.isnan(t)) else t for t in df[text].tolist()]
    labels = list(zip(*(df[lv].astype(str).where(df[lv].notna(), "").tolist() for lv in levels)))
    if "split" in df.columns:
        split_col = df["split"].astype(str).str.strip().str.lower()
        bad = sorted(set(split_col) - {"train", "val", "test"})
        if bad:
            raise InputDataError(f"{path}: column 'split' has values {bad[:3]}; use train, val or test")
        rows = {}
        for s in ("train", "val", "test"):
            idx = np.flatnonzero(split_col.to_numpy() == s)
            if len(idx):
                rows[s] = ([texts[i] for i in idx], [labels[i] for i in idx])
        return RawData(tuple(levels), rows, info={"file": str(path), "splits_from": "column 'split'"})
    rows = holdout_rows(texts, labels, TEST_FRACTION, SPLIT_SEED)
    return RawData(tuple(levels), rows, info={"file": str(path), "test_split": {"fraction": TEST_FRACTION, "seed": SPLIT_SEED}})
