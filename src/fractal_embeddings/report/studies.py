"""The sections of the ablations and controls: the causal ablation, synthetic hierarchies, label noise,
head capacity, three-level taxonomies, the cross-encoder, external methods and the backbone control
(fine-tuning: :mod:`.finetune`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import stats
from . import figures
from .frame import load_measurements
from .section import Section, by_method, full_j, ordered, prefix_curves
from .tables import Table, num, pm, pval


def ablation_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Causal ablation")
    sec.text += [
        "Same head and trainer; only the label schedule changes. Inverted trains fine labels on short "
        "prefixes and coarse on the full vector, so alignment predicts a sign flip.",
        "",
    ]
    facts: dict = {}
    for fam, label in (
        ("v5-paper", "the seed's recipe (v5-paper family)"),
        ("fractal", "the default method (fractal family)"),
    ):
        g = df[df["family"] == fam]
        if not len(g):
            continue
        variants = ordered(
            g["variant"].unique(),
            first=(
                "v5-paper",
                "inverted",
                "no-prefix",
                "uhmt",
                "mrl",
                "fractal",
                "fractal inverted",
                "fractal uniform",
                "fractal-mrl",
            ),
        )
        t = Table(f"ablation_{fam}", f"Steerability S by schedule, {label} (mean ± SD)", ["dataset", *variants])
        groups = {}
        for d, gd in g.groupby("dataset", sort=False):
            t.add(f"{d} (n={gd['seed'].nunique()})", *[pm(gd[gd["variant"] == v]["S"]) for v in variants])
            groups[d] = {v: gd[gd["variant"] == v]["S"].to_numpy() for v in variants}
            facts.setdefault(fam, {})[d] = {v: float(gd[gd["variant"] == v]["S"].mean()) for v in variants}
        sec.add_table(t)
        sec.add_figure(
            figures.grouped_bars(groups, fig_dir, f"ablation_{fam}", title=label),
            f"Ablation, {label}: S per schedule (mean ± SD over seeds)",
            root,
        )
    sec.facts = facts
    return sec


def synthetic_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Synthetic hierarchies (Goldilocks)")
    sec.text += [
        "CLINC150 text with random coarse partitions of the 150 intents into K0 groups: H(L1) fixed, "
        "H(L0) ~ log2 K0 varies.",
        "",
    ]
    by = by_method(df, "random_coarse")
    k0s = sorted(df["random_coarse"].dropna().unique().astype(int))
    t = Table("synthetic", "S by number of coarse groups K0 (mean ± SD over seeds)", ["K0", "H(L0) bits", *by])
    for k in k0s:
        h = df[df["random_coarse"] == k]["H_L0"].mean()
        t.add(k, num(h, 2), *[pm(by[m].get(k, [])) for m in by])
    sec.add_table(t)
    facts: dict[str, Any] = {"fits": {}, "mrl_max_abs": None}
    panels = []
    for m in by:
        g = df[df["method"] == m].groupby("random_coarse").agg(H=("H_L0", "mean"), S=("S", "mean"))
        if m == "mrl":
            facts["mrl_max_abs"] = float(g["S"].abs().max())
            continue
        if len(g) >= 4:
            fit = stats.quadratic_fit(g["H"], g["S"])
            peak_k0 = float(2 ** fit["vertex"])
            inside = bool(g["H"].min() <= fit["vertex"] <= g["H"].max())
            facts["fits"][m] = {**fit, "peak_K0": peak_k0, "vertex_inside": inside}
            sec.text += [
                f"{m}: S = {fit['a']:+.4f} H² {fit['b']:+.4f} H {fit['c']:+.4f}, R² = {fit['r2']:.3f}; "
                f"vertex at H(L0) = {fit['vertex']:.2f} bits (K0 ≈ {peak_k0:.1f}, "
                f"{'a peak' if fit['is_peak'] else 'a minimum, not a peak'}"
                f"{'' if inside else ', outside the K0 range run: S is monotone over it'}).",
                "",
            ]
        mrl = df[df["method"] == "mrl"].groupby("random_coarse").agg(H=("H_L0", "mean"), S=("S", "mean"))
        panels.append(
            {
                "x": g["H"],
                "y": g["S"],
                "labels": [f"K0={int(k)}" for k in g.index],
                "xlabel": "H(L0) (bits)",
                "title": f"{m} (quadratic fit) vs mrl",
                "fit": "quadratic",
                "color": figures.color(m),
                "series": [(mrl["H"], mrl["S"], "mrl")] if len(mrl) else [],
            }
        )
    if facts["mrl_max_abs"] is not None:
        sec.text += [f"mrl: max |S| over K0 = {facts['mrl_max_abs']:.3f}.", ""]
    if panels:
        sec.add_figure(
            figures.scatter_fit(panels, fig_dir, "synthetic_goldilocks"),
            "Steerability vs coarse-level entropy on CLINC150 with random coarse partitions",
            root,
        )
    sec.facts = facts
    return sec


def noise_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Noisy coarse labels")
    df = df.assign(noise=df["coarse_noise"].fillna(0.0))
    by = by_method(df, "noise")
    levels = sorted(df["noise"].unique())
    t = Table(
        "noise",
        "S by fraction of wrong coarse training labels (mean ± SD; retention = S(p) / S(0))",
        ["noise", *[c for m in by for c in (m, f"{m} retention")]],
    )
    facts: dict = {}
    for p in levels:
        cells = []
        for m in by:
            s0 = np.mean(by[m].get(0.0, [np.nan]))
            sp = by[m].get(p, [])
            ret = float(np.mean(sp) / s0) if len(sp) and s0 else float("nan")
            facts.setdefault(m, {})[float(p)] = ret
            cells += [pm(sp), f"{100 * ret:.0f}%" if np.isfinite(ret) else "-"]
        t.add(f"{100 * p:.0f}%", *cells)
    sec.add_table(t)
    panels = [
        {
            "x": [100 * p for p in levels],
            "y": [np.mean(by[m].get(p, [np.nan])) for p in levels],
            "xlabel": "wrong coarse labels in training (%)",
            "title": m,
            "fit": None,
            "color": figures.color(m),
            "labels": None,
        }
        for m in by
    ]
    sec.add_figure(
        figures.scatter_fit(panels, fig_dir, "noise_curve"), "Steerability vs coarse-label noise (CLINC150)", root
    )
    sec.facts = facts
    return sec


def capacity_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Prefix capacity")
    sec.text += ["Four blocks of b dims each; S compares the first block with all four.", ""]
    blocks = sorted(df["block_dim"].unique())
    facts: dict = {}
    panels = []
    for m in [m for m in ("v5-paper", "fractal") if m in set(df["method"])]:
        g = df[df["method"] == m]
        t = Table(
            f"capacity_{m}", f"{m}: S by block size (mean ± SD)", ["dataset", *[f"b={b}" for b in blocks], "peak"]
        )
        series = []
        for d, gd in g.groupby("dataset", sort=False):
            means = gd.groupby("block_dim")["S"].mean()
            peak = int(means.idxmax())
            facts.setdefault(m, {})[d] = {
                "peak": peak,
                "S": {int(k): float(v) for k, v in means.items()},
                "H": float(gd["H_L1|L0"].mean()),
            }
            t.add(d, *[pm(gd[gd["block_dim"] == b]["S"]) for b in blocks], f"b={peak}")
            series.append((list(means.index), list(means.values), d))
        per = facts[m]
        if len(per) >= 3:  # S at the smallest block vs the hierarchy's depth, across datasets
            b0 = int(blocks[0])
            x = [v["H"] for v in per.values() if b0 in v["S"]]
            y = [v["S"][b0] for v in per.values() if b0 in v["S"]]
            c = stats.correlation(x, y)
            facts.setdefault("rho_at_smallest", {})[m] = {"block": b0, **c}
            t.caption += (
                f"; at b={b0}, S vs H(L1|L0) across the {c['n']} datasets: Spearman ρ {c['spearman']:+.2f} "
                f"(p {pval(c['spearman_p'])})"
            )
        sec.add_table(t)
        panels.append({"x": [], "y": [], "xlabel": "block size b (dims)", "title": m, "fit": None, "series": series})
    sec.add_figure(
        figures.scatter_fit(panels, fig_dir, "capacity_curves"), "Steerability vs block size per dataset", root
    )
    sec.facts = facts
    return sec


def three_level_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Three and more levels")
    variants = ordered(df["variant"].unique())
    # S: coarsest vs finest level (S_02 with three levels); S_ab: levels a and b, shown for adjacent pairs
    pairs = sorted(c for c in df.columns if len(c) == 4 and c.startswith("S_") and c[2:].isdigit())
    adjacent = [c for c in pairs if int(c[3]) == int(c[2]) + 1]
    cols = ["S", *adjacent]
    t = Table(
        "three_level",
        "Steerability with three and four levels (mean ± SD): S compares the coarsest and finest level, "
        "S_ab levels a and b",
        ["dataset", "levels", "method", "n", *cols],
        align="lrlr" + "r" * len(cols),
    )
    facts: dict = {}
    for d, g in df.groupby("dataset", sort=False):
        for v in variants:
            gv = g[g["variant"] == v]
            if len(gv):
                t.add(d, int(gv["n_levels"].iloc[0]), v, len(gv), *[pm(gv[c].dropna()) for c in cols])
                facts.setdefault(d, {})[v] = {c: gv[c].dropna().to_numpy() for c in ["S", *pairs]}
    sec.add_table(t)
    sec.add_figure(
        figures.accuracy_vs_prefix(
            prefix_curves(df, variants), fig_dir, "three_level_curves", "k-NN accuracy per prefix, 3-4 levels"
        ),
        "Per-level accuracy of each prefix with three and four levels (mean ± SD; dashed: untrained)",
        root,
    )
    sec.facts = facts
    return sec


def cross_encoder_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Across encoders")
    t = Table(
        "cross_encoder",
        "S per encoder (mean ± SD) and the aligned - mrl gap",
        ["encoder", "dataset", "v5-paper", "fractal", "mrl", "v5-paper - mrl", "fractal - mrl"],
        align="llrrrrr",
    )
    facts: dict = {}
    groups = {}
    for (e, d), g in df.groupby(["encoder", "dataset"], sort=False):
        s = {m: g[g["method"] == m]["S"].to_numpy() for m in ("v5-paper", "fractal", "mrl")}
        gap = {
            m: float(np.mean(s[m]) - np.mean(s["mrl"])) if len(s[m]) and len(s["mrl"]) else float("nan")
            for m in ("v5-paper", "fractal")
        }
        facts.setdefault(e, {})[d] = gap
        t.add(
            e,
            d,
            pm(s["v5-paper"]),
            pm(s["fractal"]),
            pm(s["mrl"]),
            num(gap["v5-paper"], 3, True),
            num(gap["fractal"], 3, True),
        )
        groups[f"{d}\n{e}"] = s
    sec.add_table(t)
    cost = df.attrs.get("encoder_cost")
    if cost:
        tc = Table(
            "encoder_cost",
            f"What each encoder costs ({cost['texts']:,} {cost['dataset']} test texts, {cost['cpu']}; "
            f"median of {cost['repeats']} round-robin rounds, bench/encoder_cost.py)",
            ["encoder", "backend", "dims", "weights MB", "sentences/s", "vs MiniLM-L6"],
            align="llrrrr",
        )
        for e, c in cost["encoders"].items():
            tc.add(
                e,
                c["backend"],
                c["dim"],
                f"{c['weight_bytes'] / 1e6:.0f}",
                f"{c['sentences_per_s']:.0f}",
                f"{c['vs_minilm_l6']:.2f}x",
            )
        sec.add_table(tc)
    sec.add_figure(
        figures.grouped_bars(groups, fig_dir, "cross_encoder", title="S per encoder"),
        "Steerability per encoder and dataset (mean ± SD over seeds)",
        root,
    )
    sec.facts = facts
    return sec


def attach_encoder_cost(df: pd.DataFrame, results: str | Path) -> pd.DataFrame:
    """Put ``encoder_cost.json`` (bench/encoder_cost.py) on ``df.attrs["encoder_cost"]``."""
    df.attrs["encoder_cost"] = load_measurements(results, "cross-encoder", "encoder_cost.json")
    return df


def external_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("External baselines")
    sec.text += [
        "Same cache, caps, trainer and evaluation for every method; parameters of the trained head; "
        "training seconds measured on this machine (median over seeds).",
        "",
    ]
    nb = full_j(df)
    order = ordered(df["method"].unique(), first=("fractal", "v5-paper", "heal", "csr", "smec", "mrl"))
    t = Table(
        "external",
        "External baselines: S, full-length fine accuracy, head size and training cost",
        ["dataset", "method", "n", "S", f"L1@j{nb}", "head params", "train s"],
        align="llrrrrr",
    )
    facts: dict = {}
    panels = []
    for d, g in df.groupby("dataset", sort=False):
        xs, ys, labels = [], [], []
        for m in order:
            gm = g[g["method"] == m]
            if not len(gm):
                continue
            params = gm["n_params"].dropna()
            t.add(
                d,
                m,
                len(gm),
                pm(gm["S"]),
                pm(gm[f"L1@j{nb}"], signed=False),
                f"{int(params.iloc[0]):,}" if len(params) else "-",
                f"{gm['train_s'].median():.1f}",
            )
            facts.setdefault(d, {})[m] = {"S": float(gm["S"].mean()), "train_s": float(gm["train_s"].median())}
            xs.append(float(gm["train_s"].median()))
            ys.append(float(gm["S"].mean()))
            labels.append(m)
        panels.append(
            {
                "x": xs,
                "y": ys,
                "labels": labels,
                "xlabel": "training seconds (median, this CPU)",
                "title": f"{d}: steerability vs training cost",
                "fit": None,
                "legend": True,
            }
        )
    sec.add_table(t)
    sec.add_figure(
        figures.scatter_fit(panels, fig_dir, "external_cost"),
        "Steerability vs measured training cost per method (the efficiency frontier)",
        root,
    )
    sec.facts = facts
    return sec


def backbone_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Alignment or capacity (backbone control)")
    sec.text += [
        "The seed's 2 x 2: aligned (`v5-paper`) vs `mrl`, each head-only and with the encoder's last "
        "layers fine-tuned with the head. If trainable capacity made prefixes steerable, mrl with a "
        "fine-tuned encoder would move away from 0.",
        "",
    ]
    nb = full_j(df)
    arms = [(m, a) for m in ("v5-paper", "mrl") for a in ("head-only", "fine-tuned")]
    names = {
        (m, a): df[(df["method"] == m) & (df["arm"] == a)]["variant"].iloc[0]
        for m, a in arms
        if len(df[(df["method"] == m) & (df["arm"] == a)])
    }
    t = Table(
        "backbone_control",
        f"S (mean ± SD over seeds), full-length fine accuracy L1@j{nb} and training seconds (median) per arm",
        ["dataset", "arm", "n", "S", f"L1@j{nb}", "train s"],
        align="llrrrr",
    )
    tp = Table(
        "backbone_tests",
        "Head-only v5-paper vs mrl with a fine-tuned encoder (paired by seed)",
        ["dataset", "n", "mean diff", "t", "p", "d_z"],
        align="lrrrrr",
    )
    facts: dict = {}
    groups: dict = {}
    for d, g in df.groupby("dataset", sort=False):
        groups[d] = {}
        for arm, variant in names.items():
            ga = g[g["variant"] == variant]
            if not len(ga):
                continue
            t.add(d, variant, len(ga), pm(ga["S"]), pm(ga[f"L1@j{nb}"], signed=False), f"{ga['train_s'].median():.1f}")
            groups[d][variant] = ga["S"].to_numpy()
            facts.setdefault(d, {})[arm] = float(ga["S"].mean())
        a, b = (
            g[g["variant"] == names.get(k)].set_index("seed")["S"]
            for k in (("v5-paper", "head-only"), ("mrl", "fine-tuned"))
        )
        common = a.index.intersection(b.index)
        if len(common) >= 2:
            r = stats.paired_test(a[common].to_numpy(), b[common].to_numpy())
            tp.add(d, len(common), num(r["mean_diff"], 3, True), num(r["t"], 2), pval(r["p"]), num(r["cohens_d"], 2))
    sec.add_table(t)
    if tp.rows:
        sec.add_table(tp)
    sec.add_figure(
        figures.grouped_bars(groups, fig_dir, "backbone_control", title="alignment vs trainable capacity"),
        "Steerability per arm: head-only vs fine-tuned encoder layers (mean ± SD over seeds)",
        root,
    )
    sec.facts = facts
    return sec
