"""Run records -> one flat table (a pandas DataFrame, one row per run) that every report section reads.

Columns: ``experiment``, ``dataset``, ``variant``, ``method``, ``seed``, ``n_levels``, the
steerability metrics (``S``, ``S_AUC``, ``S_gap``, ``S_mono``, ``S_02`` for three levels), the
prefix accuracies ``L{level}@j{prefix}`` (``L0@j1`` = coarsest level on the first block), the
untrained encoder's ``base_L{level}@j{prefix}``, retrieval metrics when the record has them
(``R@1 L1@j4``, ``mAP@10 L0@j1``, ... and ``base_`` ones), ``H_L0`` and ``H_L1|L0`` (bits), ``train_s``,
``block_dim``, ``encoder``, the spec fields an experiment varied (``coarse_noise``,
``random_coarse``), the backbone control's ``arm``, and ``key`` (the run's directory in the store).

:func:`load_measurements` reads the measurements file of an experiment that measures rather than trains.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from ..errors import FractalError
from ..records import RunRecord
from ..store import RunStore, store_dir


def _acc_columns(acc: dict, block_dim: int, levels: list[str], prefix: str = "") -> dict:
    """``L{i}@j{j}`` columns; level i is the record's i-th level (records store level names
    alphabetically, so the order comes from the dataset block, never from the dict)."""
    out = {}
    for dims, per_level in acc.items():
        j = int(dims) // block_dim
        for i, name in enumerate(levels):
            out[f"{prefix}L{i}@j{j}"] = per_level[name]
    return out


def record_row(rec: RunRecord, experiment: str, key: str = "") -> dict:
    """One table row of a :class:`~fractal_embeddings.records.RunRecord`."""
    head = rec.head
    bd = head.block_dim
    tags = rec.tags or {}
    spec = tags.get("spec") or {}
    ent = rec.dataset.entropy
    row = {
        "experiment": experiment,
        "key": key,
        "dataset": rec.dataset.name,
        "variant": tags.get("variant") or rec.method,
        "method": rec.method,
        "seed": rec.seed,
        "n_levels": len(rec.dataset.levels),
        "n_blocks": head.n_blocks,
        "block_dim": bd,
        "encoder": rec.encoder.model or rec.encoder.name,
        "train_s": rec.timing["train_s"],
        "n_params": rec.training.n_params if rec.training else None,
        "H_L0": ent.get("H_L0"),
        "H_L1|L0": ent.get("H_L1|L0"),
        "coarse_noise": spec.get("coarse_noise"),
        "random_coarse": spec.get("random_coarse"),
        "family": tags.get("family"),
        "control_of": tags.get("control_of"),
        "arm": tags.get("arm"),
    }
    row.update(rec.steerability)
    names = rec.level_names
    row.update(_acc_columns(rec.accuracy, bd, names))
    row.update(_acc_columns(rec.baseline.accuracy, bd, names, "base_"))
    row["base_S"] = rec.baseline.S
    ret = rec.retrieval
    if ret:  # "<metric> L{i}@j{j}" columns, e.g. "R@1 L1@j4" (and "base_R@1 L1@j4" for the untrained encoder)
        for src, pre in (("trained", ""), ("baseline", "base_")):
            for dims, per_level in ret[src].items():
                for i, name in enumerate(names):
                    for metric, v in per_level[name].items():
                        row[f"{pre}{metric} L{i}@j{int(dims) // bd}"] = v
    return row


def load_frame(results: str | Path, experiments: Collection[str] | None = None) -> pd.DataFrame:
    """Every run record under ``results/<experiment>/`` (or under ``results`` itself when it is one
    experiment's store)."""
    results = Path(results)
    if not results.is_dir():
        raise FractalError(f"{results}: no such results directory; run `fractal experiment NAME --out {results}` first")
    subdirs = sorted(p for p in results.iterdir() if p.is_dir() and p.name != "figures")
    stores = [(p.name, RunStore(p)) for p in subdirs if experiments is None or p.name in experiments]
    rows = []
    for name, store in stores:
        for key, rec in store.records():
            exp = (rec.tags or {}).get("experiment") or name
            rows.append({**record_row(rec, exp, key), "quick": name.endswith("-quick")})
    if not rows:
        raise FractalError(f"{results}: no run records found; run `fractal experiment main --out {results}` first")
    df = pd.DataFrame(rows)
    full = set(df.loc[~df["quick"], "experiment"])
    return df[~(df["quick"] & df["experiment"].isin(full))].reset_index(drop=True)  # a full run beats a quick one


def load_measurements(results: str | Path, name: str, file: str) -> dict | None:
    """The measurements file of an experiment that measures rather than trains (``latency``, ``search``):
    ``<results>/<name>[-quick]/<file>``, a full run beating a quick one; ``None`` when neither is there."""
    for quick in (False, True):
        path = store_dir(results, name, quick) / file
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None
