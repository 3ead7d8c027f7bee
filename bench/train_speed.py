"""Training speed of the default method, against its floor (warm cache; figures measured in one run).

1. floor: the matrix products one optimiser step of ``fractal`` cannot avoid (the MLP head forward
   and backward, the per-block Gram matrices and partial logits of the fused loss, forward and
   backward), each timed alone on this machine, single-threaded; the floor of a run is steps x that.
2. fit: one ``fractal`` run on the cached CLINC150 vectors, in process, the per-term loss
   (``Fractal.fused = False``, the code before the fused loss) vs the fused loss, alternately:
   seconds, ms per step, and the ratio to the floor.
3. whole process: ``fractal train DATASET --out TMP`` (default settings), wall and CPU seconds;
   with ``--baseline-src DIR`` (another checkout's ``src/``, e.g. a git worktree of an older commit)
   the same command on that code, alternately: before and after in one run.

    python bench/train_speed.py [--dataset clinc150] [--runs 5] [--baseline-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after two warm-up calls)."""
    fn(), fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def floor_ms_per_step(bs: int, d_in: int, hidden: int, n_blocks: int, block_dim: int, n_classes) -> dict:
    """Milliseconds of the step's unavoidable matrix products, each timed alone (single thread)."""
    dim = n_blocks * block_dim
    r = torch.randn
    x, w1, h, w2 = r(bs, d_in), r(d_in, hidden), r(bs, hidden), r(hidden, dim)
    blocks = r(n_blocks, bs, block_dim)
    products = {
        # head forward, then the weight gradients of both layers and the hidden layer's input gradient
        "head": [
            (x, w1),
            (h, w2),
            (x.T.contiguous(), r(bs, hidden)),
            (h.T.contiguous(), r(bs, dim)),
            (r(bs, dim), w2.T),
        ],
        # per-block Gram matrices: forward and the gradient (two products)
        "gram": [(blocks, blocks.transpose(1, 2))] + [(r(n_blocks, bs, bs), blocks)] * 2,
    }
    products["classifiers"] = []
    for c in n_classes:  # per-block partial logits: forward, input and weight gradients
        wb, g = r(n_blocks, block_dim, c), r(n_blocks, bs, c)
        products["classifiers"] += [(blocks, wb), (g, wb.transpose(1, 2)), (blocks.transpose(1, 2), g)]
    flops, ms = {}, {}
    for name, pairs in products.items():
        ms[name] = 1000 * sum(timed(lambda a=a, b=b: torch.matmul(a, b), 50) for a, b in pairs)
        flops[name] = sum(
            2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.shape[0] if a.dim() == 3 else 1) for a, b in pairs
        )
    total_flops = sum(flops.values())
    total_ms = sum(ms.values())
    return {
        "mflop_per_step": round(total_flops / 1e6, 1),
        "floor_ms_per_step": round(total_ms, 3),
        "gflops_at_these_shapes": round(total_flops / total_ms / 1e6, 1),
        "floor_ms_by_part": {k: round(v, 3) for k, v in ms.items()},
    }


def fit_seconds(ds, emb: dict, fused: bool, seed: int) -> tuple[float, int]:
    from fractal_embeddings.heads import HeadConfig, build_head
    from fractal_embeddings.objectives import get_objective
    from fractal_embeddings.training import TrainConfig, fit

    obj = get_objective("fractal")
    obj.fused = fused
    cfg = TrainConfig.resolve(obj.trainer_defaults, None)
    X = emb["train"]
    torch.manual_seed(seed)
    head = build_head(HeadConfig(**obj.head_options()), X.shape[1], [lv.n_classes for lv in ds.levels])
    result = fit(head, obj, X, ds.split("train").labels, emb["val"], ds.split("val").labels, cfg, seed=seed)
    return result.seconds, cfg.epochs * math.ceil(len(X) / cfg.batch_size)


def whole_process(dataset: str, src: str | None) -> tuple[float, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "fractal_embeddings.cli", "train", dataset, "--out", f"{out}/run"]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline-src", default=None, help="another checkout's src/ for the before figures")
    args = ap.parse_args()

    from fractal_embeddings import Encoder, embed_dataset, load_dataset

    torch.set_num_threads(1)
    ds = load_dataset(args.dataset)
    enc = Encoder()
    emb = embed_dataset(ds, enc, splits=("train", "val"))  # warm the cache: everything below reads it
    floor = floor_ms_per_step(128, emb["train"].shape[1], 512, 4, 64, [lv.n_classes for lv in ds.levels])

    fits = {"per-term": [], "fused": []}
    steps = 0
    for i in range(args.runs):
        for name in fits:
            secs, steps = fit_seconds(ds, emb, fused=name == "fused", seed=i)
            fits[name].append(secs)
    fit_report = {
        name: {
            "median_s": round(statistics.median(v), 2),
            "ms_per_step": round(1000 * statistics.median(v) / steps, 2),
            "x_floor": round(1000 * statistics.median(v) / steps / floor["floor_ms_per_step"], 2),
        }
        for name, v in fits.items()
    }
    fit_report["speedup_median_of_pairs"] = round(
        statistics.median(a / b for a, b in zip(fits["per-term"], fits["fused"], strict=True)), 2
    )

    whole = {"after": [], "before": []} if args.baseline_src else {"after": []}
    whole_process(args.dataset, None)  # warm-up (file cache, torch's kernels)
    for _ in range(args.runs):
        for name in whole:
            whole[name].append(whole_process(args.dataset, args.baseline_src if name == "before" else None))
    proc = {
        name: {
            "median_wall_s": round(statistics.median(w for w, _ in v), 2),
            "median_cpu_s": round(statistics.median(c for _, c in v), 2),
            "walls_s": [round(w, 2) for w, _ in v],
        }
        for name, v in whole.items()
    }
    if args.baseline_src:
        proc["speedup_median_of_pairs"] = round(
            statistics.median(b[0] / a[0] for a, b in zip(whole["after"], whole["before"], strict=True)), 2
        )
    print(
        json.dumps(
            {"dataset": ds.name, "steps": steps, "floor": floor, "fit": fit_report, "whole_process": proc},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
