"""The steerability predictor (predictor.py): the fit algebra against statsmodels, the shipped fit
file's provenance, and a prediction on real data with the offline encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import FractalError
from fractal_embeddings.predictor import FIT_FILE, leave_one_out, load_fit, ols, predict, predict_value


def test_prediction_interval_matches_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, 7)
    y = 0.2 + 0.08 * x + rng.normal(0, 0.03, 7)
    fit = ols(x, y)
    est, (lo, hi) = predict_value(fit, 2.5)
    ref = sm.OLS(y, sm.add_constant(x)).fit().get_prediction(np.array([[1.0, 2.5]])).summary_frame(alpha=0.05)
    assert est == pytest.approx(float(ref["mean"].iloc[0]))
    assert (lo, hi) == (pytest.approx(float(ref["obs_ci_lower"].iloc[0])), pytest.approx(float(ref["obs_ci_upper"].iloc[0])))
    with pytest.raises(FractalError, match=">= 3 datasets"):
        ols([1.0, 2.0], [0.1, 0.2])


def test_leave_one_out_refits_without_each_point():
    pts = [{"dataset": f"d{i}", "product": float(i), "S": 0.1 + 0.05 * i} for i in range(5)]
    loo = leave_one_out(pts)
    assert loo["mae"] == pytest.approx(0.0, abs=1e-9)  # exactly linear: every held-out point is predicted
    assert loo["mean_only_mae"] > 0.05
    pts[2]["S"] += 0.1
    assert leave_one_out(pts)["per_dataset"][2]["predicted"] == pytest.approx(0.2)


def test_shipped_fit_is_generated_from_main_records():
    fit = load_fit()
    assert fit["provenance"]["experiment"] == "main" and fit["method"] == "fractal"
    assert len(fit["points"]) >= 3 and fit["provenance"]["records"] >= len(fit["points"])
    # the coefficients are the least-squares line through the stored points, not typed numbers
    refit = ols([p["product"] for p in fit["points"]], [p["S"] for p in fit["points"]])
    assert np.allclose(refit["coef"], fit["coef"])
    assert leave_one_out(fit["points"])["mae"] == pytest.approx(fit["loo"]["mae"], abs=1e-6)


def test_predict_on_real_data(data_home, encoder, tmp_path):
    ds = load_dataset("trec")
    res = predict(ds, encoder)
    lo, hi = res["interval"]
    assert lo < res["predicted_S"] < hi
    f = res["features"]
    assert f["product"] == pytest.approx(f["H"] * f["untrained_fine_acc"])
    assert 1.5 < f["H"] < 3.5 and 0.3 < f["untrained_fine_acc"] < 1.0
    bad = tmp_path / "fit.json"
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(FractalError, match="not a predictor fit file"):
        predict(ds, encoder, bad)
    assert FIT_FILE.is_file()
