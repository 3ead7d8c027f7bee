"""The verdict rule of each claim of the seed: a function of the report sections' ``facts`` and the
seed's value that returns ``(ours, verdict, verdict rule)``. :data:`.claims.RULES` maps each claim ID
to its rule; :func:`.claims.claims_table` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import stats
from ..errors import FractalError
from .tables import pval

ALPHA = 0.05
Verdict = tuple[str, str, str]  # (ours, verdict, verdict rule)
Rule = Callable[[dict, str], Verdict]  # (report facts, the seed's value) -> Verdict


def _sd(a: Any) -> float:
    return float(np.std(a, ddof=1)) if len(a) > 1 else float("nan")


def _number(pattern: str, s: str, group: int = 0) -> float:
    """The number ``pattern`` finds in a seed's value (one line naming the value when there is none)."""
    m = re.search(pattern, s)
    if m is None:
        raise FractalError(f"the seed's value {s!r} has no number where its claim's rule reads one; check claims.md")
    return float(m.group(group))


def _first_number(s: str) -> float:
    return _number(r"[-+]?\d*\.\d+|[-+]?\d+", s)


def _S(facts: dict, variant: str, dataset: str) -> Any:
    return facts["main"]["S"].get(variant, {}).get(dataset)


def _pending(exp: str) -> tuple[str, str, str]:
    return "-", "not run yet", f"needs the `{exp}` experiment in this results directory"


def c1(f: dict, seed: str) -> Verdict:
    m = f.get("main")
    if not m:
        return _pending("main")
    ds = [d for d in m["datasets"] if _S(f, "v5-paper", d) is not None and _S(f, "mrl", d) is not None]
    wins = [d for d in ds if np.mean(_S(f, "v5-paper", d)) > np.mean(_S(f, "mrl", d))]
    fr = [d for d in ds if _S(f, "fractal", d) is not None and np.mean(_S(f, "fractal", d)) > np.mean(_S(f, "mrl", d))]
    ours = f"v5-paper > mrl on {len(wins)}/{len(ds)} datasets; fractal > mrl on {len(fr)}/{len(ds)}"
    ok = len(ds) >= 3 and len(wins) == len(ds)
    return ours, "reproduced" if ok else "not reproduced", "mean S of v5-paper above mrl's on every dataset run (>= 3)"


def per_dataset(dataset: str) -> Rule:
    def rule(f: dict, seed: str) -> Verdict:
        m = f.get("main")
        if not m or _S(f, "v5-paper", dataset) is None:
            return _pending("main") if not m else ("-", "not run yet", f"{dataset} not in the main experiment")
        fam = {r["dataset"]: r for r in m["families"].get("v5-paper", {}).get("tests", [])}
        v5, mrl, fr = _S(f, "v5-paper", dataset), _S(f, "mrl", dataset), _S(f, "fractal", dataset)
        ours = f"{np.mean(v5):+.3f} ± {_sd(v5):.3f} vs {np.mean(mrl):+.3f} ± {_sd(mrl):.3f}" + (
            f" (fractal {np.mean(fr):+.3f})" if fr is not None else ""
        )
        t = fam.get(dataset)
        seed_v5 = _first_number(seed)
        sig = t is not None and t["mean_diff"] > 0 and t["p_holm"] < ALPHA
        if t is not None:
            ours += f"; Holm p {pval(t['p_holm'])}"
        ok = sig and np.mean(v5) >= 0.5 * seed_v5
        return (
            ours,
            "reproduced" if ok else "not reproduced",
            (f"v5-paper > mrl (paired t, Holm p < {ALPHA}) and our v5-paper S >= half the seed's ({seed_v5:+.3f})"),
        )

    return rule


def c6(f: dict, seed: str) -> Verdict:
    return "-", "not testable here", "Yahoo Answers, arXiv, DBPedia Classes and WOS are not reachable from this machine"


def c7(f: dict, seed: str) -> Verdict:
    m = f.get("main") or {}
    fam = m.get("families", {}).get("v5-paper", {})
    if not fam.get("meta"):
        return _pending("main")
    p = fam["meta"]["pooled"]
    seed_d = _number(r"\bd\s+([-+]?[\d.]+)", seed, 1)
    ours = (
        f"pooled d {p['pooled']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}], p = {pval(p['p'])}, "
        f"I² = {100 * p['I2']:.0f}% ({p['k']} datasets)"
    )
    fr = m["families"].get("fractal", {}).get("meta")
    if fr:
        ours += f"; fractal d {fr['pooled']['pooled']:.2f} [{fr['pooled']['ci'][0]:.2f}, {fr['pooled']['ci'][1]:.2f}]"
    ok = p["ci"][0] > 0 and p["ci"][0] <= seed_d <= p["ci"][1]
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        (f"v5-paper vs mrl: pooled d's 95% CI excludes 0 and contains the seed's d ({seed_d:.2f})"),
    )


def c8(f: dict, seed: str) -> Verdict:
    fam = (f.get("main") or {}).get("families", {}).get("v5-paper")
    if not fam:
        return _pending("main")
    s = fam["sign"]
    ok = s["n"] >= 3 and s["positive"] == s["n"] and s["p"] < ALPHA
    return (
        f"{s['positive']}/{s['n']}, p = {pval(s['p'])}",
        "reproduced" if ok else "not reproduced",
        (f"v5-paper > mrl on every dataset, one-sided sign test p < {ALPHA}"),
    )


def c9(f: dict, seed: str) -> Verdict:
    sc = (f.get("main") or {}).get("scaling", {}).get("v5-paper")
    if not sc:
        return _pending("main")
    h, pr = sc["H"], sc["product"]
    ours = (
        f"ρ(S, H) {h['spearman']:+.2f}, p {pval(h['spearman_p'])} "
        f"(bootstrap CI [{h['bootstrap']['ci'][0]:+.2f}, {h['bootstrap']['ci'][1]:+.2f}]); "
        f"product: ρ {pr['spearman']:+.2f}, r {pr['pearson']:+.2f} ({h['n']} datasets)"
    )
    seed_rho = _number(r"=\s*([-+]?[\d.]+)", seed, 1)
    ok = (
        h["spearman"] > 0 and h["spearman_p"] < ALPHA and h["bootstrap"]["ci"][0] <= seed_rho <= h["bootstrap"]["ci"][1]
    )
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        (
            f"for v5-paper, ρ(S, H(L1|L0)) > 0 with p < {ALPHA} "
            f"and the seed's ρ ({seed_rho:.2f}) inside our bootstrap CI"
        ),
    )


def ablation(dataset: str) -> Rule:
    def rule(f: dict, seed: str) -> Verdict:
        a = (f.get("ablation") or {}).get("v5-paper", {}).get(dataset)
        if not a:
            return _pending("ablation")
        ours = ", ".join(f"{k} {a[k]:+.3f}" for k in ("v5-paper", "inverted", "no-prefix", "uhmt") if k in a)
        fr = (f.get("ablation") or {}).get("fractal", {}).get(dataset)
        if fr:
            ours += "; fractal family: " + ", ".join(f"{k} {v:+.3f}" for k, v in fr.items())
        ok = (
            a.get("v5-paper", 0) > 0
            and a.get("inverted", 0) < 0
            and a.get("no-prefix", 1) < a["v5-paper"]
            and a.get("uhmt", 1) < a["v5-paper"]
        )
        return (
            ours,
            "reproduced" if ok else "not reproduced",
            ("v5-paper S > 0, inverted S < 0 (sign reversal), no-prefix and uhmt below v5-paper"),
        )

    return rule


def c19(f: dict, seed: str) -> Verdict:
    rob = (f.get("main") or {}).get("robustness", {}).get("v5-paper")
    if not rob:
        return _pending("main")
    w = rob["metrics"]
    ours = ", ".join(f"{m} {w[m]['aligned_wins']}/{w[m]['n']}" for m in w)
    rc = rob["rank_correlation"]
    if rc:
        ours += f"; rank correlations {min(rc.values()):+.2f}..{max(rc.values()):+.2f}"
    ok = (
        all(w[m]["aligned_wins"] == w[m]["n"] for m in ("S", "S_AUC", "S_gap"))
        and rc
        and min(rc[k] for k in rc if "S_mono" not in k) > 0.9
    )
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        ("v5-paper > mrl on every dataset for S, S_AUC and S_gap, and their pairwise rank correlations > 0.90"),
    )


def c24(f: dict, seed: str) -> Verdict:
    m = f.get("main")
    if not m:
        return _pending("main")
    ff = m["fine_full"]
    gaps = {
        d: 100 * (ff["v5-paper"][d] - ff["mrl"][d])
        for d in m["datasets"]
        if d in ff.get("v5-paper", {}) and d in ff.get("mrl", {})
    }
    fr = {d: 100 * (ff["fractal"][d] - ff["mrl"][d]) for d in gaps if d in ff.get("fractal", {})}
    ours = (
        "v5-paper - mrl: "
        + ", ".join(f"{d} {g:+.1f}" for d, g in gaps.items())
        + " pp"
        + ("; fractal - mrl: " + ", ".join(f"{d} {g:+.1f}" for d, g in fr.items()) + " pp" if fr else "")
    )
    ok = bool(gaps) and all(abs(g) <= 1.0 for g in gaps.values())
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        ("full-length finest-level k-NN accuracy of v5-paper within 1 pp of mrl's on every dataset"),
    )


def c12(f: dict, seed: str) -> Verdict:
    sy = f.get("synthetic")
    if not sy or "v5-paper" not in sy.get("fits", {}):
        return _pending("synthetic")
    fit = sy["fits"]["v5-paper"]

    def shape(ft: dict) -> str:
        kind = "peak" if ft["is_peak"] else "minimum (convex)"
        where = f"K0 ≈ {ft['peak_K0']:.1f}" + ("" if ft.get("vertex_inside", True) else " (outside the K0 range run)")
        return f"{kind} at {where}, R² {ft['r2']:.3f}"

    ours = "v5-paper: " + shape(fit)
    if "fractal" in sy["fits"]:
        ours += "; fractal: " + shape(sy["fits"]["fractal"])
    if sy.get("mrl_max_abs") is not None:
        ours += f"; mrl max |S| {sy['mrl_max_abs']:.3f}"
    ok = (
        fit["is_peak"]
        and fit.get("vertex_inside", True)
        and fit["r2"] >= 0.8
        and 8 <= fit["peak_K0"] <= 24
        and (sy.get("mrl_max_abs") or 1) < 0.02
    )
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        ("v5-paper: concave quadratic in H(L0) with R² >= 0.8, peak K0 in [8, 24], and mrl |S| < 0.02 at every K0"),
    )


def c13(f: dict, seed: str) -> Verdict:
    ce = f.get("cross-encoder")
    reason = "BGE-small, E5-small and Qwen3-0.6B need the Hugging Face hub, not reachable here"
    if not ce:
        return "-", "not testable here", reason + "; the cross-encoder experiment (offline encoders) is not run yet"
    ours = "; ".join(
        f"{e}: " + ", ".join(f"{d} {g['v5-paper']:+.3f} (fractal {g['fractal']:+.3f})" for d, g in ds.items())
        for e, ds in ce.items()
    )
    return "V5-MRL gap " + ours, "not testable here", reason + "; our offline encoders shown for comparison"


def c18(f: dict, seed: str) -> Verdict:
    tl = next((v for k, v in (f.get("three-level") or {}).items() if k.startswith("clinc150")), None)
    if not tl or "v5-paper" not in tl or "mrl" not in tl or "S_02" not in tl["v5-paper"]:
        return _pending("three-level")
    a, b = tl["v5-paper"]["S_02"], tl["mrl"]["S_02"]
    ours = f"S_02 v5-paper {np.mean(a):+.3f} ± {_sd(a):.3f} vs mrl {np.mean(b):+.3f} ± {_sd(b):.3f}"
    if "fractal" in tl:
        ours += f" (fractal {np.mean(tl['fractal']['S_02']):+.3f})"
    n = min(len(a), len(b))
    ok = False
    if n >= 2:
        t = stats.paired_test(a[:n], b[:n])
        ours += f"; paired p {pval(t['p'])}"
        ok = t["mean_diff"] > 0 and t["p"] < ALPHA
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        "CLINC150 3-level: S_02 of v5-paper > mrl's, paired t p < 0.05",
    )


def c20(f: dict, seed: str) -> Verdict:
    nz = (f.get("noise") or {}).get("v5-paper")
    if not nz or 0.1 not in nz or 0.5 not in nz:
        return _pending("noise")
    ours = f"v5-paper retains {100 * nz[0.1]:.0f}% at 10%, {100 * nz[0.5]:.0f}% at 50%"
    fr = (f.get("noise") or {}).get("fractal")
    if fr and 0.1 in fr and 0.5 in fr:
        ours += f"; fractal {100 * fr[0.1]:.0f}% / {100 * fr[0.5]:.0f}%"
    ok = nz[0.1] >= 0.7 and nz[0.5] < nz[0.1]
    return ours, "reproduced" if ok else "not reproduced", "v5-paper keeps >= 70% of S at 10% noise, less at 50%"


def c21(f: dict, seed: str) -> Verdict:
    cap = (f.get("capacity") or {}).get("v5-paper")
    if not cap:
        return _pending("capacity")
    ours = "v5-paper peaks: " + ", ".join(f"{d} b={v['peak']}" for d, v in cap.items())
    fr = (f.get("capacity") or {}).get("fractal")
    if fr:
        ours += "; fractal: " + ", ".join(f"{d} b={v['peak']}" for d, v in fr.items())
    rho = ((f.get("capacity") or {}).get("rho_at_smallest") or {}).get("v5-paper")
    if rho:
        ours += f"; at b={rho['block']}, ρ(S, H(L1|L0)) {rho['spearman']:+.2f} over {rho['n']} datasets"
    ok = all(v["peak"] == min(v["S"]) for v in cap.values())
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        "v5-paper S peaks at the smallest block size on every dataset",
    )


def c23(f: dict, seed: str) -> Verdict:
    ex = (f.get("external") or {}).get("clinc150")
    if not ex or not all(m in ex for m in ("heal", "v5-paper", "csr", "smec")):
        return _pending("external")
    ours = ", ".join(f"{m} {ex[m]['S']:+.3f}" for m in ("heal", "v5-paper", "csr", "smec", "fractal") if m in ex)
    ok = ex["heal"]["S"] > ex["v5-paper"]["S"] and abs(ex["csr"]["S"]) < 0.02 and abs(ex["smec"]["S"]) < 0.02
    return (
        "CLINC150: " + ours,
        "reproduced" if ok else "not reproduced",
        ("CLINC150: heal S above v5-paper's, and |S| < 0.02 for csr and smec"),
    )


def c22(f: dict, seed: str) -> Verdict:
    bb = f.get("backbone-control") or {}
    need = (("v5-paper", "head-only"), ("mrl", "fine-tuned"))
    have = {d: v for d, v in bb.items() if all(k in v for k in need)}
    if not all(d in have for d in ("clinc150", "trec")):
        return _pending("backbone-control")
    ours = "; ".join(
        f"{d}: v5-paper head-only {v[need[0]]:+.3f}, mrl fine-tuned {v[need[1]]:+.3f}" for d, v in have.items()
    )
    ok = all(abs(have[d][need[1]]) < 0.02 and have[d][need[0]] > have[d][need[1]] + 0.01 for d in ("clinc150", "trec"))
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        (
            "CLINC150 and TREC (DBPedia is not shipped): |S| < 0.02 for mrl with fine-tuned encoder layers, and "
            "head-only v5-paper S above it by > 0.01"
        ),
    )


def c14(f: dict, seed: str) -> Verdict:
    r = ((f.get("retrieval") or {}).get("retrieval") or {}).get("clinc150") or {}
    if "v5-paper" not in r or "mrl" not in r:
        return _pending("retrieval")
    ours = ", ".join(
        f"{m} {r[m]['ramp_pp']:+.1f} pp ({100 * r[m]['fine_R1_short']:.1f} -> {100 * r[m]['fine_R1_full']:.1f})"
        for m in ("v5-paper", "mrl", "fractal")
        if m in r
    )
    ok = r["v5-paper"]["ramp_pp"] >= r["mrl"]["ramp_pp"] + 3
    return (
        "CLINC150 fine R@1 64d -> 256d: " + ours,
        "reproduced" if ok else "not reproduced",
        ("CLINC150: v5-paper's fine-level R@1 ramp (64d -> full) exceeds mrl's by >= 3 pp"),
    )


def c15(f: dict, seed: str) -> Verdict:
    p = ((f.get("retrieval") or {}).get("pareto") or {}).get("clinc150") or {}
    if "v5-paper" not in p:
        return _pending("pareto")

    def say(m: str) -> str:
        c = p[m]["crossover"]
        return f"{m} crossover {'none' if c is None else f'{c:.2f}'}, {p[m]['gain_half_pp']:+.1f} pp at alpha 0.5"

    ours = "; ".join(say(m) for m in ("v5-paper", "fractal") if m in p)
    c = p["v5-paper"]["crossover"]
    ok = c is not None and c <= 0.35
    return (
        "CLINC150: " + ours,
        "reproduced" if ok else "not reproduced",
        (
            "CLINC150: v5-paper routing is at least as accurate as mrl at full length "
            "for every alpha >= a crossover <= 0.35"
        ),
    )


def c16(f: dict, seed: str) -> Verdict:
    lat = f.get("latency") or {}
    if not lat:
        return _pending("latency")
    reached = {c: v["hnsw"]["ratio"] for c, v in lat.items() if v and v.get("hnsw")}
    ours = "; ".join(
        f"{c}: HNSW {reached[c]:.1f}x" if c in reached else f"{c}: HNSW recall target not reached" for c in lat
    )
    if not reached:
        return ours, "not testable here", "HNSW reached recall@10 >= 0.95 at no corpus and length pair"
    ok = all(r >= 3 for r in reached.values())
    return (
        ours,
        "reproduced" if ok else "not reproduced",
        (
            "batch-1 p50 latency 256d / 64d >= 3x on HNSW at recall@10 >= 0.95, "
            "on every corpus where that recall is reached"
        ),
    )


def c17(f: dict, seed: str) -> Verdict:
    d = (f.get("dual-encoder") or {}).get("clinc150")
    if not d or "v5-paper" not in d:
        return _pending("dual-encoder")
    ours = "; ".join(
        f"{m} 64d {100 * d[m]['short']:.1f}% vs its coarse-only head at 256d {100 * d[m]['coarse_only']:.1f}%"
        for m in ("v5-paper", "fractal")
        if m in d
    )
    ok = d["v5-paper"]["short"] >= d["v5-paper"]["coarse_only"]
    return (
        "CLINC150 coarse: " + ours,
        "reproduced" if ok else "not reproduced",
        ("CLINC150: v5-paper's 64-d prefix coarse k-NN accuracy >= the recipe-matched coarse-only head's at 256d"),
    )


def not_here(reason: str) -> Rule:
    def rule(f: dict, seed: str) -> Verdict:
        return "-", "not testable here", reason

    return rule


def pending(exp: str) -> Rule:
    def rule(f: dict, seed: str) -> Verdict:
        return _pending(exp)

    return rule
