"""The section of the ``search`` experiment (zoom, funnel and routed search at scale), from its
measurements file ``search.json``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis import SEARCH_NAME, SEARCH_RESULT_FILE, TARGET_RECALL, fastest_at_recall
from . import figures
from .frame import load_measurements
from .section import Section, ordered
from .tables import Table, num


def _mode_label(r: dict) -> str:
    if r["mode"] == "zoom":
        return f"zoom@{r['zoom']}"
    top2 = " top-2" if r.get("route_classes") == 2 else ""
    return f"{r['mode']}{top2}"


def search_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    """From ``search.json`` (attached to the frame as ``df.attrs["search"]`` by the report builder)."""
    data = df.attrs.get("search")
    sec = Section("Search modes at scale: zoom, funnel and routed")
    if not data:
        sec.text += ["No `search.json` next to the records: run `fractal experiment search`.", ""]
        return sec
    rows, k, corpora = data["results"], data["k"], data["corpora"]
    sec.text += _intro(data)
    t = _modes_table(k)
    panels = []
    facts: dict = {}
    for corpus in corpora:
        series: list = []
        exact: list = []
        hnsw_full: list = []
        for method in ordered({r["method"] for r in rows if r["corpus"] == corpus}):
            mine = [r for r in rows if r["corpus"] == corpus and r["method"] == method]
            for r in mine:
                t.add(*_mode_row(corpus, method, r))
            facts[f"{corpus}/{method}"] = _method_facts(rows, corpus, method, mine, series, exact, hnsw_full)
        panels.append(
            {
                "title": f"{corpus} ({corpora[corpus]['items']:,} items)",
                "series": series,
                "exact": exact,
                "hnsw": hnsw_full,
            }
        )
    sec.add_table(t)
    sec.add_table(_summary_table(facts, k))
    sentences = _comparison(rows, corpora, facts, k)
    if sentences:
        sec.text += [" ".join(sentences), ""]
    sec.text += _qdrant_text(rows)
    sec.add_figure(
        figures.recall_vs_latency(panels, fig_dir, "search_modes"),
        f"Recall@{k} against exact full-vector search vs median single-query latency, per search mode and method "
        "(lines: candidates; stars: exact flat search at 256 dims; crosses: HNSW at 256 dims; dotted: HNSW index)",
        root,
    )
    sec.facts = facts
    return sec


def _intro(data: dict) -> list[str]:
    """What was measured, on which corpora and machine, and what each mode does."""
    m, k, corpora = data["machine"], data["k"], data["corpora"]
    return [
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


def _modes_table(k: int) -> Table:
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
    return t


def _mode_row(corpus: str, method: str, r: dict) -> list:
    """One configuration's row of the search-modes table."""
    return [
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
    ]


def _method_facts(
    rows: list[dict], corpus: str, method: str, mine: list[dict], series: list, exact: list, hnsw_full: list
) -> dict:
    """One method's FAISS configurations on a corpus: its curves into ``series`` (and its exact / HNSW
    full-vector points into ``exact`` / ``hnsw_full``) for the figure, and its facts."""
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
    flat_exact = next((r for r in faiss_rows if r["mode"] == "zoom" and r["zoom"] == 256 and r["kind"] == "flat"), None)
    routed = [r for r in faiss_rows if r["mode"] == "routed" and r["kind"] == "flat" and r["route_classes"] == 1]
    return {
        "exact_b1_us": flat_exact["b1_p50_us"] if flat_exact else None,
        "exact_fine_p": flat_exact["fine_p@10"] if flat_exact else None,
        "funnel_at_target": fastest_at_recall(rows, corpus, method, "funnel", TARGET_RECALL),
        "routed_at_target": fastest_at_recall(rows, corpus, method, "routed", TARGET_RECALL),
        "routed_best": max(routed, key=lambda r: r["recall@10"]) if routed else None,
        "hnsw_full": next(
            (r for r in faiss_rows if r["mode"] == "zoom" and r["zoom"] == 256 and r["kind"] == "hnsw"), None
        ),
    }


def _at(r: dict | None, exact_us: float | None) -> str:
    if r is None:
        return "not reached"
    speed = f", {exact_us / r['b1_p50_us']:.1f}x faster" if exact_us else ""
    return f"{r['kind']}, {r['candidates']} cand.: {r['b1_p50_us']:.0f} us{speed}"


def _summary_table(facts: dict, k: int) -> Table:
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

    for key, f in facts.items():
        corpus, method = key.split("/", 1)
        best = f["routed_best"]
        ts.add(
            corpus,
            method,
            num(f["exact_b1_us"], 0),
            f"{f['hnsw_full']['b1_p50_us']:.0f} ({f['hnsw_full']['recall@10']:.3f})" if f["hnsw_full"] else "-",
            _at(f["funnel_at_target"], f["exact_b1_us"]),
            _at(f["routed_at_target"], f["exact_b1_us"]),
            num(best["recall@10"], 3) if best else "-",
            num(best["route_error"], 3) if best else "-",
            f"{num(f['exact_fine_p'], 3)} / {num(best['fine_p@10'], 3)}" if best else "-",
        )
    return ts


def _comparison(rows: list[dict], corpora: dict, facts: dict, k: int) -> list[str]:
    """Sentences comparing ``fractal`` with ``mrl`` per corpus: routing errors and funnel recall."""
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
    return sentences


def _qdrant_text(rows: list[dict]) -> list[str]:
    """What the embedded-Qdrant rows are, and how often their hits equal FAISS's."""
    q_rows = [r for r in rows if r["backend"] != "faiss"]
    if not q_rows:
        return []
    return [
        "Rows marked `qdrant-embedded`: the same index in an embedded Qdrant collection (in memory, "
        f"{q_rows[0]['queries']} queries), searched through `QdrantIndex` (funnel = Qdrant's `prefetch`, "
        "routed = a payload filter on the coarse label); their recall is against the same exact FAISS search, and "
        "their hits equal the flat FAISS index's in the same mode (same ids, same order) for "
        + ", ".join(f"{_mode_label(r)} {r['same_ids_as_faiss']:.1%}" for r in q_rows if "same_ids_as_faiss" in r)
        + " of those queries. Their latency is qdrant-client's local mode (numpy brute force in this process), "
        "not a server's.",
        "",
    ]


def attach(df: pd.DataFrame, results: str | Path) -> pd.DataFrame:
    """Put ``search.json`` (a full run beats a quick one) on ``df.attrs["search"]`` for :func:`search_section`."""
    df.attrs["search"] = load_measurements(results, SEARCH_NAME, SEARCH_RESULT_FILE)
    return df
