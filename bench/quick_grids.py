"""Seconds of every experiment's ``--quick`` grid, into a fresh temporary results folder, 2 workers, with
the embedding cache as it is (warm after a first run). Default: ``run_experiment("all", quick=True)``, one
call (what the test suite's longest fixture runs); ``--each``: one call per experiment, one line each
(each call starts its own worker pool).

    python bench/quick_grids.py [--workers 2] [--each]
"""

import argparse
import json
import tempfile
import time

from fractal_embeddings.experiments import EXPERIMENTS, NOT_IN_ALL, run_experiment


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--each", action="store_true", help="one run_experiment call per experiment, timed apart")
    args = ap.parse_args()
    names = [n for n in EXPERIMENTS if n not in NOT_IN_ALL] if args.each else ["all"]
    seconds = {}
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            t0 = time.perf_counter()
            run_experiment(name, out, quick=True, workers=args.workers, log=lambda *_: None, progress=False)
            seconds[name] = round(time.perf_counter() - t0, 1)
    print(json.dumps({"seconds": seconds, "total_s": round(sum(seconds.values()), 1)}, indent=1))


if __name__ == "__main__":  # the process pool spawns workers that import this file
    main()
