"""Training cost of the default ``fractal`` method as training rows and fine classes grow.

What is timed is what ``fractal train`` spends in the head training: ``training.fit`` with the
``fractal`` objective's defaults (MLP head 384 -> 512 -> 4 x 64, batch 128, lr 1e-3, one torch
thread, best epoch by validation k-NN on 2,000 rows after every epoch), only the epoch count
lowered (3 per point, ``--quick`` 2; the default is 10). Encoding is excluded: the vectors come
from the embedding cache, memory-mapped as ``fractal train`` reads them. Each point is trained in
a fresh subprocess that reports the time of every epoch (``seconds_per_epoch``: the median over
the run's epochs, epoch 1 including fit's set-up) and its peak RSS (the child's ``VmHWM``:
Python + torch + the data + training).

Vectors: MiniLM-L6 vectors of all 104,129 20 Newsgroups passages (train + val splits,
``experiments.search.newsgroup_passages``, read with ``embed_chunked``; a cold cache encodes them
once, slow on a CPU), shuffled with seed 0: the first 2,000 are the validation rows, the other
102,129 the pool, in that order. The train split is stored sorted by newsgroup (its first 20,000
passages hold 6 newsgroups of 2 subjects), so the shuffle is what makes every point cover all 20
newsgroups of 6 subjects. Passages of one document can fall on both sides of the split (no matter
for a cost measurement).

* rows curve (1k .. 100k): the first n pool rows (nested prefixes of one shuffled order) with
  their own labels (subject -> newsgroup): distinct real vectors, real labels, nothing synthetic.
* classes curve (10 .. 5,000 fine classes at the first 10,000 pool rows): synthetic labels on
  those real vectors. C fine centres are C of the rows drawn with seed 0; each row's fine class is
  its nearest centre (cosine); round(sqrt(C)) of those centres are the coarse centres, and a fine
  class's parent is the coarse centre nearest its centre.

    python bench/train_scale.py [--out results/scale/train_cost.json] [--quick]

``--quick``: tiny points on the first 20,000 passages only (a smoke check under a minute from a
warm cache; those are the cache's first two chunks, so a cold one encodes only them).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SCHEMA = "fractal-embeddings/train-cost/1"
N_VAL = 2_000
FULL = {"rows": (1_000, 3_000, 10_000, 30_000, 100_000), "classes": (10, 100, 1_000, 5_000), "class_rows": 10_000}
QUICK = {"rows": (500, 2_000), "classes": (10, 200), "class_rows": 2_000, "passages": 20_000}
EPOCHS, QUICK_EPOCHS = 3, 2


# ------------------------------------------------------------------ one point, in a fresh process
def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (Linux: the peak of this program's own memory; ``ru_maxrss``
    after exec also counts the parent's RSS at fork), else ``ru_maxrss``."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux (bytes on macOS)
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def child(folder: str, epochs: int) -> None:
    """Train one ``fractal`` head on ``folder``'s arrays; print its timings and peak RSS as JSON."""
    import torch

    from fractal_embeddings.heads import HeadConfig, build_head
    from fractal_embeddings.objectives import get_objective
    from fractal_embeddings.training import TrainConfig, fit

    d = Path(folder)
    X, Y, Xv, Yv = (np.load(d / f"{name}.npy", mmap_mode="r") for name in ("X", "Y", "Xv", "Yv"))
    n_classes = [int(c) for c in np.load(d / "n_classes.npy")]
    obj = get_objective("fractal")
    cfg = TrainConfig.resolve(obj.trainer_defaults, {"epochs": epochs})
    torch.manual_seed(42)
    head = build_head(HeadConfig(**obj.head_options(), n_blocks=4, block_dim=64), X.shape[1], n_classes)
    rss_before = peak_rss_mb()
    marks = [time.perf_counter()]
    result = fit(head, obj, X, Y, Xv, Yv, cfg, seed=42, progress=lambda _: marks.append(time.perf_counter()))
    epoch_s = np.diff(marks).tolist()
    out = {
        "epoch_s": [round(s, 3) for s in epoch_s],
        "seconds_per_epoch": round(statistics.median(epoch_s), 3),
        "fit_s": round(result.seconds, 3),
        "steps_per_epoch": -(-len(X) // cfg.batch_size),
        "n_params": sum(p.numel() for p in head.parameters()),
        "rss_before_fit_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "train_config": cfg.as_dict(),
        "torch": torch.__version__,
    }
    print(json.dumps(out))


def measure(X: np.ndarray, Y: np.ndarray, Xv: np.ndarray, Yv: np.ndarray, epochs: int) -> dict:
    """One point: the arrays saved to a temporary folder, trained by a fresh ``--child`` process."""
    n_classes = np.maximum(Y.max(axis=0), Yv.max(axis=0)) + 1
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {"X": X, "Y": Y, "Xv": Xv, "Yv": Yv, "n_classes": n_classes}
        for name, a in arrays.items():
            np.save(Path(tmp) / f"{name}.npy", np.ascontiguousarray(a))
        cmd = [sys.executable, __file__, "--child", tmp, "--epochs", str(epochs)]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "rows": len(X),
        "fine_classes": int(n_classes[-1]),
        "coarse_classes": int(n_classes[0]),
        "fine_classes_in_rows": len(np.unique(Y[:, -1])),
        "epochs": epochs,
        **res,
    }


# ------------------------------------------------------------------ the data
def real_vectors(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The passages' (the first ``limit``, else all) cached encoder vectors and (subject, newsgroup) codes."""
    from fractal_embeddings.encoders import Encoder
    from fractal_embeddings.experiments.search import embed_chunked, newsgroup_passages

    p = newsgroup_passages()
    texts, labels = p.texts[:limit], p.labels[:limit]
    X = np.asarray(embed_chunked(Encoder(), texts), dtype=np.float32)
    Y = np.stack([np.unique([lab[i] for lab in labels], return_inverse=True)[1] for i in range(2)], axis=1)
    return X, Y.astype(np.int64)


def synthetic_labels(X: np.ndarray, Xv: np.ndarray, C: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(coarse, fine) codes: the nearest of C centres drawn from ``X``; parents: the nearest of sqrt(C) of them."""
    rng = np.random.default_rng(seed)
    centres = X[rng.choice(len(X), C, replace=False)]
    n_coarse = max(1, round(C**0.5))
    parent = np.argmax(centres @ centres[:n_coarse].T, axis=1)

    def codes(V: np.ndarray) -> np.ndarray:
        fine = np.concatenate([np.argmax(V[s : s + 2048] @ centres.T, axis=1) for s in range(0, len(V), 2048)])
        return np.stack([parent[fine], fine], axis=1).astype(np.int64)

    return codes(X), codes(Xv)


# ------------------------------------------------------------------ main
def table(name: str, rows: list[dict]) -> None:
    print(f"\n{name}")
    print(f"{'rows':>8} {'fine':>6} {'coarse':>6} {'epochs':>6} {'s/epoch':>8} {'ms/step':>8} {'peak MB':>8}")
    for r in rows:
        ms = 1000 * r["seconds_per_epoch"] / r["steps_per_epoch"]
        print(
            f"{r['rows']:>8,} {r['fine_classes']:>6,} {r['coarse_classes']:>6} {r['epochs']:>6} "
            f"{r['seconds_per_epoch']:>8.2f} {ms:>8.2f} {r['peak_rss_mb']:>8.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/scale/train_cost.json")
    ap.add_argument("--quick", action="store_true", help="tiny points: a smoke check")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=EPOCHS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.epochs)
        return

    from fractal_embeddings.atomic import atomic_write_bytes
    from fractal_embeddings.experiments.latency import machine_info
    from fractal_embeddings.records import canonical_json

    t0 = time.perf_counter()
    pts, epochs = (QUICK, QUICK_EPOCHS) if args.quick else (FULL, EPOCHS)
    X, Y = real_vectors(pts.get("passages"))
    order = np.random.default_rng(0).permutation(len(X))
    val, pool = order[:N_VAL], order[N_VAL:]
    Xv, Yv = X[val], Y[val]
    if max(pts["rows"]) > len(pool):
        raise SystemExit(f"{max(pts['rows']):,} rows asked for, the pool holds {len(pool):,}")
    rows_curve = []
    for n in pts["rows"]:
        rows_curve.append(measure(X[pool[:n]], Y[pool[:n]], Xv, Yv, epochs))
        print(f"rows {n:,}: {rows_curve[-1]['seconds_per_epoch']:.2f} s/epoch", flush=True)
    Xc = X[pool[: pts["class_rows"]]]
    classes_curve = []
    for C in pts["classes"]:
        Yc, Ycv = synthetic_labels(Xc, Xv, C)
        classes_curve.append(measure(Xc, Yc, Xv, Ycv, epochs))
        print(f"classes {C:,}: {classes_curve[-1]['seconds_per_epoch']:.2f} s/epoch", flush=True)

    record = {
        "schema": SCHEMA,
        "method": "fractal",
        "quick": args.quick,
        "machine": machine_info(),
        "measured": "training.fit only (what `fractal train` spends after its cached vectors are read); "
        "encoding excluded. seconds_per_epoch: median of the run's per-epoch wall times (epoch 1 includes "
        "fit's set-up; every epoch includes the validation k-NN on 2,000 rows); peak_rss_mb: VmHWM of a "
        "fresh child process per point (Python + torch + data + training); rss_before_fit_mb: the same "
        "after imports, the head and the memory-mapped arrays, before fit",
        "vectors": f"MiniLM-L6 (the default Encoder) vectors of {'the first' if pts.get('passages') else 'all'} "
        f"{len(X):,} 20 Newsgroups passages of the train + val splits (experiments.search.newsgroup_passages, "
        f"from the embedding cache), shuffled with seed 0: the first {N_VAL:,} are the "
        f"validation rows, the other {len(pool):,} the pool in that order. Every point's rows are the first n "
        "pool rows: distinct real vectors, no synthetic or perturbed rows",
        "rows_labels": "the passages' own (subject, newsgroup) labels; "
        f"{len(np.unique(Y[:, 1]))} newsgroups of {len(np.unique(Y[:, 0]))} subjects in all",
        "classes_labels": f"synthetic on the first {pts['class_rows']:,} pool rows: fine class = the nearest (cosine) "
        "of C centres drawn from those rows with seed 0; coarse = the nearest of the first round(sqrt(C)) centres "
        "to the fine class's centre",
        "rows_curve": rows_curve,
        "classes_curve": classes_curve,
        "total_s": round(time.perf_counter() - t0, 1),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, canonical_json(record).encode())
    table("rows curve (real vectors, real labels)", rows_curve)
    table(f"classes curve ({pts['class_rows']:,} real rows, synthetic labels)", classes_curve)
    print(f"\n{time.perf_counter() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    main()
