"""The statistics module against published reference values and scipy/statsmodels references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fractal_embeddings import stats
from fractal_embeddings.errors import FractalError

# BCG vaccine trials (Colditz et al. 1994; metafor's dat.bcg): TB cases / non-cases, vaccinated then control
BCG = [
    (4, 119, 11, 128),
    (6, 300, 29, 274),
    (3, 228, 11, 209),
    (62, 13536, 248, 12619),
    (33, 5036, 47, 5761),
    (180, 1361, 372, 1079),
    (8, 2537, 10, 619),
    (505, 87886, 499, 87892),
    (29, 7470, 45, 7232),
    (17, 1699, 65, 1600),
    (186, 50448, 141, 27197),
    (5, 2493, 3, 2338),
    (27, 16886, 29, 17825),
]


def test_dersimonian_laird_matches_the_published_bcg_analysis():
    y = [math.log((a / (a + b)) / (c / (c + d))) for a, b, c, d in BCG]
    v = [1 / a - 1 / (a + b) + 1 / c - 1 / (c + d) for a, b, c, d in BCG]
    r = stats.random_effects(y, v)
    # metafor rma(yi, vi, method="DL") on dat.bcg log risk ratios
    assert r["pooled"] == pytest.approx(-0.7141, abs=5e-5)
    assert r["se"] == pytest.approx(0.1787, abs=5e-5)
    assert r["tau2"] == pytest.approx(0.3088, abs=5e-5)
    assert r["I2"] == pytest.approx(0.9212, abs=5e-5)
    assert r["Q"] == pytest.approx(152.2330, abs=5e-4)
    assert r["ci"] == pytest.approx([-1.0644, -0.3638], abs=5e-5)
    # prediction interval: pooled +- t(k-2) sqrt(tau2 + se^2)
    half = 2.200985 * math.sqrt(r["tau2"] + r["se"] ** 2)
    assert r["pi"] == pytest.approx([r["pooled"] - half, r["pooled"] + half], abs=1e-5)
    assert r["p"] < 1e-4 and r["z"] == pytest.approx(r["pooled"] / r["se"])


def test_dl_equals_the_textbook_formula_when_heterogeneity_is_zero():
    y, v = [0.5, 0.52, 0.49], [0.04, 0.05, 0.03]
    r = stats.random_effects(y, v)
    w = 1 / np.array(v)
    assert r["tau2"] == 0.0 and r["I2"] == 0.0 and r["pooled"] == pytest.approx(float(np.sum(w * y) / w.sum()))
    assert r["se"] == pytest.approx(math.sqrt(1 / w.sum()))
    with pytest.raises(FractalError, match="variances > 0"):
        stats.random_effects([0.1, 0.2], [0.0, 0.1])


def test_paired_test_effect_sizes():
    a, b = [0.15, 0.17, 0.12, 0.16, 0.14], [0.01, 0.0, 0.02, -0.01, 0.01]
    r = stats.paired_test(a, b)
    diff = np.subtract(a, b)
    assert r["cohens_d"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert r["hedges_g"] == pytest.approx(r["cohens_d"] * (1 - 3 / (4 * 4 - 1)))
    assert r["t"] == pytest.approx(diff.mean() / (diff.std(ddof=1) / math.sqrt(5)))
    assert r["df"] == 4 and 0 < r["p"] < 0.001


def test_holm_sign_test_and_correlations():
    # Holm: sorted p * (m - rank), made monotone, capped at 1
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    s = stats.sign_test([0.1] * 8)
    assert (s["positive"], s["n"]) == (8, 8) and s["p"] == pytest.approx(0.5**8)  # the seed's "8/8, p = 0.004"
    assert stats.sign_test([0.1, -0.2, 0.0, 0.3], alternative="two-sided")["n"] == 3
    c = stats.correlation([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    assert c["spearman"] == pytest.approx(7 / math.sqrt(90)) and c["pearson"] == pytest.approx(6 / math.sqrt(60))
    loo = stats.leave_one_out([1, 2, 3, 4, 5], [1, 2, 3, 4, 0], list("abcde"))
    assert loo[-1]["left_out"] == "e" and loo[-1]["spearman"] == pytest.approx(1.0)


def test_bootstrap_cooks_quadratic_and_metric_robustness():
    x, y = np.arange(10.0), np.arange(10.0) ** 1.5
    b1, b2 = stats.bootstrap_ci(x, y, n_resamples=2000, seed=3), stats.bootstrap_ci(x, y, n_resamples=2000, seed=3)
    assert b1 == b2 and b1["estimate"] == pytest.approx(1.0) and b1["ci"][0] > 0.8
    from scipy.stats import spearmanr

    noisy = y + np.random.default_rng(0).normal(0, 5, size=10)
    fast = stats.bootstrap_ci(x, noisy, n_resamples=500, seed=1)
    slow = stats.bootstrap_ci(x, noisy, statistic=lambda a, b: spearmanr(a, b).statistic, n_resamples=500, seed=1)
    assert fast["ci"] == pytest.approx(slow["ci"]) and fast["undefined"] == slow["undefined"]
    y_out = x.copy()
    y_out[9] = 30.0  # one influential point
    cd = stats.cooks_distance(x, y_out)
    assert cd.argmax() == 9 and cd[9] > 1
    q = stats.quadratic_fit([1, 2, 3, 4, 5], [-((t - 3.2) ** 2) + 1 for t in [1, 2, 3, 4, 5]])
    assert q["is_peak"] and q["vertex"] == pytest.approx(3.2) and q["r2"] == pytest.approx(1.0)
    gaps = {"S": {"a": 0.1, "b": 0.2, "c": 0.05, "d": -0.01}, "S_AUC": {"a": 0.2, "b": 0.3, "c": 0.1, "d": 0.0}}
    m = stats.metric_robustness(gaps)
    assert m["metrics"]["S"]["aligned_wins"] == 3 and m["rank_correlation"]["S~S_AUC"] == pytest.approx(1.0)
