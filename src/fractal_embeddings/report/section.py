"""The :class:`Section` a report section returns (markdown, tables, figures and ``facts`` -- the
numbers the claims table checks) and the helpers the section modules share.

Nothing here is typed by hand: every number comes from the run records through the frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from .tables import Table

CONTROL = "mrl"
ALIGNED = ("v5-paper", "fractal")  # each compared with mrl (the seed's comparison) in the main experiment
METRICS = ("S", "S_AUC", "S_gap", "S_mono")


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def add_table(self, t: Table) -> None:
        self.tables.append(t)
        self.text += [f"**{t.caption}**", "", t.markdown(), ""]

    def add_figure(self, path: Path, caption: str, rel_to: Path) -> None:
        self.figures.append(path)
        self.text += [f"![{caption}]({path.relative_to(rel_to).as_posix()})", "", f"*{caption}*", ""]


def full_j(df: pd.DataFrame) -> int:
    return int(df["n_blocks"].max())


def ordered(values: Iterable[str], first: Sequence[str] = ("fractal", "v5-paper", "mrl")) -> list[str]:
    vals = list(dict.fromkeys(values))
    return [v for v in first if v in vals] + [v for v in vals if v not in first]


def prefix_curves(df: pd.DataFrame, variants: Iterable[str], prefix: str = "") -> dict:
    """``{dataset: {level: {variant: (dims, mean, sd)}}}`` (+ the untrained encoder)."""
    out = {}
    for d, g in df.groupby("dataset", sort=False):
        nb, bd, nl = full_j(g), int(g["block_dim"].iloc[0]), int(g["n_levels"].iloc[0])
        dims = [j * bd for j in range(1, nb + 1)]
        per_level = {}
        for lv in range(nl):
            name = "L0 (coarsest)" if lv == 0 else (f"L{lv} (finest)" if lv == nl - 1 else f"L{lv}")
            m = {}
            for v in variants:
                gv = g[g["variant"] == v]
                if len(gv):
                    cols = [f"L{lv}@j{j}" for j in range(1, nb + 1)]
                    m[v] = (dims, gv[cols].mean().to_numpy(), gv[cols].std(ddof=1).fillna(0).to_numpy())
            base = [f"base_L{lv}@j{j}" for j in range(1, nb + 1)]
            m["untrained"] = (dims, g[base].mean().to_numpy(), np.zeros(nb))
            per_level[name] = m
        out[d] = per_level
    return out


def paired_family(df: pd.DataFrame, aligned: str, control: str = CONTROL, metric: str = "S") -> list[dict]:
    """Per dataset: the paired test of aligned vs control over shared seeds, Holm-adjusted in the family."""
    rows = []
    for d, g in df.groupby("dataset", sort=False):
        a = g[g["variant"] == aligned].set_index("seed")[metric]
        b = g[g["variant"] == control].set_index("seed")[metric]
        seeds = sorted(set(a.index) & set(b.index))
        if len(seeds) < 2:
            continue
        t = stats.paired_test(a.loc[seeds].to_numpy(), b.loc[seeds].to_numpy())
        rows.append({"dataset": d, "aligned": a.loc[seeds].to_numpy(), "control": b.loc[seeds].to_numpy(), **t})
    if rows:
        for r, p in zip(rows, stats.holm([r["p"] for r in rows]), strict=True):
            r["p_holm"] = float(p)
    return rows


def meta(rows: list[dict]) -> dict | None:
    studies = [
        (r["dataset"], r["cohens_d"], stats.d_variance(r["cohens_d"], r["n"]))
        for r in rows
        if np.isfinite(r["cohens_d"])
    ]
    if len(studies) < 2:
        return None
    return {"studies": studies, "pooled": stats.random_effects([s[1] for s in studies], [s[2] for s in studies])}


def by_method(df: pd.DataFrame, col: str, methods: Sequence[str] = ("v5-paper", "fractal", "mrl")) -> dict:
    """``{method: {value of col: S values over seeds}}``."""
    out = {}
    for m in methods:
        g = df[df["method"] == m]
        if len(g):
            out[m] = {k: gg["S"].to_numpy() for k, gg in g.groupby(col)}
    return out


def col_mean(df: pd.DataFrame, col: str) -> float:
    return float(df[col].mean()) if col in df and df[col].notna().any() else float("nan")
