"""The report section of the ``induced`` experiment: induced vs published vs random coarse levels.

Reads the frame's rows (one per run record), the grouping each record keeps in its dataset block
(``info["variant"]``: agreement with the published level, the classes of every group) and the
after-hook's files (``<store>/published/<dataset>/<variant>/seed<N>.json``: the run scored against
the published coarse level). :func:`attach` puts the last two on ``df.attrs["induced"]``; the report
builder calls it. Nothing is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..experiments import induced as exp
from ..records import load_record
from ..store import store_dir
from . import figures
from .section import Section
from .tables import Table, num, pm

GROUPINGS = ("published", "induced", "random")
EXAMPLE_GROUPS = 5
EXAMPLE_MEMBERS = 5


def attach(df: pd.DataFrame, results: str | Path) -> pd.DataFrame:
    """Read, for every row of ``df`` (the ``induced`` experiment's runs), its record's grouping and its
    published-level score (when the after-hook wrote it) into ``df.attrs["induced"]``."""
    root = store_dir(results, exp.NAME, bool(df["quick"].any()))
    variants: dict[str, Any] = {}
    published: dict[str, Any] = {}
    caps: dict[str, Any] = {}
    for row in df.itertuples():
        key = str(row.key)
        rec = load_record(root / key)
        variants[key] = rec.dataset.variant
        caps[json.dumps(((rec.tags or {}).get("spec") or {}).get("cap"), sort_keys=True)] = None
        path = exp.published_file(root, str(row.dataset), str(row.variant), int(row.seed))
        if path.is_file():
            published[key] = json.loads(path.read_text(encoding="utf-8"))
    df.attrs["induced"] = {"store": str(root), "variants": variants, "published": published, "caps": list(caps)}
    return df


def _grouping(df: pd.DataFrame, variants: dict) -> pd.Series:
    def one(key: str) -> str:
        v = variants.get(key) or {}
        return {"induced": "induced", "random-like-induced": "random"}.get(v.get("kind", ""), "published")

    return df["key"].map(one)


def induced_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    """Tables from the records and the after-hook's files (see the module docstring)."""
    sec = Section("Induced coarse levels (`fractal taxonomy induce`)")
    data = df.attrs.get("induced")
    if not data:
        sec.text += ["No groupings attached to the records (the report builder reads them: `induced.attach`).", ""]
        return sec
    variants, published = data["variants"], data["published"]
    df = df.assign(grouping=_grouping(df, variants))
    df["S_published"] = df["key"].map(lambda k: (published.get(k) or {}).get("steerability", {}).get("S", np.nan))
    df["S_published"] = df["S_published"].astype(float)
    nb = int(df["n_blocks"].max())
    sec.text += [
        f"Produced by `fractal experiment induced` (method `fractal`, seeds "
        f"{', '.join(map(str, sorted(df['seed'].unique())))}; rows per split at most "
        f"{' or '.join(_cap(c) for c in data.get('caps', []))}, stratified by the fine level) and this report. "
        "`induced`: the fine classes grouped by Ward linkage of their train-split centroids under the frozen "
        "encoder, K = the published coarse level's class count; "
        "`random`: a seeded random grouping of the fine classes with the induced groups' sizes. ARI / NMI: "
        "the grouping vs the published coarse level over the fine classes (one item per class). "
        "**S (own level)**: the record's S, measured on the level the run was trained on; **S (published)**: "
        "the same run's embeddings on the same test rows scored against the published coarse level "
        "(the after-hook's files; for `published` the two are the same measurement). Mean ± SD over seeds.",
        "",
    ]
    facts: dict[str, Any] = {}
    pubs = df[df["dataset"].isin(set(df.loc[df["grouping"] == "published", "dataset"]))]
    if len(pubs):
        _published(sec, pubs, variants, facts, fig_dir, root)
    flat = df[~df["dataset"].isin(set(pubs["dataset"]))]
    for d, g in flat.groupby("dataset", sort=False):
        sec.text += _flat_tables(sec, str(d), g, variants, nb, facts)
    sec.facts = facts
    return sec


def _published(
    sec: Section, pubs: pd.DataFrame, variants: dict, facts: dict[str, Any], fig_dir: Path, root: Path
) -> None:
    """Datasets with a published coarse level: agreement and S of the induced and random groupings, on
    their own and on the published level (table, figure, ``facts`` per dataset), and the re-score check."""
    t = Table(
        "induced_vs_published",
        "Induced vs published coarse levels: agreement, and S on the own and on the published level",
        [
            "dataset",
            "K",
            "ARI induced",
            "NMI induced",
            "ARI random",
            "S (own) induced",
            "S (own) random",
            "S (published) published",
            "S (published) induced",
            "S (published) random",
            "seeds",
        ],
    )
    groups: dict[str, dict[str, list[float]]] = {}
    for d, g in pubs.groupby("dataset", sort=False):
        agree = {gr: _agreement(g[g["grouping"] == gr], variants) for gr in ("induced", "random")}
        k = _k(g[g["grouping"] == "induced"], variants)
        s_own = {gr: g.loc[g["grouping"] == gr, "S"].to_numpy() for gr in GROUPINGS}
        s_pub = {gr: g.loc[g["grouping"] == gr, "S_published"].dropna().to_numpy() for gr in GROUPINGS}
        t.add(
            d,
            k if k is not None else "-",
            num(agree["induced"]["ari"]),
            num(agree["induced"]["nmi"]),
            num(agree["random"]["ari"], signed=True),
            pm(s_own["induced"]),
            pm(s_own["random"]),
            pm(s_pub["published"]),
            pm(s_pub["induced"]),
            pm(s_pub["random"]),
            str(g["seed"].nunique()),
        )
        groups[str(d)] = {gr: list(s_pub[gr]) for gr in GROUPINGS}
        facts[str(d)] = {
            "K": k,
            "agreement": agree,
            "S_own": {gr: _mean(s_own[gr]) for gr in GROUPINGS},
            "S_published": {gr: _mean(s_pub[gr]) for gr in GROUPINGS},
        }
    sec.add_table(t)
    same = pubs[(pubs["grouping"] == "published") & pubs["S_published"].notna()]
    if len(same):
        gap = float((same["S_published"] - same["S"]).abs().max())
        facts["published_rescore_max_abs_diff"] = gap
        sec.text += [
            f"Check: the `published` runs re-scored by the after-hook match their records' S "
            f"(largest difference {gap:.1e}).",
            "",
        ]
    missing = int(pubs["S_published"].isna().sum())
    if missing:
        sec.text += [f"{missing} runs have no published-level score yet (run the experiment's after-hook).", ""]
    sec.add_figure(
        figures.grouped_bars(groups, fig_dir, "induced_published", title="S on the published coarse level"),
        "S against the published coarse level of runs trained on the published, the induced and a random "
        "grouping of the same sizes (mean ± SD over seeds)",
        root,
    )


def _flat_tables(sec: Section, d: str, g: pd.DataFrame, variants: dict, nb: int, facts: dict) -> list[str]:
    t = Table(
        f"induced_{d}",
        f"{d}: trained on an induced coarse level (no published one): coarse accuracy at the first block, "
        "fine accuracy at full length",
        ["variant", "K", "L0@j1", f"L1@j{nb}", "S (own level)", "untrained L0@j1", f"untrained L1@j{nb}", "seeds"],
    )
    facts[d] = {}
    first_names = [f"{gr} k{k}" for k in exp.FLAT_K for gr in ("induced", "random")]
    for v in sorted(g["variant"].unique(), key=lambda x: (first_names + [x]).index(x)):
        gv = g[g["variant"] == v]
        k = _k(gv, variants)
        t.add(
            str(v),
            k if k is not None else "-",
            pm(gv["L0@j1"], signed=False),
            pm(gv[f"L1@j{nb}"], signed=False),
            pm(gv["S"]),
            pm(gv["base_L0@j1"], signed=False),
            pm(gv[f"base_L1@j{nb}"], signed=False),
            str(gv["seed"].nunique()),
        )
        facts[d][str(v)] = {
            "K": k,
            "L0@j1": float(gv["L0@j1"].mean()),
            f"L1@j{nb}": float(gv[f"L1@j{nb}"].mean()),
            "S": float(gv["S"].mean()),
        }
    sec.add_table(t)
    lines: list[str] = []
    autos = g[g["grouping"] == "induced"].sort_values(["variant", "seed"])
    auto = autos[autos["key"].map(lambda key: bool((variants.get(key) or {}).get("auto")))]
    first = auto if len(auto) else autos
    if len(first):
        v = variants[first["key"].iloc[0]]
        a = v.get("auto")
        if a:
            sil = a["silhouette"]
            lines += [
                f"`k=auto` rule: {a['rule']}. It picked K = {a['chosen']} (mean silhouette "
                f"{sil[str(a['chosen'])]:.3f}; candidates {a['candidates'][0]}..{a['candidates'][1]}).",
                "",
            ]
        lines += [f"Example groups of `{first['variant'].iloc[0]}` (K = {v['k']}, from the record):", ""]
        for name, members in list(v["groups"].items())[:EXAMPLE_GROUPS]:
            more = f", ... ({len(members)} {v.get('level', 'classe')}s)" if len(members) > EXAMPLE_MEMBERS else ""
            lines.append(f"- **{name}**: {', '.join(members[:EXAMPLE_MEMBERS])}{more}")
        lines.append("")
    return lines


def _cap(text: str) -> str:
    cap = json.loads(text) or {}
    return ", ".join(f"{n:,} {split}" for split, n in cap.items()) or "all"


def _agreement(g: pd.DataFrame, variants: dict) -> dict[str, float]:
    """Mean ARI / NMI over the rows' records (one published coarse level: the dataset's default)."""
    ari, nmi = [], []
    for key in g["key"]:
        for a in ((variants.get(key) or {}).get("agreement") or {}).values():
            ari.append(a["ari"])
            nmi.append(a["nmi"])
    return {"ari": _mean(np.asarray(ari)), "nmi": _mean(np.asarray(nmi))}


def _k(g: pd.DataFrame, variants: dict) -> int | None:
    ks = {int(k) for key in g["key"] if (k := (variants.get(key) or {}).get("k")) is not None}
    return ks.pop() if len(ks) == 1 else None


def _mean(a: np.ndarray) -> float:
    return float(np.mean(a)) if len(a) else float("nan")
