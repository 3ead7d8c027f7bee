"""``fractal predict``: the S the default method will reach on a taxonomy, estimated before training."""

from __future__ import annotations

import typer

from ..errors import FractalError
from ..extras import require
from .common import ConflictOpt, LevelsOpt, TextOpt, app, err, load, out, print_json, writing


@app.command("predict")
def predict_cmd(
    name: str | None = typer.Argument(None, help="Built-in dataset name or a CSV/TSV/JSONL/Parquet file."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder."),
    fit_file: str | None = typer.Option(None, "--fit", help="A predictor fit file (default: the shipped one)."),
    refit: str | None = typer.Option(
        None, "--refit", help="Fit (and choose) the predictor on RESULTS/main and write --out."
    ),
    out_path: str | None = typer.Option(
        None, "--out", help="--refit: where to write the fit (default: the shipped file)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Estimate, before training, the S the default method will reach on a taxonomy."""
    require("report", "fractal predict (its fit is a statsmodels regression)", ("statsmodels",))
    from ..encoders import Encoder
    from ..predictor import FIT_FILE, fit_predictor, predict

    if refit:
        with writing(out_path or FIT_FILE):
            fit = fit_predictor(refit, out_path or FIT_FILE)
        nl = fit["nested_loo"]
        out.print(
            f"fitted on {len(fit['points'])} taxonomies ({fit['provenance']['records']} records): {fit['model']}, "
            f"coef {', '.join(f'{c:+.4f}' for c in fit['coef'])}; leave-one-taxonomy-out MAE {fit['loo']['mae']:.3f}, "
            f"nested (selection redone each time) {nl['mae']:.3f}, worst {nl['max_error']:.3f} ({nl['worst']}), "
            f"95% interval coverage {nl['coverage']:.0%} -> {out_path or FIT_FILE}",
            soft_wrap=True,
        )
        return
    if not name:
        raise FractalError("give a dataset name or file to predict for (or --refit RESULTS to refit the predictor)")
    res = predict(load(name, text, levels, on_conflict), Encoder(model), fit_file)
    if as_json:
        print_json(res)
        return
    f, x = res["fit"], res["features"]
    out.print(
        f"{res['dataset']}: predicted S for `{res['method']}` = {res['predicted_S']:+.3f} "
        f"(95% interval [{res['interval'][0]:+.3f}, {res['interval'][1]:+.3f}])",
        soft_wrap=True,
    )
    out.print(
        f"  from {', '.join(f'{k} = {x[k]:.3f}' for k in f['features'])} "
        f"({x['scored_rows']} {x['scored_split']} rows scored)"
        + (
            f"  [outside the fitted range of {', '.join(res['outside_fitted_range'])}: extrapolating]"
            if res["extrapolating"]
            else ""
        ),
        soft_wrap=True,
    )
    if not res["encoder_matches_fit"]:
        err.print(
            f"[yellow]warning:[/yellow] the predictor was fitted on {', '.join(f['encoder'])} records, not "
            f"{x['encoder']}: treat the estimate as a rough guide"
        )
    if not f["beats_mean"]:
        err.print(
            "[yellow]warning:[/yellow] out of sample (nested leave-one-taxonomy-out), this model predicted the "
            "held-out taxonomies worse than their mean did: treat the estimate as a rough guide"
        )
    out.print(
        f"  model {f['model']}, fit on {len(f['datasets'])} taxonomies; leave-one-taxonomy-out MAE "
        f"{f['nested_loo_mae']:.3f} with the model choice redone each time (worst {f['nested_loo_max_error']:.3f}, "
        f"interval coverage {f['nested_loo_coverage']:.0%}; predicting the mean: {f['mean_only_mae']:.3f})",
        soft_wrap=True,
    )
