"""``docs/objective-study.md`` from the objective study's run records (and nothing else).

Reads ``<results>/<dataset>/<variant>/seed<N>/record.json`` (tagged ``objective-study``) and the
protocol files, applies the selection rule stated in
:mod:`fractal_embeddings.experiments.objective_study`, and writes the markdown and a figure.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FractalError
from ..experiments import objective_study as study

if TYPE_CHECKING:
    from ..records import RunRecord

TIE = 0.005  # mean-S differences below this count as ties (then the cheaper variant wins)
TAX_PP = 1.0  # allowed full-length fine-accuracy loss vs the matched MRL control, in points


def load_records(results: str | Path) -> list[RunRecord]:
    from ..records import load_record

    out = []
    for path in sorted(Path(results).glob("*/*/seed*/record.json")):
        rec = load_record(path)
        tags = rec.tags or {}
        if "objective-study" in (tags.get("experiment"), tags.get("study")):  # "study": records of the first sweeps
            out.append(rec)
    return out


def _fine_full(rec: RunRecord) -> float:
    return float(rec.scores.table(rec.level_names)[-1, -1])


def _coarse_short(rec: RunRecord) -> float:
    return float(rec.scores.table(rec.level_names)[0, 0])


def _base_fine_full(rec: RunRecord) -> float:
    return float(rec.baseline.table(rec.level_names)[-1, -1])


def summarise(records: list[RunRecord]) -> dict:
    """``cells[(dataset, variant)]`` = per-seed values and their mean / SD."""
    cells: dict = defaultdict(lambda: defaultdict(list))
    for r in records:
        assert r.tags is not None  # load_records keeps tagged records only
        c = cells[(r.dataset.name, r.tags["variant"])]
        c["seed"].append(r.seed)
        c["S"].append(r.steerability["S"])
        c["fine_full"].append(_fine_full(r))
        c["coarse_short"].append(_coarse_short(r))
        c["base_fine_full"].append(_base_fine_full(r))
        c["train_s"].append(r.timing["train_s"])
    out = {}
    for key, c in cells.items():
        out[key] = {k: np.asarray(v, dtype=float) for k, v in c.items()}
    return out


def _m(a: Any) -> float:
    return float(np.mean(a))


def _sd(a: Any) -> float:
    return float(np.std(a, ddof=1)) if len(a) > 1 else float("nan")


def select(cells: dict, datasets: Sequence[str]) -> tuple[str | None, list[dict]]:
    """Apply the selection rule; returns the winner and one row per aligned variant."""
    rows: list[dict[str, Any]] = []
    for v in study.VARIANTS:
        if v.control_of is not None or v.datasets is not None:
            continue
        control = f"{v.name} [mrl]"
        have = [d for d in datasets if (d, v.name) in cells and (d, control) in cells]
        row: dict[str, Any] = {"variant": v.name, "datasets": have, "complete": len(have) == len(datasets)}
        if not have:
            rows.append(row)
            continue
        row["mean_S"] = float(np.mean([_m(cells[(d, v.name)]["S"]) for d in have]))
        row["tax_pp"] = {
            d: 100 * (_m(cells[(d, v.name)]["fine_full"]) - _m(cells[(d, control)]["fine_full"])) for d in have
        }
        row["no_tax"] = all(t >= -TAX_PP for t in row["tax_pp"].values())
        row["cost_s"] = float(np.median(np.concatenate([cells[(d, v.name)]["train_s"] for d in have])))
        row["eligible"] = row["complete"] and row["no_tax"]
        rows.append(row)
    eligible = [r for r in rows if r.get("eligible")]
    if not eligible:
        return None, rows
    best = max(r["mean_S"] for r in eligible)
    tied = [r for r in eligible if best - r["mean_S"] < TIE]
    return min(tied, key=lambda r: r["cost_s"])["variant"], rows


def _fmt(a: Any, digits: int = 3) -> str:
    return f"{_m(a):+.{digits}f} ± {_sd(a):.{digits}f}" if len(a) > 1 else f"{_m(a):+.{digits}f}"


def _figure(cells: dict, datasets: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aligned = [v.name for v in study.VARIANTS if v.control_of is None and v.datasets is None]
    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.8 / max(len(datasets), 1)
    for i, d in enumerate(datasets):
        xs = np.arange(len(aligned)) + (i - (len(datasets) - 1) / 2) * width
        ys = [_m(cells[(d, v)]["S"]) if (d, v) in cells else np.nan for v in aligned]
        es = [_sd(cells[(d, v)]["S"]) if (d, v) in cells else 0 for v in aligned]
        cs = [_m(cells[(d, f"{v} [mrl]")]["S"]) if (d, f"{v} [mrl]") in cells else np.nan for v in aligned]
        ax.bar(xs, ys, width, yerr=es, label=d, capsize=2)
        ax.scatter(xs, cs, color="black", marker="_", s=60, zorder=3, label="matched MRL control" if i == 0 else None)
    if ("clinc150", "heal") in cells:
        ax.axhline(_m(cells[("clinc150", "heal")]["S"]), color="gray", ls="--", lw=1, label="heal (CLINC150)")
    ax.set_xticks(np.arange(len(aligned)))
    ax.set_xticklabels(aligned, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("steerability S (mean ± SD over seeds)")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=8, ncol=3)
    ax.set_title("Objective study: S per variant and dataset; black ticks = matched MRL control")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _protocol_table(results: Path) -> list[str]:
    files = sorted((results / "protocol").glob("*/*/seed*.json"))
    if not files:
        return ["(no protocol files yet: run `fractal experiment objective-study`)"]
    cells: dict = defaultdict(lambda: defaultdict(list))
    dataset = None
    for f in files:
        r = json.loads(f.read_text())
        dataset = r["dataset"]
        for name, p in r["protocols"].items():
            cells[r["variant"]][name].append(p["steerability"]["S"])
    names = list(study.PROTOCOLS)
    lines = [
        f"S on {dataset} test rows under three protocols (mean ± SD over seeds; same trained heads):",
        "",
        "| variant | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for v in study.VARIANTS:
        if v.name in cells:
            lines.append(f"| {v.name} | " + " | ".join(_fmt(cells[v.name][n]) for n in names) + " |")
    return lines


def write_report(results: str | Path = "results/objective-study", out: str | Path = "docs/objective-study.md") -> Path:
    """``docs/objective-study.md`` (and its figure) from the study's run records: the rule, the variants,
    the rule's result, the per-dataset table, the protocol and the targets."""
    results, out = Path(results), Path(out)
    records = load_records(results)
    if not records:
        raise FractalError(f"{results}: no objective-study run records; run `fractal experiment objective-study` first")
    cells = summarise(records)
    datasets = [d for d in study.DATASETS if any(k[0] == d for k in cells)]
    winner, rows = select(cells, study.DATASETS)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = out.with_suffix(".png")
    _figure(cells, datasets, fig)
    L = _rule_lines(sorted({r.seed for r in records}), records[0].encoder.name)
    L += _variant_lines()
    L += _result_lines(winner, rows)
    L += _per_dataset_lines(cells, datasets)
    L += ["", f"![S per variant and dataset]({fig.name})", "", "## Evaluation protocol", ""]
    L += _protocol_table(results)
    L += ["", "## Targets", ""]
    L += _targets(cells, winner, datasets)
    out.write_text("\n".join(L) + "\n")
    return out


def _rule_lines(seeds: list[int], enc: str) -> list[str]:
    """The title, the selection rule (fixed before the results) and the setup."""
    return [
        "# Objective study",
        "",
        "Generated by `fractal report objective-study` from the run records of "
        "`fractal experiment objective-study` (do not edit by hand).",
        "",
        "## Selection rule (fixed before the results)",
        "",
        "The winner is the aligned variant with the **highest mean S over the five datasets**, subject to its "
        f"**full-length fine-level k-NN accuracy being at most {TAX_PP:g} pp below its matched MRL control on every "
        "dataset** (means over seeds; being above the control is no tax). Mean-S differences below "
        f"{TIE} count as ties, and a tie goes to the **cheaper** variant (median training seconds). A variant "
        "must have run on every dataset. The winner becomes the default method `fractal`; `v5-paper` stays "
        "available unchanged.",
        "",
        f"Setup: encoder {enc} (frozen, cached vectors); seeds {', '.join(map(str, seeds))}; "
        "leave-one-out 5-NN on a stratified sample of up to 2,000 test rows (all rows when fewer), the same rows "
        "for every variant and seed. S = (L0@64 - L0@256) + (L1@256 - L1@64). "
        "Each aligned variant is trained next to its matched MRL control: the same objective, head, trainer "
        "and data, with the finest level at every prefix.",
        "",
    ]


def _variant_lines() -> list[str]:
    """The table of the aligned variants: method, options, trainer and what each tests."""
    L = [
        "## Variants",
        "",
        "| variant | method | options | trainer | what it tests |",
        "|---|---|---|---|---|",
    ]
    for v in study.VARIANTS:
        if v.control_of is None:
            opts = ", ".join(f"{k}={val}" for k, val in v.objective_options.items()) or "defaults"
            tr = ", ".join(f"{k}={val}" for k, val in v.train_options.items()) or "method defaults"
            L.append(f"| {v.name} | `{v.method}` | {opts} | {tr} | {v.note} |")
    return L


def _result_lines(winner: str | None, rows: list[dict]) -> list[str]:
    """The rule's result: the winner (or why there is none) and every variant's figures."""
    L = ["", "## Result of the rule", ""]
    if winner:
        L.append(f"**Winner: `{winner}`.**")
    else:
        L.append("**No variant is eligible yet** (incomplete grid or an accuracy tax everywhere).")
    L += [
        "",
        "| variant | mean S (5 datasets) | fine-accuracy change vs control, pp (per dataset) | no tax | "
        "median train s | eligible |",
        "|---|---:|---|---|---:|---|",
    ]
    for r in rows:
        if "mean_S" not in r:
            L.append(f"| {r['variant']} | - | not run | | | no |")
            continue
        tax = ", ".join(f"{d} {t:+.1f}" for d, t in r["tax_pp"].items())
        L.append(
            f"| {r['variant']} | {r['mean_S']:+.4f} | {tax} | {'yes' if r['no_tax'] else 'no'} | "
            f"{r['cost_s']:.1f} | {'yes' if r['eligible'] else 'no' + ('' if r['complete'] else ' (incomplete)')} |"
        )
    return L


def _per_dataset_lines(cells: dict, datasets: Sequence[str]) -> list[str]:
    """S and accuracies per dataset and variant next to its matched MRL control (mean ± SD over seeds)."""
    L = [
        "",
        "## Per dataset (mean ± SD over seeds)",
        "",
        "S and full-length fine accuracy for each variant next to its matched MRL control; `n` = seeds run.",
        "",
        "| dataset | variant | n | S | S of MRL control | fine acc @full | control's | coarse acc @64 | train s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in datasets:
        for v in study.VARIANTS:
            if v.control_of is not None or (d, v.name) not in cells:
                continue
            c, k = cells[(d, v.name)], cells.get((d, f"{v.name} [mrl]"))
            k_fine = f"{_m(k['fine_full']):.3f}" if k else "-"
            L.append(
                f"| {d} | {v.name} | {len(c['S'])} | {_fmt(c['S'])} | {_fmt(k['S']) if k else '-'} | "
                f"{_m(c['fine_full']):.3f} | {k_fine} | "
                f"{_m(c['coarse_short']):.3f} | {np.median(c['train_s']):.1f} |"
            )
        base = next((cells[k]["base_fine_full"] for k in cells if k[0] == d), None)
        if base is not None:
            L.append(f"| {d} | *untrained encoder, first 256 dims* | | | | {_m(base):.3f} | | | |")
    return L


def _targets(cells: dict, winner: str | None, datasets: Sequence[str]) -> list[str]:
    if winner is None:
        return ["No winner yet, so the targets are not evaluated."]
    c = cells.get(("clinc150", winner))
    k = cells.get(("clinc150", f"{winner} [mrl]"))
    heal = cells.get(("clinc150", "heal"))
    v5: dict[str, Any] = {d: cells.get((d, "v5-paper")) for d in datasets}
    lines = ["| target | measured | met |", "|---|---|---|"]

    def row(name: str, measured: str, ok: bool) -> None:
        lines.append(f"| {name} | {measured} | {'yes' if ok else 'no'} |")

    if c is not None:
        row("mean S(CLINC150) >= 0.15", _fmt(c["S"]), _m(c["S"]) >= 0.15)
    if k is not None:
        row("its matched MRL control: abs(S) <= 0.02 (CLINC150)", _fmt(k["S"]), abs(_m(k["S"])) <= 0.02)
    if c is not None and heal is not None:
        row(
            "S(CLINC150) >= heal, same conditions",
            f"{_m(c['S']):+.3f} vs heal {_fmt(heal['S'])}",
            _m(c["S"]) >= _m(heal["S"]),
        )
    if c is not None:
        row("S(CLINC150) >= 0.28 (the seed's HEAL figure)", f"{_m(c['S']):+.3f}", _m(c["S"]) >= 0.28)
    beats = {
        d: _m(cells[(d, winner)]["S"]) > _m(cells[(d, f"{winner} [mrl]")]["S"])
        for d in datasets
        if (d, winner) in cells and (d, f"{winner} [mrl]") in cells
    }
    row(
        "S > its MRL control on all five datasets",
        ", ".join(f"{d} {'>' if b else '<='}" for d, b in beats.items()),
        len(beats) == 5 and all(beats.values()),
    )
    ratios = {
        d: np.median(cells[(d, winner)]["train_s"]) / np.median(v5[d]["train_s"])
        for d in datasets
        if v5.get(d) is not None and (d, winner) in cells
    }
    if ratios:
        row(
            "training cost <= 3x v5-paper's (median train s ratio)",
            ", ".join(f"{d} {r:.1f}x" for d, r in ratios.items()),
            all(r <= 3 for r in ratios.values()),
        )
    stretch = {
        d: _m(cells[(d, winner)]["fine_full"]) - _m(cells[(d, winner)]["base_fine_full"])
        for d in datasets
        if (d, winner) in cells
    }
    row(
        "stretch: full-length fine acc >= the untrained encoder's (its first 256 of 384 dims)",
        ", ".join(f"{d} {100 * s:+.1f} pp" for d, s in stretch.items()),
        all(s >= 0 for s in stretch.values()),
    )
    return lines
