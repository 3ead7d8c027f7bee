"""Statistics for comparing methods over seeds and datasets (scipy / statsmodels underneath).

* :func:`paired_test` -- paired t-test (scipy ``ttest_rel``), paired Cohen's d (d_z = mean/SD of
  the differences) and Hedges' g (d_z times the small-sample correction J = 1 - 3 / (4 df - 1));
* :func:`holm` -- Holm-Bonferroni adjusted p-values within one family of tests (statsmodels);
* :func:`random_effects` -- DerSimonian-Laird random-effects meta-analysis (statsmodels
  ``combine_effects``): pooled effect, 95% CI, z, p, tau^2, I^2 and the 95% prediction interval
  (Higgins, Thompson & Spiegelhalter 2009: pooled +- t_{k-2} sqrt(tau^2 + SE^2));
* :func:`d_variance` -- the sampling variance of a paired d_z (1/n + d^2 / (2n)), the weight of one
  dataset in the meta-analysis;
* :func:`sign_test` -- exact binomial sign test (scipy ``binomtest``; one-sided by default, as the
  seed's "8/8, p = 0.004");
* :func:`correlation` -- Spearman and Pearson with p-values; :func:`leave_one_out` -- the same with
  each point left out in turn; :func:`bootstrap_ci` -- a seeded percentile bootstrap of a statistic
  over points (10,000 resamples by default); :func:`cooks_distance` -- influence of each point on
  the least-squares line (statsmodels OLS);
* :func:`quadratic_fit` -- y = a x^2 + b x + c with R^2 and the vertex (the synthetic experiment's
  peak);
* :func:`metric_robustness` -- per steerability metric: the aligned-minus-control gap per dataset,
  how many datasets favour aligned, the sign-test p, and the rank correlation between metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from .errors import FractalError
from .extras import require


def _arr(x: ArrayLike, name: str = "values") -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise FractalError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def hedges_correction(df: int) -> float:
    """J = 1 - 3 / (4 df - 1): Hedges' small-sample bias correction."""
    return 1.0 - 3.0 / (4.0 * df - 1.0) if df > 0 else float("nan")


def paired_test(a: ArrayLike, b: ArrayLike) -> dict:
    """Paired comparison of ``a`` vs ``b`` (e.g. aligned vs MRL, one value per seed)."""
    a, b = _arr(a, "a"), _arr(b, "b")
    if a.shape != b.shape or len(a) < 2:
        raise FractalError(f"a paired test needs two equal-length samples of >= 2 values, got {len(a)} and {len(b)}")
    diff = a - b
    sd = float(np.std(diff, ddof=1))
    n = len(diff)
    d = float(np.mean(diff) / sd) if sd > 0 else (math.copysign(math.inf, np.mean(diff)) if np.mean(diff) else 0.0)
    if sd > 0:
        t = sps.ttest_rel(a, b)
        t_stat, p = float(t.statistic), float(t.pvalue)
    else:
        t_stat, p = (d, 0.0) if d else (0.0, 1.0)
    return {
        "n": n,
        "mean_diff": float(np.mean(diff)),
        "sd_diff": sd,
        "t": t_stat,
        "df": n - 1,
        "p": p,
        "cohens_d": d,
        "hedges_g": d * hedges_correction(n - 1),
    }


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    require("report", "Holm-adjusted p-values", ("statsmodels",))
    from statsmodels.stats.multitest import multipletests

    p = _arr(pvalues, "p-values")
    if len(p) == 0:
        return p
    return multipletests(p, method="holm")[1]


def d_variance(d: float, n: int) -> float:
    """Sampling variance of a paired standardized mean difference d_z from n pairs."""
    return 1.0 / n + d * d / (2.0 * n)


def random_effects(effects: ArrayLike, variances: ArrayLike, alpha: float = 0.05) -> dict:
    """DerSimonian-Laird random-effects pooling of per-study effects with known variances."""
    require("report", "the random-effects meta-analysis", ("statsmodels",))
    from statsmodels.stats.meta_analysis import combine_effects

    y, v = _arr(effects, "effects"), _arr(variances, "variances")
    if len(y) != len(v) or len(y) < 2:
        raise FractalError(f"a meta-analysis needs >= 2 studies with one variance each, got {len(y)} and {len(v)}")
    if np.any(v <= 0) or not np.all(np.isfinite(np.r_[y, v])):
        raise FractalError("meta-analysis effects must be finite and variances > 0 (a seed-constant effect has none)")
    res = combine_effects(y, v, method_re="dl", use_t=False, alpha=alpha)
    k, tau2 = len(y), float(res.tau2)
    if tau2 > 0:
        pooled, se, (lo, hi), i2 = (
            float(res.mean_effect_re),
            float(res.sd_eff_w_re),
            res.conf_int(alpha=alpha)[1],
            float(res.i2),
        )
    else:  # DL truncates tau^2 at 0 (statsmodels 0.15 leaves it negative): the fixed-effect pooling
        tau2, i2 = 0.0, 0.0
        pooled, se, (lo, hi) = float(res.mean_effect_fe), float(res.sd_eff_w_fe), res.conf_int(alpha=alpha)[0]
    z = pooled / se
    out = {
        "k": k,
        "pooled": pooled,
        "se": se,
        "ci": [float(lo), float(hi)],
        "z": z,
        "p": float(2 * sps.norm.sf(abs(z))),
        "tau2": tau2,
        "I2": i2,
        "Q": float(res.q),
        "pi": [float("nan"), float("nan")],
    }
    if k >= 3:
        t = sps.t.ppf(1 - alpha / 2, k - 2)
        half = t * math.sqrt(tau2 + se * se)
        out["pi"] = [pooled - half, pooled + half]
    return out


def sign_test(diffs: ArrayLike, alternative: str = "greater") -> dict:
    """Exact sign test of ``diffs`` > 0 (zeros dropped)."""
    d = _arr(diffs, "differences")
    d = d[d != 0]
    k, n = int((d > 0).sum()), len(d)
    p = float(sps.binomtest(k, n, 0.5, alternative=alternative).pvalue) if n else float("nan")
    return {"positive": k, "n": n, "p": p, "alternative": alternative}


def correlation(x: ArrayLike, y: ArrayLike) -> dict:
    """Spearman rho and Pearson r with their p-values."""
    x, y = _arr(x, "x"), _arr(y, "y")
    if len(x) != len(y) or len(x) < 3:
        raise FractalError(f"a correlation needs >= 3 paired points, got {len(x)} and {len(y)}")
    s, p = sps.pearsonr(x, y), sps.spearmanr(x, y)
    return {
        "n": len(x),
        "spearman": float(p.statistic),
        "spearman_p": float(p.pvalue),
        "pearson": float(s.statistic),
        "pearson_p": float(s.pvalue),
    }


def leave_one_out(x: ArrayLike, y: ArrayLike, names: Sequence[str]) -> list[dict]:
    """:func:`correlation` with each point left out in turn (needs >= 4 points)."""
    x, y = _arr(x, "x"), _arr(y, "y")
    out = []
    for i, name in enumerate(names):
        keep = np.arange(len(x)) != i
        out.append({"left_out": name, **correlation(x[keep], y[keep])})
    return out


def bootstrap_ci(
    x: ArrayLike,
    y: ArrayLike,
    statistic: Callable | str = "spearman",
    n_resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Percentile bootstrap over points of ``statistic(x, y)`` (resamples where it is undefined,
    e.g. all-equal values, are dropped and counted)."""
    x, y = _arr(x, "x"), _arr(y, "y")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_resamples, len(x)))
    xs, ys = x[idx], y[idx]
    if statistic in ("spearman", "pearson"):  # row-wise, vectorised: Spearman = Pearson of ranks
        kind = statistic
        if kind == "spearman":
            xs, ys = sps.rankdata(xs, axis=1), sps.rankdata(ys, axis=1)
        xc, yc = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
        with np.errstate(all="ignore"):
            vals = (xc * yc).sum(axis=1) / np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
        estimate = correlation(x, y)[kind] if len(x) >= 3 else float("nan")
    else:
        if isinstance(statistic, str):
            raise FractalError(f"unknown statistic {statistic!r}; use 'spearman', 'pearson' or a function of (x, y)")
        vals = np.array(
            [statistic(a, b) if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan for a, b in zip(xs, ys, strict=True)]
        )
        estimate = float(statistic(x, y))
    ok = vals[np.isfinite(vals)]
    q = (1 - level) / 2
    lo, hi = np.quantile(ok, [q, 1 - q]) if len(ok) else (np.nan, np.nan)
    return {
        "estimate": estimate,
        "ci": [float(lo), float(hi)],
        "level": level,
        "n_resamples": n_resamples,
        "undefined": int(n_resamples - len(ok)),
        "seed": seed,
    }


def cooks_distance(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Cook's distance of each point in the least-squares fit y ~ x."""
    require("report", "Cook's distances", ("statsmodels",))
    import statsmodels.api as sm

    x, y = _arr(x, "x"), _arr(y, "y")
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    return np.asarray(fit.get_influence().cooks_distance[0])


def quadratic_fit(x: ArrayLike, y: ArrayLike) -> dict:
    """Least-squares y = a x^2 + b x + c; R^2 and the vertex x* = -b / 2a (a peak when a < 0)."""
    x, y = _arr(x, "x"), _arr(y, "y")
    if len(x) < 4:
        raise FractalError(f"a quadratic fit needs >= 4 points, got {len(x)}")
    a, b, c = np.polyfit(x, y, 2)
    pred = np.polyval([a, b, c], x)
    ss_res, ss_tot = float(np.sum((y - pred) ** 2)), float(np.sum((y - y.mean()) ** 2))
    return {
        "a": float(a),
        "b": float(b),
        "c": float(c),
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "vertex": float(-b / (2 * a)) if a else float("nan"),
        "is_peak": bool(a < 0),
    }


def metric_robustness(gaps: Mapping[str, Mapping[str, float]]) -> dict:
    """``gaps[metric][dataset]`` = aligned minus control (means over seeds). Per metric: the gaps,
    the datasets where aligned wins, the sign-test p; plus Spearman rho between metrics' gaps."""
    metrics = list(gaps)
    datasets = sorted(set.intersection(*(set(g) for g in gaps.values()))) if gaps else []
    per = {}
    for m in metrics:
        d = np.array([gaps[m][ds] for ds in datasets])
        st = sign_test(d)
        per[m] = {
            "gaps": {ds: float(gaps[m][ds]) for ds in datasets},
            "aligned_wins": int((d > 0).sum()),
            "n": len(datasets),
            "sign_p": st["p"],
        }
    rank = {}
    if len(datasets) >= 3:
        for i, a in enumerate(metrics):
            for b in metrics[i + 1 :]:
                rank[f"{a}~{b}"] = float(
                    sps.spearmanr([gaps[a][d] for d in datasets], [gaps[b][d] for d in datasets]).statistic
                )
    return {"datasets": datasets, "metrics": per, "rank_correlation": rank}
