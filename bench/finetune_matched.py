"""The matched frozen vs fine-tuned comparison on full training data (the `finetune` experiment's arms,
without its 2,000-row cap): for a GPU machine (bench/gpu_check.sh runs it there).

    python bench/finetune_matched.py OUT_DIR [--datasets clinc150,hwu64,trec] [--seeds 42]
                                     [--device cuda] [--max-train-rows N]

Per dataset and seed, on the same training rows and the same 2,000 scored test rows: `frozen` (`fractal
train`), `frozen, joint schedule` (the joint stage's head steps on the frozen encoder), `joint` (encoder
+ head, no head stages) and `recipe` (`fractal finetune`'s defaults). Writes OUT_DIR/finetune_matched.json
(one row per run: S, accuracies, training seconds) and each record under OUT_DIR/records/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ARMS = ("frozen", "frozen, joint schedule", "joint", "recipe")


def run_arm(arm: str, ds, seed: int, device: str):  # noqa: ANN001, ANN201 - a TaxonomyDataset in, a Run out
    from fractal_embeddings.finetune import finetune
    from fractal_embeddings.finetune_config import DEFAULT_RECIPE as R
    from fractal_embeddings.runs import train

    if arm == "frozen":
        return train(ds, "fractal", seed=seed, device=device)
    if arm == "frozen, joint schedule":
        options = {"epochs": R.epochs, "batch_size": R.batch_size, "lr": R.lr, "select": "last"}
        return train(ds, "fractal", seed=seed, device=device, train_options=options)
    if arm == "joint":
        return finetune(ds, seed=seed, warmup=False, refit=False, device=device, show_progress=False)
    return finetune(ds, seed=seed, device=device, show_progress=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--datasets", default="clinc150,hwu64,trec")
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-train-rows", type=int, default=None)
    args = ap.parse_args()

    from fractal_embeddings import load_dataset
    from fractal_embeddings.records import canonical_json

    out = Path(args.out)
    (out / "records").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        if args.max_train_rows:
            ds = ds.subset({"train": args.max_train_rows}, seed=0)
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in ARMS:
                t0 = time.perf_counter()
                run = run_arm(arm, ds, seed, args.device)
                rec = run.record
                rows.append(
                    {
                        "dataset": name,
                        "seed": seed,
                        "arm": arm,
                        "train_rows": len(ds.split("train").texts),
                        "S": rec.steerability["S"],
                        "accuracy": rec.accuracy,
                        "train_s": rec.timing["train_s"],
                        "wall_s": round(time.perf_counter() - t0, 2),
                        "device": rec.timing.get("device", "cpu"),
                    }
                )
                slug = arm.replace(", ", "-").replace(" ", "-")
                (out / "records" / f"{name}-{slug}-seed{seed}.json").write_text(canonical_json(rec.to_dict()))
                print(json.dumps(rows[-1]), flush=True)
    (out / "finetune_matched.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
