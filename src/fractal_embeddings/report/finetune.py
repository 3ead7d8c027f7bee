"""The fine-tuning sections: the matched comparison of frozen and fine-tuned encoders (``finetune``) and
the choice of ``fractal finetune``'s default recipe (``finetune-recipe``, by the rule of
docs/finetune-recipe.md, applied here to the records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..experiments.recipe_selection import CANDIDATES
from . import figures
from .section import Section, full_j, ordered
from .tables import Table, num, pm, pval

ARMS = ("frozen", "frozen, joint schedule", "joint", "two-stage", "recipe")
# each fine-tuned arm and the frozen arm trained with the same head steps and schedule
MATCHED = (("joint", "frozen, joint schedule"), ("two-stage", "frozen"), ("recipe", "frozen"))
S_MARGIN = 0.02  # the recipe's S may be this much below the matched frozen head's
CANDIDATE_COST = tuple(CANDIDATES)  # the experiment lists them cheapest first: the rule's tie-break order
TIE = 0.005


def _arm(variant: str) -> str:
    return variant.removeprefix("fractal ")


def recipe_arm(df: pd.DataFrame) -> str:
    """The arm that ran ``fractal finetune``'s default recipe: ``recipe`` when the grid has it (a default
    other than the two-stage one), else ``two-stage``."""
    return "recipe" if (df["variant"].map(_arm) == "recipe").any() else "two-stage"


def finetune_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Frozen or fine-tuned encoder (fractal finetune)")
    nb = full_j(df)
    fine, cols = f"L1@j{nb}", ["S", "L0@j1", "L1@j1", f"L1@j{nb}"]
    default = recipe_arm(df)
    sec.text += [
        "`fractal` on the same training rows and the same scored test rows, with the encoder frozen or "
        "fine-tuned. `frozen`: a head on the frozen encoder, `fractal train`'s recipe (10 epochs, batch "
        "128, best epoch by validation k-NN). `frozen, joint schedule`: a frozen-encoder head trained with "
        "the joint stage's steps and schedule. `joint`: encoder and head trained together (sentence-"
        "transformers' trainer, `FractalLoss`), nothing else. `two-stage`: `joint`, then a fresh head "
        "fitted on the frozen fine-tuned encoder with `fractal train`'s recipe. "
        f"`{default}` is `fractal finetune`'s default recipe (docs/finetune-recipe.md). Each fine-tuned "
        "arm is compared with the frozen arm that trains its head the same way: `joint` with "
        "`frozen, joint schedule`, the others with `frozen`. L1@j1 is the fine accuracy left in the "
        "first block (high: the coarse prefix is not coarse).",
        "",
    ]
    df = df.assign(arm=df["variant"].map(_arm))
    arms = ordered(df["arm"].unique(), first=ARMS)
    t = Table(
        "finetune",
        "Frozen vs fine-tuned (mean ± SD over seeds; training seconds: median)",
        ["dataset", "arm", "n", *cols, "train s"],
        align="llrrrrrr",
    )
    tp = Table(
        "finetune_tests",
        "Each fine-tuned arm minus its matched frozen arm, paired by seed",
        ["dataset", "arm - matched frozen", "metric", "n", "mean diff", "t", "p"],
        align="lllrrrr",
    )
    verdict = Table(
        "finetune_verdict",
        f"The default recipe (`{default}`) against the frozen head: S within {S_MARGIN} or above, fine accuracy "
        f"@{nb * 64 if nb else ''} not lower (means over seeds; p: paired t-test of the fine accuracy)",
        ["dataset", "n", "S recipe - frozen", "fine recipe - frozen", "p (fine)", "S kept", "fine not lower"],
        align="lrrrrll",
    )
    facts: dict = {}
    groups: dict = {}
    for d, g in df.groupby("dataset", sort=False):
        groups[d] = {}
        for a in arms:
            ga = g[g["arm"] == a]
            if not len(ga):
                continue
            t.add(
                d,
                a,
                len(ga),
                pm(ga["S"]),
                *(pm(ga[c], signed=False) for c in cols[1:]),
                f"{ga['train_s'].median():.1f}",
            )
            groups[d][a] = ga["S"].to_numpy()
            facts.setdefault(d, {})[a] = {c: float(ga[c].mean()) for c in cols}
        for tuned, frozen in MATCHED:
            pair = _paired(g, tuned, frozen)
            if pair is None:
                continue
            a, b = pair
            for c in ("S", fine, "L1@j1"):
                r = stats.paired_test(a[c].to_numpy(), b[c].to_numpy())
                tp.add(d, f"{tuned} - {frozen}", c, r["n"], num(r["mean_diff"], 3, True), num(r["t"], 2), pval(r["p"]))
                facts[d].setdefault("tests", {}).setdefault(tuned, {})[c] = r
        pair = _paired(g, default, "frozen")
        if pair is not None:
            a, b = pair
            dS, dF = float((a["S"] - b["S"]).mean()), float((a[fine] - b[fine]).mean())
            p = stats.paired_test(a[fine].to_numpy(), b[fine].to_numpy())["p"]
            verdict.add(
                d, len(a), num(dS, 3, True), num(dF, 3, True), pval(p),
                "yes" if dS >= -S_MARGIN else "no", "yes" if dF >= 0 else "no",
            )  # fmt: skip
            facts[d]["verdict"] = {"dS": dS, "dFine": dF, "p_fine": p}
    sec.add_table(t)
    if tp.rows:
        sec.add_table(tp)
    sec.text += _moved(facts)
    if verdict.rows:
        sec.add_table(verdict)
        sec.text += _findings(facts, default)
    sec.add_figure(
        figures.grouped_bars(groups, fig_dir, "finetune", title="frozen vs fine-tuned encoder (matched)"),
        "Steerability per arm: heads on the frozen encoder vs the fine-tuned arms (mean ± SD over seeds)",
        root,
    )
    sec.facts = facts
    return sec


def _paired(g: pd.DataFrame, a: str, b: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Arms ``a`` and ``b`` of one dataset on their common seeds (None: fewer than 2)."""
    x, y = (g[g["arm"] == v].set_index("seed") for v in (a, b))
    common = x.index.intersection(y.index)
    if len(common) < 2:
        return None
    return x.loc[common], y.loc[common]


def _findings(facts: dict, default: str) -> list[str]:
    """Sentences built from the verdicts: where the recipe keeps S, where it raises fine accuracy."""
    v = {d: f["verdict"] for d, f in facts.items() if "verdict" in f}
    kept = [d for d, x in v.items() if x["dS"] >= -S_MARGIN]
    lost = [f"{d} ({x['dS']:+.3f})" for d, x in v.items() if x["dS"] < -S_MARGIN]
    gains = [
        f"{d} ({x['dFine']:+.3f}, p = {x['p_fine']:.3g})" for d, x in v.items() if x["dFine"] > 0 and x["p_fine"] < 0.05
    ]
    lower = [f"{d} ({x['dFine']:+.3f})" for d, x in v.items() if x["dFine"] < 0]
    out = [
        f"With the default recipe (`{default}`), S is within {S_MARGIN} of the frozen head or above it on "
        f"{len(kept)} of {len(v)} datasets" + (f"; below it on {', '.join(lost)}." if lost else "."),
        "Fine accuracy at the full vector rises significantly (paired t-test over seeds, p < 0.05) on "
        + (", ".join(gains) if gains else "no dataset")
        + "; it is lower on "
        + (", ".join(lower) if lower else "no dataset")
        + ".",
        "",
    ]
    return out


def _moved(facts: dict) -> list[str]:
    """What changed against the section's earlier, unmatched reading: the gap between ``joint`` and the
    default frozen head, split into the encoder's share (``joint`` - ``frozen, joint schedule``: the same
    head steps) and the head's (``frozen, joint schedule`` - ``frozen``: fewer head steps alone)."""
    parts = []
    for d, f in facts.items():
        if all(a in f for a in ("frozen", "frozen, joint schedule", "joint")):
            s = {a: f[a]["S"] for a in ("frozen", "frozen, joint schedule", "joint")}
            parts.append(
                f"{d}: {s['joint'] - s['frozen']:+.3f} = encoder {s['joint'] - s['frozen, joint schedule']:+.3f} "
                f"+ head steps {s['frozen, joint schedule'] - s['frozen']:+.3f}"
            )
    if not parts:
        return []
    return [
        "**What moved.** An earlier version of this section compared the joint arm with the default "
        "frozen head, which trains its head for more steps, and read the whole S gap as the encoder's "
        'doing ("fine-tuning loses most of the zoom"). Matched, the gap in S (joint - frozen) splits '
        "into the encoder's share (joint - frozen with the joint schedule) and the head's (fewer, shorter "
        "head steps): " + "; ".join(parts) + ".",
        "",
    ]


# ------------------------------------------------------------------- the choice of the recipe
@dataclass
class Choice:
    winner: str | None
    qualified: list[str] = field(default_factory=list)
    why: str = ""


def choose_recipe(scores: dict[str, dict[str, tuple[float, float]]], frozen: dict[str, tuple[float, float]]) -> Choice:
    """docs/finetune-recipe.md's rule: ``scores[candidate][dataset] = (S, fine)`` on validation rows,
    ``frozen[dataset]`` the frozen head's. A candidate qualifies when on every dataset its S is at least
    the frozen S - 0.02 and its fine accuracy at least the frozen one; the qualifier with the highest mean
    fine gain wins (within 0.005: the cheaper); with none qualifying, the smallest worst S shortfall."""
    datasets = sorted(frozen)
    full = {c: s for c, s in scores.items() if all(d in s for d in datasets)}
    if not full or not datasets:
        return Choice(None, why="no candidate has every dataset")
    rank = {c: CANDIDATE_COST.index(c) if c in CANDIDATE_COST else len(CANDIDATE_COST) for c in full}
    ok = [
        c
        for c, s in full.items()
        if all(s[d][0] >= frozen[d][0] - S_MARGIN and s[d][1] >= frozen[d][1] for d in datasets)
    ]
    if ok:
        gain = {c: float(np.mean([full[c][d][1] - frozen[d][1] for d in datasets])) for c in ok}
        best = max(gain.values())
        winner = min((c for c in ok if gain[c] >= best - TIE), key=lambda c: rank[c])
        return Choice(winner, ok, f"qualifies with a mean fine gain of {gain[winner]:+.4f} (best {best:+.4f})")
    short = {c: max(frozen[d][0] - full[c][d][0] for d in datasets) for c in full}
    winner = min(full, key=lambda c: (short[c], rank[c]))
    return Choice(winner, [], f"none qualifies; the smallest worst S shortfall is {short[winner]:.4f}")


def recipe_section(df: pd.DataFrame, fig_dir: Path, root: Path) -> Section:
    sec = Section("Choosing fractal finetune's recipe (validation rows)")
    nb = full_j(df)
    fine = f"L1@j{nb}"
    sec.text += [
        "Candidate recipes for `fractal finetune`, scored on the validation split (the test rows stay "
        "held back), against `fractal train` on the same rows; the rule that picks the default was "
        "written before these runs (docs/finetune-recipe.md) and is applied here to the records.",
        "",
    ]
    t = Table(
        "finetune_recipe",
        "Candidates minus the frozen head on validation rows (mean over seeds)",
        ["dataset", "candidate", "n", "S", "S - frozen", fine, f"{fine} - frozen", "train s"],
        align="llrrrrrr",
    )
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    frozen: dict[str, tuple[float, float]] = {}
    for d, g in df.groupby("dataset", sort=False):
        gf = g[g["variant"] == "frozen"]
        if not len(gf):
            continue
        frozen[d] = (float(gf["S"].mean()), float(gf[fine].mean()))
        for v in ordered(g["variant"].unique(), first=("frozen", *CANDIDATE_COST)):
            gv = g[g["variant"] == v]
            S, F = float(gv["S"].mean()), float(gv[fine].mean())
            if v != "frozen":
                scores.setdefault(v, {})[d] = (S, F)
            t.add(
                d, v, len(gv), num(S, 3, True), num(S - frozen[d][0], 3, True), num(F, 3),
                num(F - frozen[d][1], 3, True), f"{gv['train_s'].median():.1f}",
            )  # fmt: skip
    sec.add_table(t)
    choice = choose_recipe(scores, frozen)
    if choice.winner is not None:
        sec.text += [
            f"By the rule, the default is **{choice.winner}**: {choice.why}. Qualifying candidates: "
            f"{', '.join(choice.qualified) if choice.qualified else 'none'}.",
            "",
        ]
    sec.facts = {"winner": choice.winner, "qualified": choice.qualified, "scores": scores, "frozen": frozen}
    return sec
