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


def scale_section(results: Path, fig_dir: Path, root: Path) -> Section | None:
    index, train = _read(results, INDEX_FILE), _read(results, TRAIN_FILE)
    if index is None and train is None:
        return None
    sec = Section("Scale: cost curves to a million items")
    lines: dict = {}
    anchors: dict = {}
    if index is not None:
        sec.text += _index_intro(index)
        points = index["points"]
        cost = Table(
            "scale_index_cost",
            "Index build and storage per item count (vector bytes: the layout's files; item bytes: index.json, "
            "with placeholder texts)",
            ["items", "index", "build s", "peak MB", "vector B/item", "item B/item"],
        )
        modes = list(dict.fromkeys(m for p in points for m in p["modes"]))
        lat = Table(
            "scale_index_latency",
            f"Single-query latency (ms, median / p99, one thread) and recall@{index['k']} against exact search, "
            "per mode",
            ["items", "index", *modes],
        )
        for p in points:
            label = config_label(p)
            sizes = (num(p["vector_bytes"], 0), num(p["item_bytes"], 0))
            cost.add(f"{p['n']:,}", label, num(p["build_s"], 1), num(p["peak_rss_mb"], 0), *sizes)
            lat.add(f"{p['n']:,}", label, *[_mode_cell(p["modes"].get(m)) for m in modes])
            line = lines.setdefault(label, {"n": [], "p50_ms": [], "build_s": [], "peak_mb": [], "bytes": []})
            full = p["modes"].get("zoom@256", {})
            line["n"].append(p["n"])
            line["p50_ms"].append(full.get("p50_us", float("nan")) / 1000)
            line["build_s"].append(max(p["build_s"], 1e-3))
            line["peak_mb"].append(p["peak_rss_mb"])
            line["bytes"].append(p["vector_bytes"])
        sec.add_table(cost)
        sec.add_table(lat)
        sec.facts = _facts(points)
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
            figures.scale_curves(lines, anchors, curves, fig_dir, "scale"),
            "Cost curves (items: real passages, then seeded perturbations of them past 104,129; stars: the search "
            "experiment's real-text point). Top: latency at zoom 256, build seconds, peak memory; bottom: vector "
            "bytes per item, and fractal training cost as rows and fine classes grow",
            root,
        )
    return sec


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


def _facts(points: list[dict]) -> dict:
    top = max(p["n"] for p in points)
    by = {(p["backend"], p["kind"], p["layout"], p["quantize"], p["n"]): p for p in points}
    facts: dict = {"max_items": top}
    default = by.get((*DEFAULT, top))
    if default:
        facts |= {
            "default_bytes_per_item": default["vector_bytes"],
            "default_peak_mb": default["peak_rss_mb"],
            "default_build_s": default["build_s"],
        }
    old = by.get(("faiss", "flat", "per-prefix", "none", top))
    if old and default:
        facts["per_prefix_over_shared_bytes"] = old["vector_bytes"] / default["vector_bytes"]
    q8 = by.get(("faiss", "flat", "shared", "int8", top))
    if q8:
        facts["int8_bytes_per_item"] = q8["vector_bytes"]
        facts["int8_recall_zoom256"] = q8["modes"].get("zoom@256", {}).get("recall@10")
    return facts


def _findings(f: dict) -> list[str]:
    if "default_bytes_per_item" not in f:
        return []
    out = (
        f"At {f['max_items']:,} items the default flat index stores {f['default_bytes_per_item']:.0f} bytes of "
        f"vectors per item and its build (streamed) peaks at {f['default_peak_mb']:,.0f} MB resident, in "
        f"{f['default_build_s']:.1f} s."
    )
    if "per_prefix_over_shared_bytes" in f:
        out += f" The per-prefix layout stores {f['per_prefix_over_shared_bytes']:.2f}x as many bytes."
    if "int8_bytes_per_item" in f:
        out += (
            f" int8 stores {f['int8_bytes_per_item']:.0f} bytes per item, at recall@10 "
            f"{f['int8_recall_zoom256']} at zoom 256."
        )
    return [out, ""]


def _anchors(results: Path, sec: Section) -> dict:
    """The ``search`` experiment's real-text points (fractal, zoom 256, flat and HNSW), as figure stars."""
    data = load_measurements(results, SEARCH_NAME, SEARCH_RESULT_FILE)
    if not data:
        return {}
    out = {}
    for r in data["results"]:
        if (r["corpus"], r["method"], r["mode"], r["zoom"]) == ("newsgroups20-passages", "fractal", "zoom", 256):
            out[f"real text, {r['kind']} (search experiment)"] = (r["n"], r["b1_p50_us"] / 1000)
    if out:
        points = "; ".join(f"{k}: {ms:.2f} ms at {n:,} items" for k, (n, ms) in out.items())
        sec.text += [
            f"The real-text anchor at zoom 256 ({points}) is measured by that experiment's own harness "
            "(the per-prefix layout it was run with).",
            "",
        ]
    return out


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
