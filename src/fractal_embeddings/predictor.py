"""Predict, before training, the steerability S the default method will reach on a taxonomy.

Two quantities are measured without training: the hierarchy's depth ``H(Lf|L0)`` (bits; finest
level given the coarsest, over all rows of all splits, as in ``TaxonomyDataset.stats``) and the untrained
encoder's fine-level k-NN accuracy (leave-one-out 5-NN on the scored test rows, the encoder truncated to the
head's dims, exactly as a run record's ``baseline``). The *product predictor* is their product, and S is
modelled as ``S = a + b * product`` by ordinary least squares over the ``main`` experiment's run
records of the default method (one point per dataset: the mean S over its seeds).

The fit ships as ``data/predictor.json`` (coefficients, the points it was fitted on, their
provenance, and its leave-one-dataset-out error), written by :func:`fit_predictor` -- never by hand.
A prediction comes with a 95% prediction interval (t distribution, n - 2 degrees of freedom).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .errors import FractalError

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset
    from .encoders import Encoder

SCHEMA = "fractal-embeddings/predictor/1"
FIT_FILE = Path(__file__).parent / "data" / "predictor.json"


def _design(x: ArrayLike) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.column_stack([np.ones_like(x), x])


def ols(x: ArrayLike, y: ArrayLike) -> dict:
    """Least-squares line with what a prediction interval needs."""
    import statsmodels.api as sm

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        raise FractalError(f"the predictor needs >= 3 datasets to fit a line with an interval, got {len(x)}")
    res = sm.OLS(y, _design(x)).fit()
    return {
        "coef": [float(c) for c in res.params],
        "sigma2": float(res.scale),
        "df": int(res.df_resid),
        "xtx_inv": np.linalg.inv(_design(x).T @ _design(x)).tolist(),
        "r2": float(res.rsquared),
    }


def predict_value(fit: dict, product: float, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Point prediction and prediction interval of S at ``product``."""
    from scipy import stats as sps

    x0 = np.array([1.0, float(product)])
    est = float(x0 @ np.asarray(fit["coef"]))
    se = float(np.sqrt(fit["sigma2"] * (1.0 + x0 @ np.asarray(fit["xtx_inv"]) @ x0)))
    half = float(sps.t.ppf(0.5 + level / 2, fit["df"])) * se
    return est, (est - half, est + half)


def leave_one_out(points: list[dict]) -> dict:
    """Refit without each dataset and predict it: MAE, and the same for predicting the others' mean."""
    errs, base, per = [], [], []
    for i, p in enumerate(points):
        rest = [q for j, q in enumerate(points) if j != i]
        f = ols([q["product"] for q in rest], [q["S"] for q in rest])
        est, (lo, hi) = predict_value(f, p["product"])
        errs.append(abs(est - p["S"]))
        base.append(abs(np.mean([q["S"] for q in rest]) - p["S"]))
        per.append(
            {
                "dataset": p["dataset"],
                "S": p["S"],
                "predicted": round(est, 6),
                "interval": [round(lo, 6), round(hi, 6)],
                "covered": bool(lo <= p["S"] <= hi),
            }
        )
    return {"mae": round(float(np.mean(errs)), 6), "mean_only_mae": round(float(np.mean(base)), 6), "per_dataset": per}


def fit_predictor(
    results: str | Path = "results", out: str | Path | None = FIT_FILE, method: str | None = None
) -> dict:
    """Fit on ``<results>/main`` (the default method's records) and write the fit file."""
    from . import __version__
    from .objectives import DEFAULT_METHOD
    from .report.frame import load_frame
    from .store import RunStore

    method = method or DEFAULT_METHOD
    root = Path(results)
    df = load_frame(root, experiments=["main"])
    df = df[(df["method"] == method) & ~df["quick"] & (df["n_levels"] == 2)]
    if df.empty:
        raise FractalError(f"{root}: no full `main` records of method {method}; run `fractal experiment main` first")
    nb = int(df["n_blocks"].max())
    points = []
    for d, g in df.groupby("dataset", sort=True):
        acc = float(g[f"base_L1@j{nb}"].mean())
        H = float(g["H_L1|L0"].mean())
        points.append(
            {
                "dataset": d,
                "H": round(H, 6),
                "untrained_fine_acc": round(acc, 6),
                "product": round(H * acc, 6),
                "S": round(float(g["S"].mean()), 6),
                "n_seeds": int(len(g)),
            }
        )
    f = ols([p["product"] for p in points], [p["S"] for p in points])
    digest = hashlib.sha256()  # of exactly the records fitted on
    for key in sorted(df["key"]):
        digest.update((RunStore(root / "main").path(key) / "record.json").read_bytes())
    fit = {
        "schema": SCHEMA,
        "model": "S = a + b * H(Lf|L0) * untrained fine k-NN accuracy",
        "method": method,
        **f,
        "points": points,
        "loo": leave_one_out(points),
        "provenance": {
            "experiment": "main",
            "records": int(len(df)),
            "records_sha256": digest.hexdigest(),
            "encoder": sorted(set(df["encoder"])),
            "dims": int(nb * df["block_dim"].iloc[0]),
            "library_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    if out is not None:
        from .cache import atomic_write_bytes

        atomic_write_bytes(Path(out), (json.dumps(fit, indent=1, sort_keys=True) + "\n").encode())
    return fit


def load_fit(path: str | Path | None = None) -> dict:
    path = Path(path) if path else FIT_FILE
    try:
        fit = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FractalError(f"{path}: no predictor fit file; write one with `fractal predict --refit RESULTS`") from None
    except ValueError:
        raise FractalError(
            f"{path}: the predictor fit file is not valid JSON; refit it with `fractal predict --refit RESULTS`"
        ) from None
    if fit.get("schema") != SCHEMA:
        raise FractalError(f"{path}: not a predictor fit file (schema {fit.get('schema')!r}, expected {SCHEMA})")
    return fit


def taxonomy_features(
    dataset: TaxonomyDataset,
    encoder: Encoder | str | None = None,
    n_blocks: int = 4,
    block_dim: int = 64,
    eval_rows: int = 2000,
) -> dict:
    """``H(Lf|L0)``, the untrained encoder's fine-level k-NN accuracy (as in a record's baseline) and
    their product, for a dataset with train and test splits."""
    from .data.taxonomy import conditional_entropy_bits
    from .runs import as_encoder, blocks_that_fit, embed_split, eval_row_sample, score_untrained

    dataset.require_hierarchy()
    split = "test" if "test" in dataset.splits else ("val" if "val" in dataset.splits else "train")
    labels = dataset.all_labels()
    H = conditional_entropy_bits(labels[:, -1], labels[:, 0])
    encoder = as_encoder(encoder)
    rows = eval_row_sample(dataset, split, eval_rows, 0)
    X = np.asarray(embed_split(encoder, dataset.split(split)))[rows]
    base = score_untrained(X, dataset.split(split).labels[rows], block_dim, n_blocks, 5, dataset.level_names)
    dims = str(blocks_that_fit(X.shape[1], block_dim, n_blocks) * block_dim)
    acc = float(base["accuracy"][dims][dataset.level_names[-1]])
    return {
        "H": float(H),
        "untrained_fine_acc": acc,
        "product": float(H * acc),
        "scored_split": split,
        "scored_rows": int(len(rows)),
        "encoder": encoder.resolved.name,
        "encoder_model": encoder.model,
    }


def predict(
    dataset: TaxonomyDataset, encoder: Encoder | str | None = None, fit: dict | str | Path | None = None
) -> dict:
    """The predicted S of the default method on ``dataset``, with a 95% interval and the fit's own
    leave-one-dataset-out error."""
    fit = fit if isinstance(fit, dict) else load_fit(fit)
    feats = taxonomy_features(dataset, encoder)
    est, (lo, hi) = predict_value(fit, feats["product"])
    fitted_with = fit["provenance"]["encoder"]
    same_encoder = feats["encoder_model"] in fitted_with
    xs = [p["product"] for p in fit["points"]]
    return {
        "dataset": dataset.name,
        "method": fit["method"],
        "predicted_S": round(est, 4),
        "interval": [round(lo, 4), round(hi, 4)],
        "features": feats,
        "extrapolating": not min(xs) - 1e-3 <= feats["product"] <= max(xs) + 1e-3,
        "encoder_matches_fit": same_encoder,
        "fit": {
            "model": fit["model"],
            "coef": fit["coef"],
            "datasets": [p["dataset"] for p in fit["points"]],
            "loo_mae": fit["loo"]["mae"],
            "mean_only_mae": fit["loo"]["mean_only_mae"],
            "encoder": fit["provenance"]["encoder"],
        },
    }
