"""The ``main`` experiment's section: steerability per method and dataset, the paired tests against the
MRL control, the prefix curves, S against the hierarchy's depth and the steerability predictor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .. import stats
from ..errors import FractalError
from ..predictor import RULE, fit_predictor
from . import figures
from .section import ALIGNED, CONTROL, METRICS, Section, full_j, meta, ordered, paired_family, prefix_curves
from .tables import Table, num, pm, pval


def main_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Main comparison")
    second = df[df["variant"].str.contains(" @ ", regex=False)]  # the second encoder family's runs
    df = df[~df["variant"].str.contains(" @ ", regex=False)]
    variants = ordered(df["variant"].unique())
    datasets = list(dict.fromkeys(df["dataset"]))
    nb = full_j(df)
    seeds = sorted(df["seed"].unique())
    sec.text += [
        f"{len(datasets)} datasets x {len(variants)} methods x {len(seeds)} seeds "
        f"({len(df)} runs; seeds {', '.join(map(str, seeds))}); encoder "
        f"{', '.join(sorted(df['encoder'].unique()))}. S = (L0@j1 - L0@j{nb}) + (L1@j{nb} - L1@j1); "
        "accuracies are leave-one-out 5-NN on the test rows of each record.",
        "",
    ]
    sec.add_table(steerability_table(df, datasets, variants, nb))
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
    paired_tests(df, variants, sec, facts, fig_dir, root)
    sec.add_table(accuracy_tax(facts, datasets, variants, nb))
    facts["robustness"] = robustness(df, datasets, variants, sec)
    sec.facts = facts
    scaling(df, sec, fig_dir, root)
    if len(second):
        second_encoder_table(df, second, nb, sec)
    if df.attrs.get("results") is not None and not bool(df["quick"].any()):
        predictor_table(Path(df.attrs["results"]), sec)
    return sec


def second_encoder_table(df: pd.DataFrame, second: pd.DataFrame, nb: int, sec: Section) -> None:
    """The same methods on the same rows with a second encoder family (variants ``<method> @ <encoder>``),
    next to the MiniLM grid's numbers for the same datasets and seeds."""
    t = Table(
        "main_second_encoder",
        "A second encoder family: S and fine accuracy at the full vector, MiniLM-L6 vs the second encoder "
        "(mean ± SD over the same seeds)",
        ["dataset", "method", "encoder", "n", "S (MiniLM-L6)", "S", f"L1@j{nb} (MiniLM-L6)", f"L1@j{nb}"],
        align="lllrrrrr",
    )
    facts: dict = {}
    for (d, v), g in second.groupby(["dataset", "variant"], sort=False):
        method, enc = v.split(" @ ", 1)
        base = df[(df["dataset"] == d) & (df["variant"] == method) & df["seed"].isin(g["seed"])]
        t.add(
            d,
            method,
            enc,
            len(g),
            pm(base["S"]),
            pm(g["S"]),
            pm(base[f"L1@j{nb}"], signed=False),
            pm(g[f"L1@j{nb}"], signed=False),
        )
        facts.setdefault(enc, {}).setdefault(d, {})[method] = {
            "S": float(g["S"].mean()), "S_minilm": float(base["S"].mean()), "fine": float(g[f"L1@j{nb}"].mean()),
            "fine_minilm": float(base[f"L1@j{nb}"].mean()),
        }  # fmt: skip
    sec.add_table(t)
    sec.facts["second_encoder"] = facts
    for enc, per in facts.items():
        fr = {d: m["fractal"] for d, m in per.items() if "fractal" in m}
        if fr:
            sec.text += [
                f"With {enc}, `fractal` steers on "
                + ", ".join(
                    f"{d} (S {x['S']:+.3f} vs MiniLM-L6 {x['S_minilm']:+.3f}; "
                    f"fine {x['fine']:.3f} vs {x['fine_minilm']:.3f})"
                    for d, x in fr.items()
                )
                + '. Its cost per text is in section "Across encoders".',
                "",
            ]


def steerability_table(df: pd.DataFrame, datasets: list[str], variants: list[str], nb: int) -> Table:
    """S and the coarse / fine accuracy at the shortest and full prefix per dataset and method, and the
    untrained encoder's."""
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
    return t


def paired_tests(df: pd.DataFrame, variants: list[str], sec: Section, facts: dict, fig_dir: Path, root: Path) -> None:
    """Per aligned method: paired t-tests against mrl per dataset, the sign test and the random-effects
    meta-analysis (into ``facts["families"]``), and the forest plot."""
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


def accuracy_tax(facts: dict, datasets: list[str], variants: list[str], nb: int) -> Table:
    """The aligned methods' full-length finest-level accuracy minus mrl's, per dataset."""
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
    return t


def robustness(df: pd.DataFrame, datasets: list[str], variants: list[str], sec: Section) -> dict:
    """Each aligned method's gap to mrl per dataset under every steerability metric (tables into ``sec``)."""
    out = {}
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
        out[aligned] = rob
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
    return out


def predictor_table(results: Path, sec: Section) -> None:
    """The steerability predictor refitted on these ``main`` records (``predictor.fit_predictor``, the model
    chosen by its stated rule) and its leave-one-taxonomy-out predictions."""
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
    nb = full_j(df)
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
