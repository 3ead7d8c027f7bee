"""The `main` experiment end to end (targets on this 2-core machine: warm <= 90 s, cold <= 10 min):
the five published two-level datasets x {v5-paper, fractal, mrl} x 5 seeds with the seed's caps
(75 runs: the grid the targets were set on; ``--all-datasets``: main's whole grid, ten taxonomies),
into a fresh temporary store. Warm (default): the embedding cache is filled first and not timed. ``--cold``:
a fresh, empty cache, so the time includes encoding every split (the encoding is then the first
part of the wall time: ``prepare`` encodes before any run starts). Prints wall seconds (and, cold,
the encoding seconds) and the median train and eval seconds per method (from the records).

    python bench/sweep_main.py [--workers 2] [--quick] [--cold] [--all-datasets]
"""

import argparse
import json
import os
import statistics
import tempfile
import time

from fractal_embeddings.experiments import run_experiment
from fractal_embeddings.experiments.main import PUBLISHED, specs
from fractal_embeddings.experiments.sweep import prepare
from fractal_embeddings.store import RunStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cold", action="store_true", help="start from an empty embedding cache")
    ap.add_argument("--all-datasets", action="store_true", help="main's ten taxonomies, not the five published")
    args = ap.parse_args()
    ds = None if args.all_datasets or args.quick else PUBLISHED

    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
        encode_s = None
        if args.cold:
            os.environ["FRACTAL_CACHE"] = cache  # the workers inherit it
            t0 = time.perf_counter()
            prepare(specs(quick=args.quick, datasets=ds), log=lambda *_: None)
            encode_s = time.perf_counter() - t0
        else:
            prepare(specs(quick=args.quick, datasets=ds), log=lambda *_: None)  # warm the cache: not timed
        t0 = time.perf_counter()
        (root,) = run_experiment(
            "main", out, quick=args.quick, datasets=ds, workers=args.workers, log=lambda *_: None, progress=False
        )
        wall = time.perf_counter() - t0 + (encode_s or 0.0)
        train_s, eval_s = {}, {}
        for _, rec in RunStore(root).records():
            d = rec.to_dict()
            train_s.setdefault(d["method"], []).append(d["timing"]["train_s"])
            eval_s.setdefault(d["method"], []).append(d["timing"]["eval_s"])
    print(
        json.dumps(
            {
                "wall_s": round(wall, 1),
                "cold": args.cold,
                "encode_s": None if encode_s is None else round(encode_s, 1),
                "runs": sum(map(len, train_s.values())),
                "workers": args.workers,
                "median_train_s": {m: round(statistics.median(v), 2) for m, v in train_s.items()},
                "median_eval_s": {m: round(statistics.median(v), 2) for m, v in eval_s.items()},
                "sum_train_eval_s": round(sum(map(sum, train_s.values())) + sum(map(sum, eval_s.values())), 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":  # the process pool spawns workers that import this file
    main()
