"""Report sections: each takes the run table of one experiment and returns a :class:`Section`
(markdown, tables, figures) plus ``facts`` -- the numbers the claims table checks.

Nothing here is typed by hand: every number comes from the run records through the frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import stats
from . import figures
from .tables import Table, num, pm, pval

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


def _levels(df: pd.DataFrame) -> int:
    return int(df["n_levels"].max())


def _full_j(df: pd.DataFrame) -> int:
    return int(df["n_blocks"].max())


def _order(values: Iterable[str], first: Sequence[str] = ("fractal", "v5-paper", "mrl")) -> list[str]:
    vals = list(dict.fromkeys(values))
    return [v for v in first if v in vals] + [v for v in vals if v not in first]


def prefix_curves(df: pd.DataFrame, variants: Iterable[str], prefix: str = "") -> dict:
    """``{dataset: {level: {variant: (dims, mean, sd)}}}`` (+ the untrained encoder)."""
    out = {}
    for d, g in df.groupby("dataset", sort=False):
        nb, bd, nl = _full_j(g), int(g["block_dim"].iloc[0]), int(g["n_levels"].iloc[0])
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


def main_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Main comparison")
    variants = _order(df["variant"].unique())
    datasets = list(dict.fromkeys(df["dataset"]))
    nb = _full_j(df)
    seeds = sorted(df["seed"].unique())
    sec.text += [
        f"{len(datasets)} datasets x {len(variants)} methods x {len(seeds)} seeds "
        f"({len(df)} runs; seeds {', '.join(map(str, seeds))}); encoder "
        f"{', '.join(sorted(df['encoder'].unique()))}. S = (L0@j1 - L0@j{nb}) + (L1@j{nb} - L1@j1); "
        "accuracies are leave-one-out 5-NN on the test rows of each record.",
        "",
    ]
    t = Table(
        "main_steerability",
        "Steerability S (mean ± SD over seeds) and k-NN accuracy",
        ["dataset", "method", "n", "S", "L0@j1", f"L0@j{nb}", "L1@j1", f"L1@j{nb}", "train s"],
        align="llrrrrrrr",
    )
    for d in datasets:
        for v in variants:
            g = df[(df["dataset"] == d) & (df["variant"] == v)]
            if len(g):
                t.add(
                    d,
                    v,
                    len(g),
                    pm(g["S"]),
                    pm(g["L0@j1"], signed=False),
                    pm(g[f"L0@j{nb}"], signed=False),
                    pm(g["L1@j1"], signed=False),
                    pm(g[f"L1@j{nb}"], signed=False),
                    f"{g['train_s'].median():.1f}",
                )
        g = df[df["dataset"] == d]
        t.add(
            d,
            "untrained encoder",
            "-",
            num(g["base_S"].mean(), signed=True),
            num(g["base_L0@j1"].mean()),
            num(g[f"base_L0@j{nb}"].mean()),
            num(g["base_L1@j1"].mean()),
            num(g[f"base_L1@j{nb}"].mean()),
            "-",
        )
    sec.add_table(t)
    facts: dict = {"datasets": datasets, "S": {}, "fine_full": {}, "families": {}}
    for (d, v), g in df.groupby(["dataset", "variant"]):
        facts["S"].setdefault(v, {})[d] = g["S"].to_numpy()
        facts["fine_full"].setdefault(v, {})[d] = float(g[f"L1@j{nb}"].mean())

    curves = prefix_curves(df, variants)
    sec.add_figure(
        figures.accuracy_vs_prefix(curves, fig_dir, "main_accuracy_vs_prefix"),
        "k-NN accuracy of each prefix, per level (mean ± SD over seeds; dashed: the untrained encoder)",
        root,
    )

    forest_data = {}
    for aligned in [a for a in ALIGNED if a in variants]:
        rows = paired_family(df, aligned)
        if not rows:
            continue
        fam: dict[str, Any] = {
            "tests": rows,
            "meta": meta(rows),
            "sign": stats.sign_test([r["mean_diff"] for r in rows]),
        }
        facts["families"][aligned] = fam
        t = Table(
            f"main_tests_{aligned}",
            f"{aligned} vs mrl: paired t-tests over seeds (Holm within the family)",
            ["dataset", "n", "S diff", "t", "p", "p (Holm)", "Cohen's d", "Hedges' g"],
        )
        for r in rows:
            t.add(
                r["dataset"],
                r["n"],
                num(r["mean_diff"], signed=True),
                num(r["t"], 2),
                pval(r["p"]),
                pval(r["p_holm"]),
                num(r["cohens_d"], 2),
                num(r["hedges_g"], 2),
            )
        sec.add_table(t)
        s = fam["sign"]
        line = f"Sign test ({aligned} > mrl, one-sided): {s['positive']}/{s['n']} datasets, p = {pval(s['p'])}."
        if fam["meta"]:
            p = fam["meta"]["pooled"]
            forest_data[f"{aligned} vs mrl"] = fam["meta"]
            line += (
                f" Random-effects meta-analysis (DerSimonian-Laird, paired d per dataset): pooled d = "
                f"{p['pooled']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}], z = {p['z']:.2f}, p = {pval(p['p'])}, "
                f"tau² = {p['tau2']:.3f}, I² = {100 * p['I2']:.0f}%, 95% prediction interval "
                f"[{p['pi'][0]:.2f}, {p['pi'][1]:.2f}]."
            )
        sec.text += [line, ""]
    if forest_data:
        sec.add_figure(
            figures.forest(forest_data, fig_dir, "main_forest"),
            "Per-dataset paired effect (Cohen's d of S, aligned - mrl, 95% CI) and the pooled estimate",
            root,
        )

    # accuracy tax and metric robustness
    t = Table(
        "main_accuracy_tax",
        f"Full-length finest-level k-NN accuracy (L1@j{nb}) minus mrl's, in pp",
        ["dataset", *[a for a in ALIGNED if a in variants]],
    )
    for d in datasets:
        base = facts["fine_full"].get(CONTROL, {}).get(d)
        t.add(
            d,
            *[
                num(100 * (facts["fine_full"][a][d] - base), 1, True)
                if base is not None and d in facts["fine_full"].get(a, {})
                else "-"
                for a in ALIGNED
                if a in variants
            ],
        )
    sec.add_table(t)
    facts["robustness"] = {}
    for aligned in [a for a in ALIGNED if a in variants]:
        gaps = {
            m: {
                d: float(
                    df[(df["dataset"] == d) & (df["variant"] == aligned)][m].mean()
                    - df[(df["dataset"] == d) & (df["variant"] == CONTROL)][m].mean()
                )
                for d in datasets
            }
            for m in METRICS
        }
        rob = stats.metric_robustness(gaps)
        facts["robustness"][aligned] = rob
        t = Table(
            f"main_robustness_{aligned}",
            f"Metric robustness, {aligned} - mrl per dataset",
            ["metric", *rob["datasets"], "aligned wins", "sign p"],
        )
        for m, r in rob["metrics"].items():
            t.add(
                m,
                *[num(r["gaps"][d], 3, True) for d in rob["datasets"]],
                f"{r['aligned_wins']}/{r['n']}",
                pval(r["sign_p"]),
            )
        sec.add_table(t)
        if rob["rank_correlation"]:
            sec.text += [
                "Spearman rank correlation of the per-dataset gaps between metrics: "
                + ", ".join(f"{k} {v:+.2f}" for k, v in rob["rank_correlation"].items())
                + ".",
                "",
            ]
    sec.facts = facts
    scaling(df, sec, fig_dir, root)
    if df.attrs.get("results") is not None and not bool(df["quick"].any()):
        predictor_table(Path(df.attrs["results"]), sec)
    return sec


def predictor_table(results: Path, sec: Section) -> None:
    """The steerability predictor refitted on these ``main`` records (``predictor.fit_predictor``, the model
    chosen by its stated rule) and its leave-one-taxonomy-out predictions."""
    from ..errors import FractalError
    from ..predictor import RULE, fit_predictor

    try:
        fit = fit_predictor(results, out=None)
    except FractalError:
        return
    nl, lo, pr = fit["nested_loo"], fit["loo"], fit["product_loo"]
    sec.facts["predictor"] = {k: fit[k] for k in ("features", "coef", "loo", "nested_loo", "product_loo")}
    sec.text += [
        f"**Steerability predictor.** Rule, fixed before fitting: {RULE}. Chosen on these {len(fit['points'])} "
        f"taxonomies: `{fit['model']}` with {', '.join(fit['features'])} (coefficients "
        f"{', '.join(f'{c:+.4f}' for c in fit['coef'])}). Leave-one-taxonomy-out MAE {lo['mae']:.3f} "
        f"(worst {lo['max_error']:.3f}, {lo['worst']}); with the model choice redone without each taxonomy "
        f"(nested) {nl['mae']:.3f} (worst {nl['max_error']:.3f}, {nl['worst']}; 95% prediction intervals "
        f"cover {nl['coverage']:.0%}); the seed's product predictor alone {pr['mae']:.3f}; predicting the "
        f"others' mean {nl['mean_only_mae']:.3f}.",
        "",
    ]
    t = Table(
        "main_predictor",
        "Steerability predictor, leave one taxonomy out (nested: the model is re-chosen on the other taxonomies)",
        ["dataset", "S", "product-only prediction", "nested prediction", "features chosen", "95% interval", "covered"],
    )
    prod = {r["dataset"]: r for r in pr["per_dataset"]}
    for r in nl["per_dataset"]:
        t.add(
            r["dataset"],
            num(r["S"], 3, True),
            num(prod[r["dataset"]]["predicted"], 3, True),
            num(r["predicted"], 3, True),
            ", ".join(r["features"]),
            f"[{r['interval'][0]:+.3f}, {r['interval'][1]:+.3f}]",
            "yes" if r["covered"] else "no",
        )
    sec.add_table(t)
    c = Table(
        "main_predictor_candidates",
        "Predictor candidates by leave-one-taxonomy-out MAE (best five)",
        ["features", "LOO MAE"],
    )
    for cand in fit["selection"]["candidates"][:5]:
        c.add(", ".join(cand["features"]), f"{cand['loo_mae']:.4f}")
    sec.add_table(c)


def scaling(df: pd.DataFrame, sec: Section, fig_dir: Path, root: Path) -> None:
    """S against the hierarchy's depth H(L1|L0) and the product predictor H(L1|L0) x untrained fine accuracy."""
    nb = _full_j(df)
    per = df.groupby("dataset").agg(H=("H_L1|L0", "mean"), base=(f"base_L1@j{nb}", "mean"))
    if per["H"].isna().any() or len(per) < 3:
        return
    per["product"] = per["H"] * per["base"]
    sec.facts["scaling"] = {}
    t = Table(
        "main_scaling",
        "S vs hierarchy depth across datasets (Spearman / Pearson; bootstrap 95% CI of rho, 10,000 resamples, seed 0)",
        ["method", "predictor", "Spearman ρ", "p", "Pearson r", "p", "ρ 95% CI", "LOO ρ range", "max Cook's D"],
    )
    panels = []
    for v in [a for a in ALIGNED if a in set(df["variant"])]:
        S = df[df["variant"] == v].groupby("dataset")["S"].mean().reindex(per.index)
        if S.isna().any():
            continue
        res = {}
        for pred in ("H", "product"):
            x = per[pred].to_numpy()
            c = stats.correlation(x, S.to_numpy())
            b = stats.bootstrap_ci(x, S.to_numpy(), "spearman", 10_000, seed=0)
            loo = stats.leave_one_out(x, S.to_numpy(), list(per.index)) if len(per) >= 4 else []
            cd = stats.cooks_distance(x, S.to_numpy())
            res[pred] = {**c, "bootstrap": b, "loo": loo, "cooks": dict(zip(per.index, cd.tolist(), strict=True))}
            rng = f"[{min(r['spearman'] for r in loo):+.2f}, {max(r['spearman'] for r in loo):+.2f}]" if loo else "-"
            t.add(
                v,
                "H(L1|L0)" if pred == "H" else "H(L1|L0) x untrained fine acc",
                num(c["spearman"], 2, True),
                pval(c["spearman_p"]),
                num(c["pearson"], 2, True),
                pval(c["pearson_p"]),
                f"[{b['ci'][0]:+.2f}, {b['ci'][1]:+.2f}]",
                rng,
                f"{cd.max():.2f} ({per.index[int(cd.argmax())]})",
            )
        sec.facts["scaling"][v] = res
        panels.append(
            {
                "x": per["H"],
                "y": S,
                "labels": list(per.index),
                "xlabel": "H(L1|L0) (bits)",
                "title": f"{v}: S vs H(L1|L0)",
                "fit": "linear",
                "color": figures.color(v),
            }
        )
        panels.append(
            {
                "x": per["product"],
                "y": S,
                "labels": list(per.index),
                "xlabel": "H(L1|L0) x untrained fine k-NN acc",
                "title": f"{v}: S vs product predictor",
                "fit": "linear",
                "color": figures.color(v),
            }
        )
    if panels:
        sec.add_table(t)
        sec.add_figure(
            figures.scatter_fit(panels, fig_dir, "main_scaling"),
            "Steerability vs hierarchy depth per dataset, with least-squares lines",
            root,
        )


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
        variants = _order(
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


SECTIONS = {"main": main_section, "ablation": ablation_section}


def _by(df: pd.DataFrame, col: str, methods: Sequence[str] = ("v5-paper", "fractal", "mrl")) -> dict:
    """``{method: {value of col: S values over seeds}}``."""
    out = {}
    for m in methods:
        g = df[df["method"] == m]
        if len(g):
            out[m] = {k: gg["S"].to_numpy() for k, gg in g.groupby(col)}
    return out


def synthetic_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Synthetic hierarchies (Goldilocks)")
    sec.text += [
        "CLINC150 text with random coarse partitions of the 150 intents into K0 groups: H(L1) fixed, "
        "H(L0) ~ log2 K0 varies.",
        "",
    ]
    by = _by(df, "random_coarse")
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
    by = _by(df, "noise")
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
    variants = _order(df["variant"].unique())
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
    sec.add_figure(
        figures.grouped_bars(groups, fig_dir, "cross_encoder", title="S per encoder"),
        "Steerability per encoder and dataset (mean ± SD over seeds)",
        root,
    )
    sec.facts = facts
    return sec


def external_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("External baselines")
    sec.text += [
        "Same cache, caps, trainer and evaluation for every method; parameters of the trained head; "
        "training seconds measured on this machine (median over seeds).",
        "",
    ]
    nb = _full_j(df)
    order = _order(df["method"].unique(), first=("fractal", "v5-paper", "heal", "csr", "smec", "mrl"))
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
    nb = _full_j(df)
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


def finetune_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Frozen or fine-tuned encoder (fractal finetune)")
    sec.text += [
        "`fractal` and its matched control `fractal-mrl`, each as a head on the frozen encoder and "
        "fine-tuned end to end (encoder + head, sentence-transformers' trainer with `FractalLoss`) on the "
        "same training rows. L0@j1: coarse accuracy of the first block; L1@jB: fine accuracy of the full "
        "vector; L1@j1: fine accuracy left in the first block (high = the coarse prefix is not coarse).",
        "",
    ]
    nb = _full_j(df)
    cols = ["S", "L0@j1", "L1@j1", f"L1@j{nb}"]
    t = Table(
        "finetune",
        "Frozen vs fine-tuned (mean ± SD over seeds; training seconds: median)",
        ["dataset", "arm", "n", *cols, "train s"],
        align="llrrrrrr",
    )
    tp = Table(
        "finetune_tests",
        "Fine-tuned minus frozen `fractal`, paired by seed",
        ["dataset", "metric", "n", "mean diff", "t", "p"],
        align="llrrrr",
    )
    variants = _order(
        df["variant"].unique(),
        first=("fractal frozen", "fractal fine-tuned", "fractal-mrl frozen", "fractal-mrl fine-tuned"),
    )
    facts: dict = {}
    groups: dict = {}
    for d, g in df.groupby("dataset", sort=False):
        groups[d] = {}
        for v in variants:
            gv = g[g["variant"] == v]
            if not len(gv):
                continue
            t.add(
                d,
                v,
                len(gv),
                pm(gv["S"]),
                *(pm(gv[c], signed=False) for c in cols[1:]),
                f"{gv['train_s'].median():.1f}",
            )
            groups[d][v] = gv["S"].to_numpy()
            facts.setdefault(d, {})[v] = {c: float(gv[c].mean()) for c in cols}
        frozen, tuned = (g[g["variant"] == v].set_index("seed") for v in ("fractal frozen", "fractal fine-tuned"))
        common = frozen.index.intersection(tuned.index)
        if len(common) >= 2:
            for c in ("S", f"L1@j{nb}", "L1@j1"):
                r = stats.paired_test(tuned.loc[common, c].to_numpy(), frozen.loc[common, c].to_numpy())
                tp.add(d, c, len(common), num(r["mean_diff"], 3, True), num(r["t"], 2), pval(r["p"]))
    sec.add_table(t)
    if tp.rows:
        sec.add_table(tp)
    sec.add_figure(
        figures.grouped_bars(groups, fig_dir, "finetune", title="frozen vs fine-tuned encoder"),
        "Steerability per arm: head on the frozen encoder vs encoder + head fine-tuned (mean ± SD over seeds)",
        root,
    )
    sec.facts = facts
    return sec


SECTIONS.update(
    {
        "synthetic": synthetic_section,
        "noise": noise_section,
        "capacity": capacity_section,
        "three-level": three_level_section,
        "cross-encoder": cross_encoder_section,
        "external": external_section,
        "backbone-control": backbone_section,
        "finetune": finetune_section,
    }
)


def _mean(df: pd.DataFrame, col: str) -> float:
    return float(df[col].mean()) if col in df and df[col].notna().any() else float("nan")


def retrieval_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    """Retrieval per prefix (the records' ``retrieval`` block) and adaptive routing (pareto)."""
    from ..analysis import routing_curve

    sec = Section("Retrieval and adaptive routing")
    nb, bd = _full_j(df), int(df["block_dim"].iloc[0])
    sec.text += [
        f"Queries: the scored test rows; corpus: the training split; a hit shares the query's class at "
        f"the level. R@k = fraction of queries with a hit in the top k; mAP@10 over the top 10. "
        f"Ramp = fine-level R@1 at {nb * bd} dims minus at {bd} dims.",
        "",
    ]
    t = Table(
        "retrieval",
        "Retrieval per prefix (mean over seeds): fine (L1) and coarse (L0) level",
        [
            "dataset",
            "method",
            "n",
            f"L1 R@1 {bd}d",
            f"L1 R@1 {nb * bd}d",
            "ramp (pp)",
            f"L1 R@10 {nb * bd}d",
            f"L1 mAP@10 {nb * bd}d",
            f"L0 R@1 {bd}d",
            f"L0 R@1 {nb * bd}d",
        ],
        align="llrrrrrrrr",
    )
    facts: dict = {"retrieval": {}, "pareto": {}}
    ramp_panels = []
    for d, g in df.groupby("dataset", sort=False):
        series = []
        methods = _order(g["method"].unique())
        for m in [*methods, "untrained"]:
            gm = g[g["method"] == m] if m != "untrained" else g[g["method"] == methods[0]]
            pre = "base_" if m == "untrained" else ""
            cols = {
                f"{metric} L{lv}@j{j}": _mean(gm, f"{pre}{metric} L{lv}@j{j}")
                for metric in ("R@1", "R@10", "mAP@10")
                for lv in (0, 1)
                for j in range(1, nb + 1)
            }
            ramp = 100 * (cols[f"R@1 L1@j{nb}"] - cols["R@1 L1@j1"])
            t.add(
                d,
                m,
                len(gm) if m != "untrained" else "-",
                num(cols["R@1 L1@j1"], 3),
                num(cols[f"R@1 L1@j{nb}"], 3),
                num(ramp, 1, True),
                num(cols[f"R@10 L1@j{nb}"], 3),
                num(cols[f"mAP@10 L1@j{nb}"], 3),
                num(cols["R@1 L0@j1"], 3),
                num(cols[f"R@1 L0@j{nb}"], 3),
            )
            facts["retrieval"].setdefault(d, {})[m] = {
                "ramp_pp": ramp,
                "fine_R1_short": cols["R@1 L1@j1"],
                "fine_R1_full": cols[f"R@1 L1@j{nb}"],
            }
            series.append(([j * bd for j in range(1, nb + 1)], [cols[f"R@1 L1@j{j}"] for j in range(1, nb + 1)], m))
        ramp_panels.append(
            {
                "series": series,
                "xlabel": "prefix dims",
                "ylabel": "fine-level Recall@1",
                "title": d,
                "xticks": [j * bd for j in range(1, nb + 1)],
            }
        )
    sec.add_table(t)
    sec.add_figure(
        figures.line_panels(ramp_panels, fig_dir, "retrieval_ramp"),
        "Fine-level Recall@1 per prefix length (mean over seeds)",
        root,
    )

    sec.text += [
        "**Adaptive routing.** A workload with a fraction alpha of coarse queries: routing answers them "
        f"with the aligned model's {bd}-d prefix and fine queries with its full vector; MRL answers both at "
        f"{nb * bd} dims. Accuracy = prefix k-NN accuracy of the records (mean over seeds); the crossover "
        "is the smallest alpha from which routing is at least as accurate all the way to alpha = 1.",
        "",
    ]
    tp = Table(
        "pareto",
        "Adaptive routing vs MRL at full length",
        [
            "dataset",
            "aligned",
            "routing >= mrl for alpha in",
            "crossover alpha",
            "routing - mrl at alpha = 0.5 (pp)",
            "mean dims at 0.5",
        ],
        align="llrrrr",
    )
    panels = []
    for d, g in df.groupby("dataset", sort=False):
        mrl = g[g["method"] == CONTROL]
        if not len(mrl):
            continue
        series, c = [], None
        for m in [m for m in ("v5-paper", "fractal") if m in set(g["method"])]:
            ga = g[g["method"] == m]
            c = routing_curve(
                _mean(ga, "L0@j1"), _mean(ga, f"L1@j{nb}"), _mean(mrl, f"L0@j{nb}"), _mean(mrl, f"L1@j{nb}"), bd, nb
            )
            half = c["alpha"].index(0.5)
            gain = 100 * (c["route_acc"][half] - c["mrl_acc"][half])
            wins = "nowhere" if c["wins"] is None else f"[{c['wins'][0]:.2f}, {c['wins'][1]:.2f}]"
            tp.add(
                d,
                m,
                wins,
                "none" if c["crossover"] is None else num(c["crossover"], 2),
                num(gain, 1, True),
                num(c["route_dims"][half], 0),
            )
            facts["pareto"].setdefault(d, {})[m] = {
                "crossover": c["crossover"],
                "wins": c["wins"],
                "gain_half_pp": gain,
                "dims_half": c["route_dims"][half],
            }
            series.append((c["alpha"], c["route_acc"], f"{m} routing"))
        if c is None:
            continue
        series.append((c["alpha"], c["mrl_acc"], f"mrl {nb * bd}d"))
        panels.append(
            {"series": series, "xlabel": "fraction of coarse queries (alpha)", "ylabel": "accuracy", "title": d}
        )
    sec.add_table(tp)
    if panels:
        sec.add_figure(
            figures.line_panels(panels, fig_dir, "pareto_routing"),
            "Workload accuracy vs the fraction of coarse queries: routing (mean dims "
            f"{nb * bd} -> {bd} as alpha goes 0 -> 1) vs MRL at {nb * bd} dims",
            root,
        )
    sec.facts = facts
    return sec


def dual_encoder_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("One aligned model vs a dual encoder")
    nb, bd = _full_j(df), int(df["block_dim"].iloc[0])
    full = nb * bd
    sec.text += [
        f"Dual encoder: two {full}-d heads trained on one level each (`single-level`), {2 * full} stored "
        f"dims per item. One aligned model: its {bd}-d prefix for coarse queries, its full vector for fine "
        f"ones ({full} stored dims). Each aligned model is compared with dedicated heads of its own "
        "architecture and trainer: `v5-paper` with linear heads (the seed's recipe), `fractal` with MLP + "
        "block-norm heads (`mlp`, fractal's trainer). k-NN accuracy, mean ± SD over seeds.",
        "",
    ]
    pairs = (("v5-paper", "coarse-only", "fine-only"), ("fractal", "coarse-only mlp", "fine-only mlp"))
    cols = ["dataset", "n"]
    for aligned, coarse, fine in pairs:
        cols += [f"{coarse} L0@{full}d", f"{aligned} L0@{bd}d", f"{fine} L1@{full}d", f"{aligned} L1@{full}d"]
    t = Table(
        "dual_encoder",
        "Coarse and fine accuracy: aligned prefixes vs dedicated heads",
        cols,
        align="lr" + "r" * (len(cols) - 2),
    )
    tt = Table(
        "dual_encoder_tests",
        f"Aligned {bd}-d prefix vs the matched coarse-only head at {full}d (paired by seed)",
        ["dataset", "aligned", "mean diff", "t", "p"],
        align="llrrr",
    )
    facts: dict = {}
    for d, g in df.groupby("dataset", sort=False):
        v = {name: g[g["variant"] == name].set_index("seed") for name in dict.fromkeys(sum(pairs, ()))}
        cells = []
        for aligned, coarse, fine in pairs:
            cells += [
                pm(v[coarse].get(f"L0@j{nb}", []), signed=False),
                pm(v[aligned].get("L0@j1", []), signed=False),
                pm(v[fine].get(f"L1@j{nb}", []), signed=False),
                pm(v[aligned].get(f"L1@j{nb}", []), signed=False),
            ]
            facts.setdefault(d, {})[aligned] = {
                "short": _mean(v[aligned], "L0@j1"),
                "full": _mean(v[aligned], f"L1@j{nb}"),
                "coarse_only": _mean(v[coarse], f"L0@j{nb}"),
                "fine_only": _mean(v[fine], f"L1@j{nb}"),
            }
            common = v[aligned].index.intersection(v[coarse].index)
            if len(common) >= 2:
                r = stats.paired_test(
                    v[aligned].loc[common, "L0@j1"].to_numpy(), v[coarse].loc[common, f"L0@j{nb}"].to_numpy()
                )
                tt.add(
                    d,
                    f"{aligned} vs {coarse}",
                    num(100 * r["mean_diff"], 1, True) + " pp",
                    num(r["t"], 2),
                    pval(r["p"]),
                )
        t.add(d, g["seed"].nunique(), *cells)
    sec.add_table(t)
    if tt.rows:
        sec.add_table(tt)
    sec.facts = facts
    return sec


def latency_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    """From ``latency.json`` (attached to the frame as ``df.attrs["latency"]`` by the report builder)."""
    from ..analysis import matched, matched_ratio

    data = df.attrs.get("latency")
    sec = Section("Query latency per prefix length")
    if not data:
        sec.text += ["No `latency.json` next to the records: run `fractal experiment latency`.", ""]
        return sec
    rows = data["results"]
    m = data["machine"]
    sec.text += [
        f"FAISS {m['faiss']}, {data['search_threads']} search thread, {m['cpus']} CPUs ({m['processor']}); "
        f"HNSW M = {data['hnsw']['M']}, efConstruction = {data['hnsw']['efConstruction']}, efSearch swept "
        f"over {', '.join(map(str, data['ef_search']))}. HNSW rows use, per length, the fastest efSearch with "
        f"recall@10 >= {data['target_recall']} against exact search (matched quality).",
        "",
    ]
    t = Table(
        "latency",
        "Query latency (microseconds) and recall@10 per prefix",
        ["corpus", "n", "dims", "index", "efSearch", "recall@10", "p50 b1", "p99 b1", "p50 b64 (batch)"],
        align="lrrlrrrrr",
    )
    facts: dict = {}
    panels = []
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        series: dict = {}
        dims = sorted({r["dims"] for r in rows if r["corpus"] == corpus})
        for d in dims:
            for kind in ("flat", "hnsw"):
                cands = [r for r in rows if r["corpus"] == corpus and r["dims"] == d and r["kind"] == kind]
                r = matched(rows, corpus, kind, d, data["target_recall"]) or max(cands, key=lambda r: r["recall@10"])
                t.add(
                    corpus,
                    f"{r['n']:,}",
                    d,
                    kind,
                    r["ef_search"] or "-",
                    num(r["recall@10"], 3),
                    num(r["b1_p50_us"], 1),
                    num(r["b1_p99_us"], 1),
                    num(r["b64_p50_us"], 1),
                )
                series.setdefault(kind, ([], [], kind))
                series[kind][0].append(d)
                series[kind][1].append(r["b1_p50_us"])
        facts[corpus] = matched_ratio(rows, corpus, data["target_recall"])
        panels.append(
            {
                "series": list(series.values()),
                "xlabel": "prefix dims",
                "ylabel": "p50 latency, batch 1 (us)",
                "title": corpus,
                "logy": True,
                "xticks": dims,
            }
        )
    sec.add_table(t)
    tr = Table(
        "latency_ratio",
        "Longest / shortest prefix latency ratio (batch-1 p50, matched recall)",
        ["corpus", "flat", "hnsw"],
        align="lrr",
    )
    for corpus, f in facts.items():
        if f:
            tr.add(
                corpus,
                *[num(f[k]["ratio"], 2) + "x" if f.get(k) else "recall target not reached" for k in ("flat", "hnsw")],
            )
    sec.add_table(tr)
    sec.add_figure(
        figures.line_panels(panels, fig_dir, "latency"),
        "Batch-1 p50 query latency per prefix length (HNSW: the fastest efSearch reaching the recall target, "
        "or the highest-recall one where none does; recall per point in the table)",
        root,
    )
    sec.facts = facts
    return sec


SECTIONS.update({"retrieval": retrieval_section, "dual-encoder": dual_encoder_section, "latency": latency_section})


def _mode_label(r: dict) -> str:
    if r["mode"] == "zoom":
        return f"zoom@{r['zoom']}"
    top2 = " top-2" if r.get("route_classes") == 2 else ""
    return f"{r['mode']}{top2}"


def search_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    """From ``search.json`` (attached to the frame as ``df.attrs["search"]`` by the report builder)."""
    from ..analysis import TARGET_RECALL, fastest_at_recall

    data = df.attrs.get("search")
    sec = Section("Search modes at scale: zoom, funnel and routed")
    if not data:
        sec.text += ["No `search.json` next to the records: run `fractal experiment search`.", ""]
        return sec
    rows, m, k = data["results"], data["machine"], data["k"]
    corpora = data["corpora"]
    sec.text += [
        "Produced by `fractal experiment search` (the runs are trained inside it; the passage corpus is "
        "encoded once into the embedding cache) and `fractal report results`. "
        + " ".join(
            f"**{name}**: {c['description']}; levels {' -> '.join(c['levels'])} "
            f"({' -> '.join(map(str, c['classes']))} classes)."
            for name, c in corpora.items()
        ),
        "",
        f"Every search returns k = {k} hits for head vectors (encoding excluded), with the library's "
        f"`search` call (FAISS {m['faiss']}, {data['search_threads']} search thread, {m['cpus']} CPUs). "
        f"Recall@{k} is measured against exact full-vector search (flat, 256 dims) with the same run; "
        f"fine / coarse P@{k} = share of hits with the query's fine / coarse label. `funnel`: the 64-d "
        "prefix's index returns `candidates` items, re-ranked exactly on the full vector. `routed`: the "
        "query's `candidates` nearest items on the 64-d prefix vote its coarse class (the corpus's own "
        "labels), and only that class (top-2: and the runner-up when it has at least half the votes) is "
        f"searched on the full vector. HNSW: M = {data['hnsw']['m']}, efConstruction = "
        f"{data['hnsw']['ef_construction']}, efSearch = {data['hnsw']['ef_search']} (at least the candidates). "
        "Routing error = the voted class is not the query's; miss = the query's class was not searched. "
        "Latencies come from one run on a machine shared with other jobs: small differences between rows are noise.",
        "",
    ]
    t = Table(
        "search_modes",
        f"Search modes: recall@{k} vs exact search, precision, routing and latency (us per query)",
        [
            "corpus",
            "method",
            "index",
            "mode",
            "candidates",
            f"recall@{k}",
            f"fine P@{k}",
            f"coarse P@{k}",
            "routing error",
            "miss",
            "p50 b1",
            "b64 / query",
        ],
        align="llllrrrrrrrr",
    )
    panels = []
    facts: dict = {}
    for corpus in corpora:
        series: list = []
        exact: list = []
        hnsw_full: list = []
        for method in _order({r["method"] for r in rows if r["corpus"] == corpus}):
            mine = [r for r in rows if r["corpus"] == corpus and r["method"] == method]
            for r in mine:
                t.add(
                    corpus,
                    method,
                    r["kind"] if r["backend"] == "faiss" else f"{r['kind']} ({r['backend']})",
                    _mode_label(r),
                    r["candidates"] or "-",
                    num(r["recall@10"], 3),
                    num(r["fine_p@10"], 3),
                    num(r["coarse_p@10"], 3),
                    num(r.get("route_error"), 3),
                    num(r.get("route_miss"), 3),
                    num(r["b1_p50_us"], 0),
                    num(r["b64_per_query_us"], 0),
                )
            faiss_rows = [r for r in mine if r["backend"] == "faiss"]
            groups: dict[str, list[dict]] = {}
            for r in faiss_rows:
                if r["mode"] == "zoom" and r["zoom"] == 256:
                    (exact if r["kind"] == "flat" else hnsw_full).append((r["b1_p50_us"], r["recall@10"], method))
                    continue
                label = _mode_label(r) + (" hnsw" if r["kind"] == "hnsw" and r["mode"] != "zoom" else "")
                groups.setdefault(label, []).append(r)
            for label, g in groups.items():
                g = sorted(g, key=lambda r: r["candidates"] or 0)
                series.append(([r["b1_p50_us"] for r in g], [r["recall@10"] for r in g], method, label))
            flat_exact = next(
                (r for r in faiss_rows if r["mode"] == "zoom" and r["zoom"] == 256 and r["kind"] == "flat"), None
            )
            routed = [
                r for r in faiss_rows if r["mode"] == "routed" and r["kind"] == "flat" and r["route_classes"] == 1
            ]
            facts[f"{corpus}/{method}"] = {
                "exact_b1_us": flat_exact["b1_p50_us"] if flat_exact else None,
                "exact_fine_p": flat_exact["fine_p@10"] if flat_exact else None,
                "funnel_at_target": fastest_at_recall(rows, corpus, method, "funnel", TARGET_RECALL),
                "routed_at_target": fastest_at_recall(rows, corpus, method, "routed", TARGET_RECALL),
                "routed_best": max(routed, key=lambda r: r["recall@10"]) if routed else None,
                "hnsw_full": next(
                    (r for r in faiss_rows if r["mode"] == "zoom" and r["zoom"] == 256 and r["kind"] == "hnsw"), None
                ),
            }
        panels.append(
            {
                "title": f"{corpus} ({corpora[corpus]['items']:,} items)",
                "series": series,
                "exact": exact,
                "hnsw": hnsw_full,
            }
        )
    sec.add_table(t)
    ts = Table(
        "search_summary",
        f"Per corpus and method: exact search, HNSW on the full vector, the fastest funnel and routed search "
        f"reaching recall@{k} >= {TARGET_RECALL} (speed-up vs exact flat search), and the routed search with the "
        "highest recall (flat index, top-1)",
        [
            "corpus",
            "method",
            "exact p50 (us)",
            f"HNSW 256-d: p50 (recall@{k})",
            f"funnel >= {TARGET_RECALL}",
            f"routed >= {TARGET_RECALL}",
            "best routed: recall",
            "routing error",
            f"fine P@{k} (exact / routed)",
        ],
        align="llrllllrl",
    )

    def at(r: dict | None, exact_us: float | None) -> str:
        if r is None:
            return "not reached"
        speed = f", {exact_us / r['b1_p50_us']:.1f}x faster" if exact_us else ""
        return f"{r['kind']}, {r['candidates']} cand.: {r['b1_p50_us']:.0f} us{speed}"

    for key, f in facts.items():
        corpus, method = key.split("/", 1)
        best = f["routed_best"]
        ts.add(
            corpus,
            method,
            num(f["exact_b1_us"], 0),
            f"{f['hnsw_full']['b1_p50_us']:.0f} ({f['hnsw_full']['recall@10']:.3f})" if f["hnsw_full"] else "-",
            at(f["funnel_at_target"], f["exact_b1_us"]),
            at(f["routed_at_target"], f["exact_b1_us"]),
            num(best["recall@10"], 3) if best else "-",
            num(best["route_error"], 3) if best else "-",
            f"{num(f['exact_fine_p'], 3)} / {num(best['fine_p@10'], 3)}" if best else "-",
        )
    sec.add_table(ts)
    sentences = []
    for corpus in corpora:
        fr, mr = facts.get(f"{corpus}/fractal"), facts.get(f"{corpus}/mrl")
        parts = []
        if fr and mr and fr["routed_best"] and mr["routed_best"]:
            parts.append(
                f"routing by the 64-d prefix picks the wrong coarse class for "
                f"{fr['routed_best']['route_error']:.1%} of the queries with `fractal` and "
                f"{mr['routed_best']['route_error']:.1%} with `mrl` (best top-1 routed search)"
            )
        f_fun = [r for r in rows if r["corpus"] == corpus and r["mode"] == "funnel" and r["kind"] == "flat"]
        by = {mm: {r["candidates"]: r["recall@10"] for r in f_fun if r["method"] == mm} for mm in ("fractal", "mrl")}
        common = sorted(set(by["fractal"]) & set(by["mrl"]))
        if common:
            lo, hi = common[0], common[-1]
            parts.append(
                f"a funnel keeps recall@{k} {by['fractal'][lo]:.3f} (`fractal`) vs {by['mrl'][lo]:.3f} (`mrl`) with "
                f"{lo} candidates and {by['fractal'][hi]:.3f} vs {by['mrl'][hi]:.3f} with {hi}"
            )
        if parts:
            sentences.append(f"On {corpus}, " + "; ".join(parts) + ".")
    if sentences:
        sentences.append(
            "A steerable 64-d prefix ranks by the coarse class, so a funnel's first pass on it needs far more "
            "candidates than one on an MRL prefix trained on the fine level; the vote that routes a query works "
            "with either prefix (an `mrl` run has no coarse prefix: its fine-level neighbours vote with their "
            "coarse labels all the same)."
        )
    if sentences:
        sec.text += [" ".join(sentences), ""]
    q_rows = [r for r in rows if r["backend"] != "faiss"]
    if q_rows:
        sec.text += [
            "Rows marked `qdrant-embedded`: the same index in an embedded Qdrant collection (in memory, "
            f"{q_rows[0]['queries']} queries), searched through `QdrantIndex` (funnel = Qdrant's `prefetch`, "
            "routed = a payload filter on the coarse label); their recall is against the same exact FAISS search, and "
            "their hits equal the flat FAISS index's in the same mode (same ids, same order) for "
            + ", ".join(f"{_mode_label(r)} {r['same_ids_as_faiss']:.1%}" for r in q_rows if "same_ids_as_faiss" in r)
            + " of those queries. Their latency is qdrant-client's local mode (numpy brute force in this process), "
            "not a server's.",
            "",
        ]
    sec.add_figure(
        figures.recall_vs_latency(panels, fig_dir, "search_modes"),
        f"Recall@{k} against exact full-vector search vs median single-query latency, per search mode and method "
        "(lines: candidates; stars: exact flat search at 256 dims; crosses: HNSW at 256 dims; dotted: HNSW index)",
        root,
    )
    sec.facts = facts
    return sec


SECTIONS["search"] = search_section

from .induced import induced_section  # noqa: E402 - a section in its own module (it reads Section from here)

SECTIONS["induced"] = induced_section
