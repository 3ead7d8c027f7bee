"""The steerability predictor (predictor.py): the fit algebra against statsmodels, the shipped fit
file's provenance, and a prediction on real data with the offline encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import FractalError
from fractal_embeddings.predictor import (
    FEATURES,
    FIT_FILE,
    candidates,
    leave_one_out,
    load_fit,
    ols,
    predict,
    predict_value,
)


def test_prediction_interval_matches_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, 7)
    y = 0.2 + 0.08 * x + rng.normal(0, 0.03, 7)
    fit = ols(x, y)
    est, (lo, hi) = predict_value(fit, 2.5)
    ref = sm.OLS(y, sm.add_constant(x)).fit().get_prediction(np.array([[1.0, 2.5]])).summary_frame(alpha=0.05)
    assert est == pytest.approx(float(ref["mean"].iloc[0]))
    assert (lo, hi) == (
        pytest.approx(float(ref["obs_ci_lower"].iloc[0])),
        pytest.approx(float(ref["obs_ci_upper"].iloc[0])),
    )
    with pytest.raises(FractalError, match=">= 3 datasets"):
        ols([1.0, 2.0], [0.1, 0.2])


def test_leave_one_out_refits_without_each_point():
    pts = [{"dataset": f"d{i}", "product": float(i), "S": 0.1 + 0.05 * i} for i in range(5)]
    loo = leave_one_out(pts)
    assert loo["mae"] == pytest.approx(0.0, abs=1e-9)  # exactly linear: every held-out point is predicted
    assert loo["mean_only_mae"] > 0.05
    pts[2]["S"] += 0.1
    assert leave_one_out(pts)["per_dataset"][2]["predicted"] == pytest.approx(0.2)


def _points(n=10, seed=0):
    rng = np.random.default_rng(seed)
    pts = []
    for i in range(n):
        p = {"dataset": f"d{i}", **{f: float(rng.uniform(0, 3)) for f in FEATURES}}
        pts.append(p)
    return pts


def test_the_rule_picks_the_feature_that_predicts_and_nested_loo_redoes_the_choice():
    pts = _points()
    for p in pts:  # S is a line in H0 plus a little noise: H0 alone must win
        p["S"] = 0.1 + 0.05 * p["H0"] + 0.001 * np.sin(7 * p["H"])
    cands = candidates(pts)
    assert cands[0]["features"] == ["H0"]
    assert [c["loo_mae"] for c in cands] == sorted(c["loo_mae"] for c in cands)
    assert len(cands) == len(FEATURES) + len(FEATURES) * (len(FEATURES) - 1) // 2
    # the closed-form LOO error equals refitting without each point
    assert leave_one_out(pts, ["H0"])["mae"] == pytest.approx(cands[0]["loo_mae"], abs=1e-6)
    nested = leave_one_out(pts, select=True)
    assert all("H0" in r["features"] for r in nested["per_dataset"])
    assert nested["mae"] < 0.01
    # S unrelated to any feature: the nested error is no better than predicting the mean
    rng = np.random.default_rng(1)
    for p in pts:
        p["S"] = float(rng.normal(0.3, 0.1))
    noise = leave_one_out(pts, select=True)
    assert noise["mae"] > 0.5 * noise["mean_only_mae"]
    assert noise["worst"] in {p["dataset"] for p in pts}


def test_shipped_fit_is_generated_from_main_records():
    from pathlib import Path

    from fractal_embeddings.predictor import fit_predictor

    fit = load_fit()
    assert fit["provenance"]["experiment"] == "main" and fit["method"] == "fractal"
    assert len(fit["points"]) >= 3 and fit["provenance"]["records"] >= len(fit["points"])
    results = Path(__file__).resolve().parents[1] / "results"
    if not (results / "main").is_dir():
        pytest.skip("results/main is not in this checkout")
    again = fit_predictor(results, out=None)  # refit from the committed records: the same fit
    assert again["points"] == fit["points"]  # rounded inputs: equal to the bit
    assert again["features"] == fit["features"] and len(fit["points"]) >= 10
    for key in ("coef", "loo", "nested_loo", "selection", "sigma2", "xtx_inv"):  # up to the BLAS build's rounding
        assert _approx(again[key], fit[key]), key
    assert again["provenance"]["records_sha256"] == fit["provenance"]["records_sha256"]


def test_predict_on_real_data(data_home, encoder, tmp_path):
    from fractal_embeddings.runs import train

    ds = load_dataset("trec")
    res = predict(ds, encoder)
    f = res["features"]
    # the two measurements are the ones a run record stores: H from the dataset, accuracy = the baseline
    assert f["H"] == pytest.approx(ds.stats()["entropy"]["H_L1|L0"])
    flat = train(ds, "flat", encoder=encoder)
    assert f["untrained_fine_acc"] == flat.record.to_dict()["baseline"]["accuracy"]["256"][ds.level_names[-1]]
    fit = load_fit()
    assert f["product"] == pytest.approx(f["H"] * f["base_fine"], abs=1e-5)
    assert f["base_coarse"] == flat.record.to_dict()["baseline"]["accuracy"]["256"][ds.level_names[0]]
    expected = fit["coef"][0] + sum(c * f[k] for c, k in zip(fit["coef"][1:], fit["features"], strict=True))
    assert res["predicted_S"] == pytest.approx(expected, abs=1e-4)
    assert res["encoder_matches_fit"] is True
    bad = tmp_path / "fit.json"
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(FractalError, match="not a predictor fit file"):
        predict(ds, encoder, bad)
    assert FIT_FILE.is_file()


def _approx(a, b, rel=1e-9) -> bool:
    """Nested JSON values equal, floats to ``rel`` (a refit on another numpy/BLAS build differs in the last bits)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_approx(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_approx(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=rel, abs=1e-12)
    return a == b


def test_refit_names_a_missing_results_folder(tmp_path):
    """`fractal predict --refit nonexistent` used to say "no full main records"."""
    from fractal_embeddings.predictor import fit_predictor

    out = tmp_path / "fit.json"
    with pytest.raises(FractalError, match=r"nonexistent: no such folder") as e:
        fit_predictor(tmp_path / "nonexistent", out)
    assert "--refit" in str(e.value) and not out.exists()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FractalError, match=r"file.txt is a file"):
        fit_predictor(tmp_path / "file.txt", out)
    with pytest.raises(FractalError, match=r"no main/ folder"):
        fit_predictor(tmp_path, out)


def test_a_fit_file_that_is_a_folder_and_a_refit_out_that_is_a_folder_are_one_line(tmp_path):
    """A folder as --fit used to end in IsADirectoryError; as --out of --refit, after the whole fit."""
    from fractal_embeddings.predictor import fit_predictor

    with pytest.raises(FractalError, match=r"can't read it as a predictor fit file"):
        load_fit(tmp_path)
    (tmp_path / "main").mkdir()
    (tmp_path / "fit.json").mkdir()
    with pytest.raises(FractalError, match=r"fit.json is a directory"):
        fit_predictor(tmp_path, tmp_path / "fit.json")
