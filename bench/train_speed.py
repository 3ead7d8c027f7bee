"""One `v5-paper` run on CLINC150 (15,000 train rows, 5 epochs, batch 16, validation each epoch,
test evaluation of the trained head and of the untrained encoder), embeddings already cached.
Reports the median of 3 runs (seeds 42, 123, 456) of train + eval seconds, and seconds per step.

    python bench/train_speed.py [--method v5-paper] [--dataset clinc150] [--runs 3]
"""

import argparse
import json
import math
import statistics
import time

from fractal_embeddings import Encoder, embed_dataset, load_dataset
from fractal_embeddings.runs import train

ap = argparse.ArgumentParser()
ap.add_argument("--method", default="v5-paper")
ap.add_argument("--dataset", default="clinc150")
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()

ds = load_dataset(args.dataset)
enc = Encoder()
embed_dataset(ds, enc)  # warm the cache: the benchmark times training and scoring only
train(ds, args.method, seed=0, encoder=enc, train_options={"epochs": 1})  # warm torch's kernels
seeds = [42, 123, 456, 789, 1024][: args.runs]
totals, trains, evals, steps = [], [], [], None
for seed in seeds:
    t0 = time.perf_counter()
    run = train(ds, args.method, seed=seed, encoder=enc)
    totals.append(time.perf_counter() - t0)
    trains.append(run.record.to_dict()["timing"]["train_s"])
    evals.append(run.record.to_dict()["timing"]["eval_s"])
    cfg = run.record.to_dict()["config"]["train"]
    steps = cfg["epochs"] * math.ceil(len(ds.split("train")) / cfg["batch_size"])
print(
    json.dumps(
        {
            "dataset": ds.name,
            "method": args.method,
            "steps": steps,
            "median_total_s": round(statistics.median(totals), 3),
            "median_train_s": round(statistics.median(trains), 3),
            "median_eval_s": round(statistics.median(evals), 3),
            "median_ms_per_step": round(1000 * statistics.median(trains) / steps, 3),
            "totals_s": [round(t, 3) for t in totals],
        }
    )
)
