"""Predict, before training, the steerability S the default method will reach on a taxonomy.

Every feature is measured without training (:data:`FEATURES`): the hierarchy (``H`` = H(Lf|L0) and
``H0`` = H(L0) in bits, over all rows of all splits as in ``TaxonomyDataset.stats``; the branching
factor; training rows per fine class), the untrained encoder's leave-one-out 5-NN accuracy on the
coarsest and finest level (on the scored test rows, the encoder truncated to the head's dims, exactly
as a run record's ``baseline``) and their gap, the median text length, and the seed's *product
predictor* ``H x untrained fine accuracy``. One point per taxonomy: the mean S of the default method
over the ``main`` experiment's seeds.

**The model is chosen by a rule stated before any fit was looked at** (:data:`RULE`): every ordinary
least-squares model with an intercept and one or two of the features is a candidate; the one with the
lowest leave-one-taxonomy-out mean absolute error wins (ties: fewer features, then the order of
:data:`FEATURES`). Because choosing among candidates on the same points flatters that error, the
fit file also holds the *nested* leave-one-taxonomy-out error: without each taxonomy the whole
selection is redone on the others and the model it picks predicts the one left out. That nested
error, its worst case and the coverage of its 95% prediction intervals are the honest numbers.

The fit ships as ``data/predictor.json`` (the chosen model, its coefficients, every candidate's error,
the points and their features, the records' hash and its leave-one-out errors), written by
:func:`fit_predictor` -- never by hand. A prediction comes with a 95% prediction interval
(t distribution, n - p degrees of freedom).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ._version import __version__
from .errors import FractalError
from .extras import require
from .validation import check_output_file

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset
    from .encoders import Encoder
    from .records import RunRecord

SCHEMA = "fractal-embeddings/predictor/2"
FIT_FILE = Path(__file__).parent / "data" / "predictor.json"

#: The candidate features, all measured before training (name -> what it is).
FEATURES: dict[str, str] = {
    "product": "H(Lf|L0) x untrained fine k-NN accuracy (the seed's product predictor)",
    "H": "H(Lf|L0), bits",
    "H0": "H(L0), bits",
    "log2_branching": "log2 of fine classes per coarse class",
    "log10_rows_per_class": "log10 of training rows per fine class (rows capped as in the fitted runs)",
    "base_fine": "untrained encoder's fine k-NN accuracy at the head's full width (256 dims)",
    "base_coarse": "untrained encoder's coarse k-NN accuracy at the head's full width (256 dims)",
    "base_gap": "untrained coarse minus fine k-NN accuracy at the head's full width (256 dims)",
    "log2_words": "log2 of the median words per training text",
}
MAX_FEATURES = 2
MIN_TAXONOMIES = 5  # a one-feature candidate needs 4 points for its own leave-one-out; the nested error one more
RULE = (
    "candidates: OLS with an intercept on every single feature and every pair of features; choose the lowest "
    "leave-one-taxonomy-out MAE (ties: fewer features, then feature order); report the nested "
    "leave-one-taxonomy-out error of that whole selection"
)
LEVEL = 0.95


# ------------------------------------------------------------------ least squares with intervals
def _design(x: ArrayLike) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    return np.column_stack([np.ones(len(x)), x])


def ols(x: ArrayLike, y: ArrayLike) -> dict:
    """Least squares with an intercept on ``x`` (one feature per column, or a 1-d array), with what a
    prediction interval needs."""
    require("report", "the steerability predictor's fit", ("statsmodels",))
    import statsmodels.api as sm

    X, y = _design(x), np.asarray(y, float)
    if len(y) < X.shape[1] + 1:
        raise FractalError(
            f"the predictor needs >= {X.shape[1] + 1} datasets to fit {X.shape[1] - 1} feature(s) with an "
            f"interval, got {len(y)}"
        )
    res = sm.OLS(y, X).fit()
    return {
        "coef": [float(c) for c in res.params],
        "sigma2": float(res.scale),
        "df": int(res.df_resid),
        "xtx_inv": np.linalg.inv(X.T @ X).tolist(),
        "r2": float(res.rsquared),
    }


def predict_value(fit: dict, x: float | Sequence[float], level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """Point prediction and prediction interval of S at feature value(s) ``x``."""
    from scipy import stats as sps

    x0 = np.concatenate([[1.0], np.atleast_1d(np.asarray(x, dtype=float))])
    est = float(x0 @ np.asarray(fit["coef"]))
    se = float(np.sqrt(fit["sigma2"] * (1.0 + x0 @ np.asarray(fit["xtx_inv"]) @ x0)))
    half = float(sps.t.ppf(0.5 + level / 2, fit["df"])) * se
    return est, (est - half, est + half)


def _x(points: Sequence[dict], features: Sequence[str]) -> np.ndarray:
    return np.array([[p[f] for f in features] for p in points], dtype=float)


def _loo_mae(points: Sequence[dict], features: Sequence[str]) -> float:
    """Leave-one-out MAE of OLS on ``features`` (closed form: residual / (1 - leverage))."""
    X, y = _design(_x(points, features)), np.array([p["S"] for p in points], float)
    pinv = np.linalg.pinv(X)
    resid = y - X @ (pinv @ y)
    lev = np.einsum("ij,ji->i", X, pinv)
    return float(np.mean(np.abs(resid / np.clip(1.0 - lev, 1e-12, None))))


def candidates(points: Sequence[dict], features: Sequence[str] = tuple(FEATURES)) -> list[dict]:
    """Every candidate model (one or two features) with its leave-one-out MAE, best first (:data:`RULE`)."""
    out: list[dict[str, Any]] = []
    for n in range(1, MAX_FEATURES + 1):
        for combo in itertools.combinations(features, n):
            if len(points) >= n + 3:  # an interval needs n + 2 points after leaving one out
                out.append({"features": list(combo), "loo_mae": _loo_mae(points, combo)})
    order = {f: i for i, f in enumerate(features)}

    def rank(c: dict[str, Any]) -> tuple[float, int, list[int]]:
        return round(c["loo_mae"], 12), len(c["features"]), [order[f] for f in c["features"]]

    out.sort(key=rank)
    if not out:
        raise FractalError(f"the predictor needs >= 4 datasets to choose a model, got {len(points)}")
    return out


def leave_one_out(points: list[dict], features: Sequence[str] = ("product",), select: bool = False) -> dict:
    """Refit without each taxonomy and predict it: MAE, worst error, interval coverage, and the MAE of
    predicting the others' mean. ``select=True`` redoes the model choice (:data:`RULE`) on each
    remaining set (the nested error); otherwise ``features`` are fixed."""
    errs, base, per = [], [], []
    for i, p in enumerate(points):
        rest = [q for j, q in enumerate(points) if j != i]
        feats = candidates(rest)[0]["features"] if select else list(features)
        f = ols(_x(rest, feats), [q["S"] for q in rest])
        est, (lo, hi) = predict_value(f, [p[k] for k in feats])
        errs.append(abs(est - p["S"]))
        base.append(abs(np.mean([q["S"] for q in rest]) - p["S"]))
        per.append(
            {
                "dataset": p["dataset"],
                "S": p["S"],
                "features": feats,
                "predicted": round(est, 6),
                "interval": [round(lo, 6), round(hi, 6)],
                "covered": bool(lo <= p["S"] <= hi),
            }
        )
    worst = int(np.argmax(errs))
    return {
        "mae": round(float(np.mean(errs)), 6),
        "max_error": round(float(errs[worst]), 6),
        "worst": per[worst]["dataset"],
        "coverage": round(float(np.mean([r["covered"] for r in per])), 6),
        "mean_only_mae": round(float(np.mean(base)), 6),
        "per_dataset": per,
    }


# ------------------------------------------------------------------ features
def feature_values(
    H: float, H0: float, n_coarse: int, n_fine: int, train_rows: int, base_coarse: float, base_fine: float, words: float
) -> dict[str, float]:
    """Every entry of :data:`FEATURES` from the measurements it is made of (rounded: the fit file stores them)."""
    vals = {
        "product": H * base_fine,
        "H": H,
        "H0": H0,
        "log2_branching": float(np.log2(n_fine / n_coarse)),
        "log10_rows_per_class": float(np.log10(train_rows / n_fine)),
        "base_fine": base_fine,
        "base_coarse": base_coarse,
        "base_gap": base_coarse - base_fine,
        "log2_words": float(np.log2(max(words, 1.0))),
    }
    return {k: round(float(v), 6) for k, v in vals.items()}


def median_words(texts: Sequence[str]) -> float:
    return float(np.median([len(t.split()) for t in texts])) if texts else 0.0


def _record_features(rec: RunRecord, words: float) -> dict[str, float]:
    """The features of a ``main`` record: everything but the text length comes from the record itself."""
    levels = rec.dataset.levels
    fine, coarse = levels[-1].name, levels[0].name
    full = max(rec.baseline.accuracy, key=int)
    acc = rec.baseline.accuracy[full]
    ent = rec.dataset.entropy
    H = ent.get("H_L1|L0") if len(levels) == 2 else None
    if H is None:
        raise FractalError(f"run {rec.run_id}: the predictor is fitted on two-level records only")
    return feature_values(
        H,
        ent["H_L0"],
        levels[0].n_classes,
        levels[-1].n_classes,
        int(rec.dataset.rows["train"]),
        acc[coarse],
        acc[fine],
        words,
    )


def fit_predictor(
    results: str | Path = "results", out: str | Path | None = FIT_FILE, method: str | None = None
) -> dict:
    """Fit on ``<results>/main`` (the default method's two-level records) and write the fit file."""
    from .objectives import DEFAULT_METHOD
    from .runs import dataset_for_record
    from .store import RunStore

    method = method or DEFAULT_METHOD
    root = Path(results)
    fix = "give --refit (results=) the results folder `fractal experiment main` wrote into (e.g. results)"
    if not root.exists():
        raise FractalError(f"{root}: no such folder; {fix}")
    if not root.is_dir():
        raise FractalError(f"{root} is a file, not a folder; {fix}")
    if out is not None:
        check_output_file(out, overwrite=True, suffix=".json")  # before the records are read
    if not (root / "main").is_dir():
        raise FractalError(f"{root} has no main/ folder (the records of `fractal experiment main`); run it first")
    store = RunStore(root / "main")
    recs = [  # the main grid's own runs (variant = the method): not its second-encoder runs ("fractal @ mpnet-base")
        (key, rec)
        for key, rec in store.records()
        if rec.method == method and len(rec.dataset.levels) == 2 and (rec.tags or {}).get("variant", method) == method
    ]
    if not recs:
        raise FractalError(f"{root}: no full `main` records of method {method}; run `fractal experiment main` first")
    by_ds: dict[str, list] = {}
    for key, rec in sorted(recs, key=lambda kr: kr[0]):
        by_ds.setdefault(rec.dataset.name, []).append((key, rec))
    if len(by_ds) < MIN_TAXONOMIES:
        raise FractalError(
            f"{root}: `main` records of {len(by_ds)} taxonomies; choosing the model and its nested leave-one-out "
            f"error needs >= {MIN_TAXONOMIES}: run `fractal experiment main` on more datasets"
        )
    caps = [(((rec.tags or {}).get("spec") or {}).get("cap") or {}).get("train") for _, rec in recs]
    train_cap = max((c for c in caps if c), default=None)  # the runs' training-row cap, applied in `predict` too
    points: list[dict[str, Any]] = []
    for name, group in sorted(by_ds.items()):
        words = median_words(dataset_for_record(group[0][1]).split("train").texts)
        feats = [_record_features(rec, words) for _, rec in group]
        mean = {k: round(float(np.mean([f[k] for f in feats])), 6) for k in FEATURES}
        S = round(float(np.mean([rec.steerability["S"] for _, rec in group])), 6)
        points.append({"dataset": name, "S": S, "n_seeds": len(group), "median_words": words, **mean})
    cands = candidates(points)
    chosen = cands[0]["features"]
    f = ols(_x(points, chosen), [p["S"] for p in points])
    digest = hashlib.sha256()  # of exactly the records fitted on
    for key in sorted(k for k, _ in recs):
        digest.update((store.path(key) / "record.json").read_bytes())
    fit = {
        "schema": SCHEMA,
        "model": "S = a + " + " + ".join(f"b{i + 1} * {c}" for i, c in enumerate(chosen)),
        "features": chosen,
        "method": method,
        **f,
        "points": points,
        "selection": {"rule": RULE, "candidates": [{**c, "loo_mae": round(c["loo_mae"], 6)} for c in cands]},
        "loo": leave_one_out(points, chosen),
        "nested_loo": leave_one_out(points, select=True),
        "product_loo": leave_one_out(points, ("product",)),
        "provenance": {
            "experiment": "main",
            "records": len(recs),
            "records_sha256": digest.hexdigest(),
            "encoder": sorted({rec.encoder.model or rec.encoder.name for _, rec in recs}),
            "dims": int(max(int(d) for d in recs[0][1].baseline.accuracy)),
            "train_rows_cap": train_cap,
            "library_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    if out is not None:
        from .atomic import atomic_write_bytes

        atomic_write_bytes(Path(out), (json.dumps(fit, indent=1, sort_keys=True) + "\n").encode())
    return fit


def load_fit(path: str | Path | None = None) -> dict:
    path = Path(path) if path else FIT_FILE
    try:
        fit = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FractalError(f"{path}: no predictor fit file; write one with `fractal predict --refit RESULTS`") from None
    except OSError as e:  # a folder, no permission, ...
        why = e.strerror or type(e).__name__
        raise FractalError(f"{path}: can't read it as a predictor fit file ({why})") from None
    except ValueError:
        raise FractalError(
            f"{path}: the predictor fit file is not valid JSON; refit it with `fractal predict --refit RESULTS`"
        ) from None
    if not isinstance(fit, dict) or fit.get("schema") != SCHEMA:
        got = fit.get("schema") if isinstance(fit, dict) else None
        raise FractalError(
            f"{path}: not a predictor fit file of this version (schema {got!r}, expected {SCHEMA}); refit it with "
            "`fractal predict --refit RESULTS`"
        )
    return fit


def taxonomy_features(
    dataset: TaxonomyDataset,
    encoder: Encoder | str | None = None,
    n_blocks: int = 4,
    block_dim: int = 64,
    eval_rows: int = 2000,
    train_rows_cap: int | None = None,
) -> dict[str, Any]:
    """Every feature of :data:`FEATURES` for a dataset with a train split (scored on its test split, else
    val, else train), measured as a run record measures its baseline. ``train_rows_cap``: count at most
    this many training rows (the fitted runs' cap, so the feature means the same on both sides)."""
    from .encoders import as_encoder, embed_split
    from .evaluation import blocks_that_fit, score_untrained
    from .recording import eval_row_sample

    dataset.require_hierarchy()
    if "train" not in dataset.splits:
        raise FractalError(f"dataset '{dataset.name}' has no train split; the predictor reads training rows per class")
    split = "test" if "test" in dataset.splits else ("val" if "val" in dataset.splits else "train")
    ent = dataset.stats()["entropy"]
    names = dataset.level_names
    H = _h_fine_given_coarse(dataset)
    encoder = as_encoder(encoder)
    rows = eval_row_sample(dataset, split, eval_rows, 0)
    X = np.asarray(embed_split(encoder, dataset.split(split)))[rows]
    base = score_untrained(X, dataset.split(split).labels[rows], block_dim, n_blocks, 5, names)
    acc = base["accuracy"][str(blocks_that_fit(X.shape[1], block_dim, n_blocks) * block_dim)]
    train = dataset.split("train")
    words = median_words(train.texts)
    feats = feature_values(
        H,
        ent["H_L0"],
        dataset.levels[0].n_classes,
        dataset.levels[-1].n_classes,
        min(len(train), train_rows_cap) if train_rows_cap else len(train),
        acc[names[0]],
        acc[names[-1]],
        words,
    )
    return {
        **feats,
        "untrained_fine_acc": acc[names[-1]],
        "median_words": words,
        "scored_split": split,
        "scored_rows": int(len(rows)),
        "encoder": encoder.resolved.name,
        "encoder_model": encoder.model,
    }


def _h_fine_given_coarse(dataset: TaxonomyDataset) -> float:
    from .data.taxonomy import conditional_entropy_bits

    labels = dataset.all_labels()
    return conditional_entropy_bits(labels[:, -1], labels[:, 0])


def predict(
    dataset: TaxonomyDataset, encoder: Encoder | str | None = None, fit: dict | str | Path | None = None
) -> dict:
    """The predicted S of the default method on ``dataset``, with a 95% interval and the fit's own
    leave-one-taxonomy-out errors."""
    fit = fit if isinstance(fit, dict) else load_fit(fit)
    feats = taxonomy_features(dataset, encoder, train_rows_cap=fit["provenance"].get("train_rows_cap"))
    used = fit["features"]
    est, (lo, hi) = predict_value(fit, [feats[f] for f in used])
    same_encoder = feats["encoder_model"] in fit["provenance"]["encoder"]
    outside = [
        f
        for f in used
        if not min(p[f] for p in fit["points"]) - 1e-3 <= feats[f] <= max(p[f] for p in fit["points"]) + 1e-3
    ]
    return {
        "dataset": dataset.name,
        "method": fit["method"],
        "predicted_S": round(est, 4),
        "interval": [round(lo, 4), round(hi, 4)],
        "features": feats,
        "extrapolating": bool(outside),
        "outside_fitted_range": outside,
        "encoder_matches_fit": same_encoder,
        "fit": {
            "model": fit["model"],
            "features": used,
            "coef": fit["coef"],
            "datasets": [p["dataset"] for p in fit["points"]],
            "loo_mae": fit["loo"]["mae"],
            "nested_loo_mae": fit["nested_loo"]["mae"],
            "nested_loo_max_error": fit["nested_loo"]["max_error"],
            "nested_loo_coverage": fit["nested_loo"]["coverage"],
            "mean_only_mae": fit["loo"]["mean_only_mae"],
            # False: out of sample, the chosen model predicted held-out taxonomies worse than their mean did
            "beats_mean": fit["nested_loo"]["mae"] < fit["nested_loo"]["mean_only_mae"],
            "encoder": fit["provenance"]["encoder"],
        },
    }
