"""Does a cheaper `fractal` recipe train faster at equal quality on this machine?

``main``'s caps, ``fractal`` on CLINC150, HWU64 and TREC, seeds 42 / 123 / 456, trained now in this
process one after another (so the train seconds compare): the default recipe (batch 128, lr 1e-3,
10 epochs), batch 256 with lr 2e-3, and 5 epochs. Prints, per dataset and recipe, the mean ± sd of
S and of full-length fine accuracy, the coarse accuracy of the 64-d prefix, and the median train
seconds. The issue's bar: S and fine accuracy within the seed-to-seed spread of the default.

    python bench/recipe_cost.py [--datasets clinc150,hwu64,trec] [--seeds 42,123,456]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from fractal_embeddings.experiments.main import CAP
from fractal_embeddings.experiments.sweep import RunSpec, run_sweep
from fractal_embeddings.store import RunStore

RECIPES = {"default": {}, "batch256-lr2e-3": {"batch_size": 256, "lr": 2e-3}, "5-epochs": {"epochs": 5}}


def summary(records: list[dict]) -> str:
    S = [r["steerability"]["S"] for r in records]
    fine = [r["accuracy"]["256"][r["dataset"]["levels"][-1]["name"]] for r in records]
    coarse = [r["accuracy"]["64"][r["dataset"]["levels"][0]["name"]] for r in records]
    secs = [r["timing"]["train_s"] for r in records]
    return (
        f"S {statistics.mean(S):.3f} ± {statistics.stdev(S):.3f} | "
        f"fine@256 {statistics.mean(fine):.3f} ± {statistics.stdev(fine):.3f} | "
        f"coarse@64 {statistics.mean(coarse):.3f} | train {statistics.median(secs):.1f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="clinc150,hwu64,trec")
    ap.add_argument("--seeds", default="42,123,456")
    args = ap.parse_args()
    datasets, seeds = args.datasets.split(","), [int(s) for s in args.seeds.split(",")]
    specs = [
        RunSpec("recipe", d, "fractal", s, variant=name, cap=CAP, train_options=opts)
        for d in datasets
        for s in seeds
        for name, opts in RECIPES.items()
    ]
    with tempfile.TemporaryDirectory() as out:
        run_sweep(specs, out, progress=False, log=lambda *_: None)  # one process: the seconds compare
        runs = [(key, rec.to_dict()) for key, rec in RunStore(out).records()]
    for d in datasets:
        for name in RECIPES:
            recs = [r for key, r in runs if key.startswith(f"{d}/{name}/")]
            print(f"{d:10s} {name:16s} {summary(recs)}")


if __name__ == "__main__":
    main()
