"""The `main` experiment end to end from a warm embedding cache (the issue's speed target: <= 90 s on
this 2-core machine): all shipped two-level datasets x {v5-paper, fractal, mrl} x 5 seeds with the
seed's caps, into a fresh temporary store. Prints wall seconds and the median train seconds per
method (from the records).

    python bench/sweep_main.py [--workers 2] [--quick]
"""

import argparse
import json
import statistics
import tempfile
import time

from fractal_embeddings.experiments import run_experiment
from fractal_embeddings.experiments.main import specs
from fractal_embeddings.experiments.sweep import prepare
from fractal_embeddings.store import RunStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    prepare(specs(quick=args.quick), log=lambda *_: None)  # warm the cache: the benchmark times the sweep only
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        (root,) = run_experiment(
            "main", out, quick=args.quick, workers=args.workers, log=lambda *_: None, progress=False
        )
        wall = time.perf_counter() - t0
        per = {}
        for _, rec in ((k, r.to_dict()) for k, r in RunStore(root).records()):
            per.setdefault(rec["method"], []).append(rec["timing"]["train_s"])
    print(
        json.dumps(
            {
                "wall_s": round(wall, 1),
                "runs": sum(map(len, per.values())),
                "workers": args.workers,
                "median_train_s": {m: round(statistics.median(v), 2) for m, v in per.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":  # the process pool spawns workers that import this file
    main()
