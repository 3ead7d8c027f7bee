"""The section "Scale": zoom-index cost curves to a million items (``bench/scale.py`` ->
``<results>/scale/index_cost.json``) and the training cost of ``fractal`` as rows and classes grow
(``bench/train_scale.py`` -> ``<results>/scale/train_cost.json``), with the ``search`` experiment's
real-text point as the anchor. The section is there when either file is.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..analysis import SEARCH_NAME, SEARCH_RESULT_FILE
from . import figures
from .frame import load_measurements
from .section import Section
from .tables import Table, num

SCALE_DIR = "scale"
INDEX_FILE = "index_cost.json"
TRAIN_FILE = "train_cost.json"
DEFAULT = ("faiss", "flat", "shared", "none")  # what `fractal index build` builds without options


def _read(results: Path, name: str) -> dict | None:
    path = results / SCALE_DIR / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def config_label(p: dict) -> str:
    """``faiss flat shared``, ``faiss hnsw shared int8``, ``faiss sign bits``, ``qdrant flat`` ..."""
    if p["backend"] == "faiss-binary":
        return "faiss binary (sign bits)"
    if p["backend"] == "qdrant":
        return f"qdrant embedded {p['kind']}"
    return f"faiss {p['kind']} {p['layout']}" + (f" {p['quantize']}" if p["quantize"] != "none" else "")


MODE_ORDER = ("zoom@64", "zoom@128", "zoom@192", "zoom@256", "funnel@256", "routed@256")
NO_ITEM_TABLE = ("faiss-binary", "qdrant")  # no index.json item columns (bits only; items in Qdrant's payloads)


def scale_section(results: Path, fig_dir: Path, root: Path) -> Section | None:
    index, train = _read(results, INDEX_FILE), _read(results, TRAIN_FILE)
    if index is None and train is None:
        return None
    sec = Section("Scale: cost curves to a million items")
    lines: dict = {}
    tradeoff: dict = {}
    anchors: dict = {}
    if index is not None:
        sec.text += _index_intro(index)
        cost, lat, lines, tradeoff = _index_tables(index)
        sec.add_table(cost)
        sec.add_table(lat)
        sec.facts = _facts(index["points"])
        sec.text += _findings(sec.facts)
        anchors = _anchors(results, sec)
    if train is not None:
        sec.text += _train_text(train)
        sec.add_table(_train_table(train))
    if index is not None and train is not None:
        curves = {
            key: tuple(zip(*[(p[x], p["seconds_per_epoch"], p["peak_rss_mb"]) for p in pts], strict=True))
            for key, x, pts in (
                ("rows", "rows", train["rows_curve"]),
                ("classes", "fine_classes", train["classes_curve"]),
            )
        }
        sec.add_figure(
            figures.scale_curves(lines, anchors, tradeoff, curves, fig_dir, "scale"),
            "Cost curves (items: real passages, then seeded perturbations of them past 104,129; stars: the search "
            "experiment's real-text points). Top: latency at zoom 256, build seconds, peak memory; bottom: vector "
            "bytes per item against recall@10 at zoom 256 (each index at its largest size), and fractal training "
            "cost as rows and fine classes grow",
            root,
        )
    return sec


def _index_tables(index: dict) -> tuple[Table, Table, dict, dict]:
    """The cost and latency tables, the figure's lines (per configuration) and its size / recall points."""
    points = index["points"]
    cost = Table(
        "scale_index_cost",
        "Index build and storage per item count (vector bytes: the layout's files, for Qdrant its whole storage "
        "folder; item bytes: index.json, with placeholder texts)",
        ["items", "index", "build s", "peak MB", "vector B/item", "item B/item"],
    )
    present = {m for p in points for m in p["modes"]}
    modes = [m for m in MODE_ORDER if m in present] + sorted(present - set(MODE_ORDER))
    lat = Table(
        "scale_index_latency",
        f"Single-query latency (ms, median / p99, one thread) and recall@{index['k']} against exact search at the "
        "same zoom (funnel, routed: at 256)",
        ["items", "index", *modes],
    )
    lines: dict = {}
    tradeoff: dict = {}
    for p in points:
        label = config_label(p)
        item_bytes = "-" if p["backend"] in NO_ITEM_TABLE else num(p["item_bytes"], 0)
        cost.add(
            f"{p['n']:,}", label, num(p["build_s"], 1), num(p["peak_rss_mb"], 0), num(p["vector_bytes"], 0), item_bytes
        )
        lat.add(f"{p['n']:,}", label, *[_mode_cell(p["modes"].get(m)) for m in modes])
        line = lines.setdefault(label, {"n": [], "p50_ms": [], "build_s": [], "peak_mb": []})
        full = p["modes"].get("zoom@256", {})
        line["n"].append(p["n"])
        line["p50_ms"].append(full.get("p50_us", float("nan")) / 1000)
        line["build_s"].append(max(p["build_s"], 1e-3))
        line["peak_mb"].append(p["peak_rss_mb"])
        if full.get("recall@10") is not None:
            tradeoff[label] = (full["recall@10"], p["vector_bytes"])  # points come in size order: the largest wins
    return cost, lat, lines, tradeoff


def _mode_cell(m: dict | None) -> str:
    if not m:
        return "-"
    rec = "" if m.get("recall@10") is None else f", r {m['recall@10']:.3f}"
    return f"{m['p50_us'] / 1000:.2f} / {m['p99_us'] / 1000:.2f}{rec}"


def _index_intro(index: dict) -> list[str]:
    it, m = index["items"], index["machine"]
    return [
        "Produced by `python bench/scale.py` (in `make bench`) and drawn from `results/scale/index_cost.json`. "
        f"Items: {it['description']}. Queries: {it['queries']:,} 20 Newsgroups test passages, "
        f"{it['timed_queries']} of them timed one at a time on one thread. Each configuration is built in a "
        "fresh process (its peak resident memory includes the items it reads, Python, torch and FAISS), "
        f"streamed in batches, saved, then searched; HNSW: M {index['hnsw']['m']}, efConstruction "
        f"{index['hnsw']['ef_construction']}, efSearch {index['hnsw']['ef_search']}. Machine: {m.get('cpus')} "
        f"CPUs, {m.get('processor')}, FAISS {m.get('faiss')}. `shared` stores each item once (the default), "
        "`per-prefix` one index per prefix (the earlier layout); the embedded Qdrant and the per-prefix HNSW "
        "stop at 100,000 items (the embedded mode is a single-process brute force: the server is the path "
        "past it).",
        "",
    ]


def _p50(p: dict | None, mode: str) -> float | None:
    m = (p or {}).get("modes", {}).get(mode)
    return None if not m else m["p50_us"] / 1000


def _recall(p: dict | None, mode: str) -> float | None:
    return ((p or {}).get("modes", {}).get(mode) or {}).get("recall@10")


def _facts(points: list[dict]) -> dict:
    """The numbers the section's sentences state, read from the points (at the largest size each has)."""
    top = max(p["n"] for p in points)
    by = {(p["backend"], p["kind"], p["layout"], p["quantize"], p["n"]): p for p in points}
    default, old = by.get((*DEFAULT, top)), by.get(("faiss", "flat", "per-prefix", "none", top))
    q8, bits = (
        by.get(("faiss", "flat", "shared", "int8", top)),
        by.get(("faiss-binary", "flat", "sign bits", "binary", top)),
    )
    both_hnsw = max((p["n"] for p in points if (p["kind"], p["layout"]) == ("hnsw", "per-prefix")), default=None)
    facts: dict = {"max_items": top}
    if default:
        facts |= {
            "default_bytes_per_item": default["vector_bytes"],
            "default_peak_mb": default["peak_rss_mb"],
            "default_build_s": default["build_s"],
            "default_p50_ms": {m: _p50(default, m) for m in default["modes"]},
            "funnel_recall": _recall(default, "funnel@256"),
            "routed_recall": _recall(default, "routed@256"),
        }
    if old and default:
        facts |= {
            "per_prefix_over_shared_bytes": old["vector_bytes"] / default["vector_bytes"],
            "per_prefix_peak_mb": old["peak_rss_mb"],
            "per_prefix_p50_ms": {m: _p50(old, m) for m in old["modes"]},
        }
    if both_hnsw:
        hnsw = [by.get(("faiss", "hnsw", layout, "none", both_hnsw)) for layout in ("shared", "per-prefix")]
        facts["hnsw_middle"] = {
            "items": both_hnsw,
            "shared": _p50(hnsw[0], "zoom@128"),
            "per_prefix": _p50(hnsw[1], "zoom@128"),
        }
    if q8:
        facts |= {
            "int8_bytes_per_item": q8["vector_bytes"],
            "int8_recall": {m: _recall(q8, m) for m in q8["modes"]},
            "int8_p50_ms": {m: _p50(q8, m) for m in q8["modes"]},
        }
    if bits:
        facts["binary_recall_zoom256"] = _recall(bits, "zoom@256")
    return facts


def _findings(f: dict) -> list[str]:
    """What the measurements say, as sentences built from :func:`_facts`."""
    if "default_bytes_per_item" not in f:
        return []
    lat = f["default_p50_ms"]
    out = [
        f"At {f['max_items']:,} items the default index (flat, shared) stores {f['default_bytes_per_item']:.0f} "
        f"bytes of vectors per item; building it (streamed), saving it and searching it peaked at "
        f"{f['default_peak_mb']:,.0f} MB resident (the items' vectors it reads included), the build taking "
        f"{f['default_build_s']:.1f} s."
    ]
    if "per_prefix_over_shared_bytes" in f:
        old = f["per_prefix_p50_ms"]
        out.append(
            f"The per-prefix layout stores {f['per_prefix_over_shared_bytes']:.2f}x the bytes and peaked at "
            f"{f['per_prefix_peak_mb']:,.0f} MB. What the shared layout pays: a middle zoom scans the rows of the "
            f"one matrix, which costs about what the full zoom costs ({lat['zoom@128']:.1f} ms at 128 dims, "
            f"{lat['zoom@256']:.1f} ms at 256) where the per-prefix layout reads a contiguous 128-d copy "
            f"({old['zoom@128']:.1f} ms); a routed search scans its classes' rows ({lat['routed@256']:.1f} ms) where "
            f"the per-prefix layout builds a FAISS index per class in memory ({old['routed@256']:.1f} ms)."
        )
    if "hnsw_middle" in f:
        h = f["hnsw_middle"]
        out.append(
            f"On an HNSW index the shared layout searches the middle zooms exactly ({h['shared']:.2f} ms at 128 dims, "
            f"{h['items']:,} items) where per-prefix graphs answer in {h['per_prefix']:.2f} ms."
        )
    if "int8_bytes_per_item" in f:
        r = f["int8_recall"]
        out.append(
            f"int8 stores {f['int8_bytes_per_item']:.0f} bytes per item at recall@10 {r['zoom@256']:.3f} at zoom "
            f"256 and {r['zoom@64']:.3f} at 64: at the coarse zoom the items of one class have nearly equal first "
            "blocks, so the top 10 is a choice among near-ties that any rounding reorders (the coarse precision, "
            "not shown, is what matters there). Its middle zooms decode every row they scan "
            f"({f['int8_p50_ms']['zoom@128']:.1f} ms at 128 dims against {lat['zoom@128']:.1f} ms in float32)."
        )
    if "binary_recall_zoom256" in f:
        out.append(
            f"Sign bits (40 bytes per item) reach recall@10 {f['binary_recall_zoom256']:.3f} at zoom 256: too low to "
            "offer as an index option (they would need a float re-rank, that is the float vectors stored too)."
        )
    if f.get("funnel_recall") is not None:
        out.append(
            f"The funnel's recall@10 against exact full-vector search ({f['funnel_recall']:.3f} with 100 candidates) "
            "is the steerable head's known trait: its 64-d first pass ranks by coarse class, not by fine neighbour "
            '(section "Search modes at scale").'
        )
    return [" ".join(out), ""]


def _anchors(results: Path, sec: Section) -> dict:
    """The ``search`` experiment's real-text points (fractal, zoom 256, flat and HNSW), as figure stars."""
    data = load_measurements(results, SEARCH_NAME, SEARCH_RESULT_FILE)
    if not data:
        return {}
    real = [
        r
        for r in data["results"]
        if (r["corpus"], r["method"], r["mode"], r["zoom"]) == ("newsgroups20-passages", "fractal", "zoom", 256)
    ]
    if real:
        points = ", ".join(f"{r['kind']} {r['b1_p50_us'] / 1000:.2f} ms (recall@10 {r['recall@10']:.3f})" for r in real)
        sec.text += [
            f"The anchor: the `search` experiment's real-text point at zoom 256, {real[0]['n']:,} passages: {points}, "
            "measured by that experiment's own harness on the per-prefix layout it was run with.",
            "",
        ]
    return {f"real text, {r['kind']} (search experiment)": (r["n"], r["b1_p50_us"] / 1000) for r in real}


def _train_text(train: dict) -> list[str]:
    return [
        "Training cost (`python bench/train_scale.py`, `results/scale/train_cost.json`): "
        f"{train['measured']}. Vectors: {train['vectors']}. Rows curve labels: {train['rows_labels']}. "
        f"Classes curve labels: {train['classes_labels']}.",
        "",
    ]


def _train_table(train: dict) -> Table:
    t = Table(
        "scale_train_cost",
        "fractal training cost (encoding excluded): seconds per epoch and peak resident memory",
        ["curve", "rows", "fine classes", "coarse classes", "s / epoch", "peak MB"],
    )
    for key in ("rows", "classes"):
        for p in train[f"{key}_curve"]:
            classes = (str(p["fine_classes"]), str(p["coarse_classes"]))
            t.add(key, f"{p['rows']:,}", *classes, num(p["seconds_per_epoch"], 2), num(p["peak_rss_mb"], 0))
    return t
