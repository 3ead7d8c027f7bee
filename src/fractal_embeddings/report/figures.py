"""Report figures (matplotlib, Agg): each function takes report data and writes ``<stem>.png`` and
``<stem>.pdf`` into a figures directory, returning the PNG path."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLORS = {
    "fractal": "#1b9e77",
    "v5-paper": "#d95f02",
    "mrl": "#7570b3",
    "fractal-mrl": "#e7298a",
    "inverted": "#66a61e",
    "no-prefix": "#e6ab02",
    "uhmt": "#a6761d",
    "untrained": "#999999",
    "heal": "#1f78b4",
    "csr": "#b15928",
    "smec": "#6a3d9a",
}


def _plt() -> ModuleType:  # matplotlib.pyplot on the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / f"{stem}.png", dpi=130, bbox_inches="tight")
    fig.savefig(out_dir / f"{stem}.pdf", bbox_inches="tight", metadata={"CreationDate": None})  # same bytes each run
    _plt().close(fig)
    return out_dir / f"{stem}.png"


def color(name: str, i: int = 0) -> str:
    return COLORS.get(name, f"C{i % 10}")


def accuracy_vs_prefix(
    curves: dict, out_dir: Path, stem: str = "accuracy_vs_prefix", title: str = "k-NN accuracy per prefix"
) -> Path:
    """``curves[dataset][level_label][method] = (dims, mean, sd)``: one panel per dataset and level."""
    plt = _plt()
    datasets = list(curves)
    n_lv = max(len(v) for v in curves.values())
    fig, axes = plt.subplots(len(datasets), n_lv, figsize=(4.2 * n_lv, 2.8 * len(datasets)), squeeze=False)
    for r, d in enumerate(datasets):
        for c, (lv, methods) in enumerate(curves[d].items()):
            ax = axes[r][c]
            for i, (m, (dims, mean, sd)) in enumerate(methods.items()):
                style = "--" if m == "untrained" else "-"
                ax.plot(dims, mean, style, marker="o", ms=3.5, color=color(m, i), label=m)
                ax.fill_between(dims, np.subtract(mean, sd), np.add(mean, sd), color=color(m, i), alpha=0.15)
            ax.set_title(f"{d}: {lv}", fontsize=10)
            ax.set_xticks(dims)
            ax.set_xlabel("prefix dims")
            ax.set_ylabel("k-NN accuracy")
            ax.grid(alpha=0.3)
        for c in range(len(curves[d]), n_lv):
            axes[r][c].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.0 + 0.02 / len(datasets)))
    fig.suptitle(title, y=1.0 + 0.06 / len(datasets))
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def forest(families: dict, out_dir: Path, stem: str = "forest") -> Path:
    """``families[label] = {"studies": [(dataset, d, var)], "pooled": random_effects(...)}``."""
    plt = _plt()
    fig, axes = plt.subplots(
        1,
        len(families),
        figsize=(5.2 * len(families), 0.5 * max(len(f["studies"]) for f in families.values()) + 1.8),
        squeeze=False,
    )
    for ax, (label, fam) in zip(axes[0], families.items(), strict=True):
        studies = fam["studies"]
        ys = np.arange(len(studies), 0, -1)
        for y, (_name, d, var) in zip(ys, studies, strict=True):
            half = 1.96 * np.sqrt(var)
            ax.errorbar(d, y, xerr=half, fmt="s", color="black", ms=5, capsize=3)
        pooled = fam["pooled"]
        lo, hi = pooled["ci"]
        ax.fill([lo, pooled["pooled"], hi, pooled["pooled"]], [0, 0.25, 0, -0.25], color="#1b9e77")
        if np.all(np.isfinite(pooled["pi"])):
            ax.hlines(0, *pooled["pi"], color="#1b9e77", lw=1, ls=":")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks([*ys, 0])
        ax.set_yticklabels([s[0] for s in studies] + ["pooled (DL)"])
        ax.set_xlabel("paired Cohen's d (S, aligned - MRL)")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def grouped_bars(groups: dict, out_dir: Path, stem: str, ylabel: str = "steerability S", title: str = "") -> Path:
    """``groups[group][bar] = values over seeds``: bars of means with SD error bars."""
    plt = _plt()
    names = list(dict.fromkeys(b for g in groups.values() for b in g))
    longest = max(len(line) for g in groups for line in str(g).splitlines())
    per_group = max(1.1 * max(1, len(names)) / 3, 0.095 * longest)
    fig, ax = plt.subplots(figsize=(1.2 + per_group * len(groups), 3.4))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        xs, ms, sds = [], [], []
        for gi, g in enumerate(groups):
            vals = groups[g].get(n)
            if vals is None or len(vals) == 0:
                continue
            xs.append(gi + (i - (len(names) - 1) / 2) * width)
            ms.append(np.mean(vals))
            sds.append(np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
        ax.bar(xs, ms, width * 0.95, yerr=sds, capsize=2, color=color(n, i), label=n)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def scatter_fit(panels: list[dict], out_dir: Path, stem: str, ylabel: str = "steerability S") -> Path:
    """``panels[i] = {"x", "y", "labels", "xlabel", "title", "fit": "linear"|"quadratic"|None}``."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        x, y = np.asarray(p["x"], float), np.asarray(p["y"], float)
        for s, (xx, yy, lab) in enumerate(zip(x, y, p.get("labels") or [""] * len(x), strict=True)):
            if p.get("legend"):  # one colour and legend entry per point (close points stay readable)
                ax.scatter(xx, yy, color=color(lab, s), zorder=3, label=lab, s=45)
                continue
            ax.scatter(xx, yy, color=p.get("color", "#1b9e77"), zorder=3)
            if lab:
                ax.annotate(lab, (xx, yy), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if p.get("legend"):
            ax.legend(fontsize=8)
        deg = {"linear": 1, "quadratic": 2}.get(p.get("fit") or "")
        if deg and len(x) > deg:
            grid = np.linspace(x.min(), x.max(), 100)
            ax.plot(grid, np.polyval(np.polyfit(x, y, deg), grid), color="black", lw=1, label=f"{p['fit']} fit")
            ax.legend(fontsize=8)
        if "series" in p:  # extra (x, y, label) lines, e.g. the control
            for i, (sx, sy, lab) in enumerate(p["series"]):
                ax.plot(sx, sy, marker="o", ms=3, color=color(lab, i + 2), label=lab)
            ax.legend(fontsize=8)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel(p.get("ylabel", ylabel))
        ax.set_title(p.get("title", ""), fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def line_panels(panels: list[dict], out_dir: Path, stem: str) -> Path:
    """One panel per dict: ``{"series": [(x, y, label), ...], "xlabel", "ylabel", "title"}``; optional
    ``"points": [(x, y, label)]`` (single markers), ``"logy"``, ``"xticks"``."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.5), squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        for i, (x, y, lab) in enumerate(p.get("series", [])):  # "v5-paper routing" is coloured as v5-paper
            ax.plot(x, y, marker="o", ms=3, color=color(str(lab).split()[0], i), label=lab)
        for i, (x, y, lab) in enumerate(p.get("points", [])):
            ax.scatter([x], [y], marker="*", s=120, color=color(lab, i + 3), label=lab, zorder=3)
        if p.get("logy"):
            ax.set_yscale("log")
        if p.get("xticks"):
            ax.set_xticks(p["xticks"])
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel(p["ylabel"])
        ax.set_title(p.get("title", ""), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def recall_vs_latency(panels: list[dict], out_dir: Path, stem: str = "search_modes") -> Path:
    """One panel per dict ``{"title", "series": [(latency_us, recall, method, mode), ...], "exact": [(x, y,
    method)], "hnsw": [(x, y, method)]}``: each (method, mode) a line over its candidates (colour: method,
    marker: mode), exact full-vector search a star, HNSW on the full vector a cross; log latency axis;
    one legend below the panels."""
    from matplotlib.ticker import NullFormatter

    plt = _plt()
    markers = {
        "zoom@64": "v",
        "funnel": "o",
        "routed": "s",
        "routed top-2": "D",
        "funnel hnsw": "^",
        "routed hnsw": "P",
    }
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.0), squeeze=False)
    handles: dict = {}
    for ax, p in zip(axes[0], panels, strict=True):
        for i, (x, y, method, mode) in enumerate(p["series"]):
            (line,) = ax.plot(
                x,
                y,
                marker=markers.get(mode, "o"),
                ms=4,
                lw=1,
                ls="-" if "hnsw" not in mode else ":",
                color=color(method, i),
            )
            handles.setdefault(f"{method} {mode}", line)
        for key, marker, size in (("exact", "*", 160), ("hnsw", "X", 70)):
            for i, (x, y, method) in enumerate(p.get(key, [])):
                pt = ax.scatter(
                    [x], [y], marker=marker, s=size, color=color(method, i), edgecolor="black", linewidths=0.6, zorder=3
                )
                handles.setdefault(f"{method} {'exact (flat)' if key == 'exact' else 'HNSW'} 256-d", pt)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
        ax.set_xlabel("median latency per query, batch 1 (us)")
        ax.set_ylabel("recall@10 vs exact full-vector search")
        ax.set_title(p.get("title", ""), fontsize=10)
        ax.grid(alpha=0.3)
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5, fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def scale_curves(
    index_lines: dict, anchors: dict, tradeoff: dict, train: dict, out_dir: Path, stem: str = "scale"
) -> Path:
    """Cost curves: ``index_lines[label] = {"n": [...], "p50_ms", "build_s", "peak_mb"}`` (one line per index
    configuration, items on a log axis), ``anchors[label] = (n, p50_ms)`` (real-text points, stars),
    ``tradeoff[label] = (recall, bytes per item)`` (the size / recall trade-off at the largest size) and
    ``train = {"rows": (rows, s/epoch, peak MB), "classes": (classes, s/epoch, peak MB)}`` (``fractal train``)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    panels = [
        ("p50_ms", "median single-query latency, zoom 256 (ms)"),
        ("build_s", "build seconds"),
        ("peak_mb", "peak resident memory (MB)"),
    ]
    colours = {name: f"C{i % 10}" for i, name in enumerate(index_lines)}
    for ax, (key, label) in zip(axes.flat[:3], panels, strict=True):
        for name, line in index_lines.items():
            ax.plot(line["n"], line[key], marker="o", ms=3.5, color=colours[name], label=name)
        if key == "p50_ms":
            for j, (name, (n, ms)) in enumerate(anchors.items()):
                ax.plot([n], [ms], "*", ms=11, color=("black", "dimgray")[j % 2], label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax = axes.flat[3]
    for name, (recall, size) in tradeoff.items():
        ax.plot([recall], [size], "o", ms=6, color=colours.get(name, "C9"))
        ax.annotate(name, (recall, size), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 at zoom 256 (largest size)")
    ax.set_ylabel("vector bytes per item on disk")
    ax.grid(alpha=0.3, which="both")
    for ax, (key, xlabel) in zip(axes.flat[4:], (("rows", "training rows"), ("classes", "fine classes")), strict=True):
        x, secs, peak = train[key]
        ax.plot(x, secs, marker="o", ms=3.5, color="C0", label="seconds per epoch")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per epoch (fractal train)")
        ax.grid(alpha=0.3, which="both")
        twin = ax.twinx()
        twin.plot(x, peak, marker="s", ms=3.5, ls="--", color="C3", label="peak MB")
        twin.set_ylabel("peak resident memory (MB)", color="C3")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 1.06), fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, stem)
