"""The sections of retrieval per prefix with adaptive routing (``retrieval``), the dual encoder and the
query latency per prefix length (``latency``, from its measurements file).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import stats
from ..analysis import LATENCY_NAME, LATENCY_RESULT_FILE, matched, matched_ratio, routing_curve
from . import figures
from .frame import load_measurements
from .section import CONTROL, Section, col_mean, full_j, ordered
from .tables import Table, num, pm, pval


def retrieval_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    """Retrieval per prefix (the records' ``retrieval`` block) and adaptive routing (pareto)."""
    sec = Section("Retrieval and adaptive routing")
    nb, bd = full_j(df), int(df["block_dim"].iloc[0])
    sec.text += [
        f"Queries: the scored test rows; corpus: the training split; a hit shares the query's class at "
        f"the level. R@k = fraction of queries with a hit in the top k; mAP@10 over the top 10. "
        f"Ramp = fine-level R@1 at {nb * bd} dims minus at {bd} dims.",
        "",
    ]
    facts: dict = {"retrieval": {}, "pareto": {}}
    t, ramp_panels = _retrieval_table(df, nb, bd, facts["retrieval"])
    sec.add_table(t)
    sec.add_figure(
        figures.line_panels(ramp_panels, fig_dir, "retrieval_ramp"),
        "Fine-level Recall@1 per prefix length (mean over seeds)",
        root,
    )
    _routing(df, nb, bd, sec, facts["pareto"], fig_dir, root)
    sec.facts = facts
    return sec


def _retrieval_table(df: pd.DataFrame, nb: int, bd: int, facts: dict) -> tuple[Table, list[dict]]:
    """Per dataset and method (and the untrained encoder): R@1 / R@10 / mAP@10 at the shortest and full
    prefix, the fine-level ramp (into ``facts``), and the ramp figure's panels."""
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
    ramp_panels = []
    for d, g in df.groupby("dataset", sort=False):
        series = []
        methods = ordered(g["method"].unique())
        for m in [*methods, "untrained"]:
            gm = g[g["method"] == m] if m != "untrained" else g[g["method"] == methods[0]]
            pre = "base_" if m == "untrained" else ""
            cols = {
                f"{metric} L{lv}@j{j}": col_mean(gm, f"{pre}{metric} L{lv}@j{j}")
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
            facts.setdefault(d, {})[m] = {
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
    return t, ramp_panels


def _routing(df: pd.DataFrame, nb: int, bd: int, sec: Section, facts: dict, fig_dir: Path, root: Path) -> None:
    """Adaptive routing vs MRL at full length per dataset (the ``pareto`` table, figure and ``facts``)."""
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
                col_mean(ga, "L0@j1"),
                col_mean(ga, f"L1@j{nb}"),
                col_mean(mrl, f"L0@j{nb}"),
                col_mean(mrl, f"L1@j{nb}"),
                bd,
                nb,
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
            facts.setdefault(d, {})[m] = {
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


def dual_encoder_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("One aligned model vs a dual encoder")
    nb, bd = full_j(df), int(df["block_dim"].iloc[0])
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
                "short": col_mean(v[aligned], "L0@j1"),
                "full": col_mean(v[aligned], f"L1@j{nb}"),
                "coarse_only": col_mean(v[coarse], f"L0@j{nb}"),
                "fine_only": col_mean(v[fine], f"L1@j{nb}"),
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
    sec.add_table(_ratio_table(facts))
    sec.add_figure(
        figures.line_panels(panels, fig_dir, "latency"),
        "Batch-1 p50 query latency per prefix length (HNSW: the fastest efSearch reaching the recall target, "
        "or the highest-recall one where none does; recall per point in the table)",
        root,
    )
    sec.facts = facts
    return sec


def _ratio_table(facts: dict) -> Table:
    """Per corpus: the longest / shortest prefix latency ratio at matched recall, flat and HNSW."""
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
    return tr


def attach_latency(df: pd.DataFrame, results: str | Path) -> pd.DataFrame:
    """Put ``latency.json`` (a full run beats a quick one) on ``df.attrs["latency"]`` for :func:`latency_section`."""
    df.attrs["latency"] = load_measurements(results, LATENCY_NAME, LATENCY_RESULT_FILE)
    return df
