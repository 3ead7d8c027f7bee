"""Zoom-index cost curves to a million items: build seconds, peak memory, bytes on disk per item,
single-query latency (median, p99) and recall@10, per backend, layout, quantiser and search mode.

How the items are made. Encoding a million texts is out of reach on a 2-core CPU, so the items are
the 104,129 real 20 Newsgroups passages of the ``search`` experiment (MiniLM-L6 vectors, cached),
put through the head of a ``fractal`` run (seed 42) trained on 8,000 of those passages (a seeded
sample; ``--run DIR`` uses another run). A size of n items takes the passages in a seeded random
order; past 104,129, copy c of passage i is its encoder vector plus seeded Gaussian noise
(per-coordinate std :data:`NOISE` x the vector's norm / sqrt(384)), re-normalised, then through the
head; each copy keeps its passage's labels. The real-text point is the ``search`` experiment's own
(``results/search/search.json``). Queries: the first passages of 300 test documents (seed 0; 200
timed, one at a time, one thread; the embedded Qdrant: 100 and 50).

Every configuration runs in a fresh process (``--child``), so its peak resident memory (``VmHWM``:
the items' vectors it reads, Python, torch, FAISS and the index) is its own. Recall@10 is against
the exact search of the float32 shared flat index at the same zoom (zoom 64 and 256), or at 256
(funnel, routed): each measured the same way. Item texts are short placeholders (``n<row>``), so
``item_bytes`` (``index.json``) is a floor; ``vector_bytes`` is what the layout stores per item.

    python bench/scale.py                      # 10k, 100k, 1M -> results/scale/index_cost.json
    python bench/scale.py --sizes 10000 --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

NOISE = 0.1
TRAIN_PASSAGES = 8_000
SIZES = (10_000, 100_000, 1_000_000)
K = 10
N_QUERIES = 300  # queries scored for recall (the first of the 1,000); the first N_TIMED of them are timed
N_TIMED = 200
QDRANT_QUERIES = (100, 50)  # the embedded Qdrant's brute force in Python is slow: fewer queries
HNSW = {"m": 32, "ef_construction": 80, "ef_search": 64}  # the search experiment's graph
QDRANT_MAX = 100_000  # the embedded Qdrant keeps points as Python objects: the server is the path past this
MODES = [
    {"mode": "zoom", "zoom": 64},
    {"mode": "zoom", "zoom": 128},
    {"mode": "zoom", "zoom": 256},
    {"mode": "funnel", "zoom": 256, "candidates": 100},
    {"mode": "routed", "zoom": 256, "candidates": 100},
]
CONFIGS = [  # backend, kind, layout, quantize, largest size
    ("faiss", "flat", "shared", "none", None),
    ("faiss", "flat", "shared", "int8", None),
    ("faiss", "flat", "per-prefix", "none", None),
    ("faiss", "hnsw", "shared", "none", None),
    ("faiss", "hnsw", "shared", "int8", None),
    ("faiss", "hnsw", "per-prefix", "none", QDRANT_MAX),
    ("faiss-binary", "flat", "sign bits", "binary", None),
    ("qdrant", "flat", "named vectors", "none", QDRANT_MAX),
]
ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def base_run(work: Path, run_dir: str | None = None):
    """The ``fractal`` run whose head makes the items: ``run_dir``, or one trained once into ``work`` on
    :data:`TRAIN_PASSAGES` passages (a seeded sample; the next 2,000 are its test rows)."""
    from fractal_embeddings.data import build_dataset
    from fractal_embeddings.experiments.search import newsgroup_passages
    from fractal_embeddings.runs import load_run, train

    if run_dir:
        return load_run(run_dir)
    d = work / "run"
    if not (d / "record.json").exists():
        p = newsgroup_passages()
        order = np.random.default_rng(1).permutation(len(p))
        tr, te = order[:TRAIN_PASSAGES], order[TRAIN_PASSAGES : TRAIN_PASSAGES + 2000]
        ds = build_dataset(
            "newsgroups20-passages",
            {s: ([p.texts[i] for i in rows], [p.labels[i] for i in rows]) for s, rows in (("train", tr), ("test", te))},
            p.level_names,
        )
        train(ds, "fractal", seed=42).save(d)
    return load_run(d)


def make_items(work: Path, sizes: list[int], run_dir: str | None = None) -> dict:
    """Items and queries as head vectors in ``work`` (``items-<n>.npy``, ``labels-<n>.npy``, ``queries.npy``)."""
    from fractal_embeddings.encoders import Encoder
    from fractal_embeddings.experiments.search import embed_chunked, newsgroup_passages, newsgroup_queries

    run = base_run(work, run_dir)
    p = newsgroup_passages()
    enc = Encoder()
    X = np.asarray(embed_chunked(enc, p.texts), dtype=np.float32)
    coarse = np.asarray([lab[0] for lab in p.labels])
    q = newsgroup_queries(1000)
    np.save(work / "queries.npy", run.transform(np.asarray(enc.embed(q.texts))))
    order = np.random.default_rng(0).permutation(len(X))
    for n in sizes:
        if (work / f"items-{n}.npy").exists():
            continue
        items = np.lib.format.open_memmap(work / f"items-{n}.npy.part", "w+", np.float32, (n, run.record.head.dim))
        labels = np.empty(n, dtype=coarse.dtype)
        rng = np.random.default_rng(n)
        for s in range(0, n, 50_000):
            rows = order[np.arange(s, min(n, s + 50_000)) % len(X)]
            copy = np.arange(s, min(n, s + 50_000)) // len(X)
            B = X[rows]
            noisy = copy > 0  # copy 0 is the real passage
            if noisy.any():
                scale = NOISE * np.linalg.norm(B[noisy], axis=1, keepdims=True) / np.sqrt(B.shape[1])
                B[noisy] = B[noisy] + rng.standard_normal(B[noisy].shape, dtype=np.float32) * scale
                B[noisy] /= np.linalg.norm(B[noisy], axis=1, keepdims=True)
            items[s : s + len(B)] = run.transform(B)
            labels[s : s + len(B)] = coarse[rows]
        items.flush()
        del items
        os.replace(work / f"items-{n}.npy.part", work / f"items-{n}.npy")
        np.save(work / f"labels-{n}.npy", labels)
    return {"passages": len(X), "queries": len(q.texts), "noise": NOISE}


def _dir_bytes(path: Path, skip: str = "run") -> dict:
    files = {f.name: f.stat().st_size for f in path.iterdir() if f.is_file() and f.name != skip}
    return {
        "vector_bytes": sum(v for k, v in files.items() if k != "index.json"),
        "item_bytes": files.get("index.json", 0),
    }


def child(work: Path, n: int, backend: str, kind: str, layout: str, quantize: str) -> dict:
    """One configuration, in this fresh process: build, save, time and score it."""
    import faiss

    from fractal_embeddings.experiments.search import one_thread
    from fractal_embeddings.runs import load_run

    run = load_run(work / "run") if (work / "run").is_dir() else load_run((work / "run.txt").read_text().strip())
    V = np.load(work / f"items-{n}.npy", mmap_mode="r")
    labels = np.load(work / f"labels-{n}.npy", allow_pickle=False)
    n_q, n_timed = QDRANT_QUERIES if backend == "qdrant" else (N_QUERIES, N_TIMED)
    Q = np.load(work / "queries.npy")[:n_q]
    texts, lab_rows = [f"n{i}" for i in range(n)], [[str(c)] for c in labels]
    out = Path(tempfile.mkdtemp(dir=work))
    t0 = time.perf_counter()
    searches: dict = {}
    if backend == "faiss-binary":  # sign bits of the first block and of the full vector, Hamming distance
        ixs = {}
        for d in (64, 256):
            ixs[d] = faiss.IndexBinaryFlat(d)
            for s in range(0, n, 65_536):
                ixs[d].add(np.packbits(np.asarray(V[s : s + 65_536, :d]) > 0, axis=1))
        build_s = time.perf_counter() - t0
        for d, ix in ixs.items():
            faiss.write_index_binary(ix, str(out / f"bits-{d}.faiss"))
            searches[f"zoom@{d}"] = lambda q, d=d: ixs[d].search(np.packbits(q[:, :d] > 0, axis=1), K)[1]
    else:
        from fractal_embeddings.index import QdrantIndex, QdrantTarget, ZoomIndex

        hnsw = HNSW if kind == "hnsw" else {}
        if backend == "qdrant":
            target = QdrantTarget("scale", path=str(out / "qdrant"))
            ix = QdrantIndex.build(
                run, texts, labels=lab_rows, level_names=["subject"], vectors=V, target=target, kind=kind, **hnsw
            )
        else:
            opts = {"layout": layout, "quantize": quantize, **hnsw}
            ix = ZoomIndex(run, kind=kind, level_names=["subject"], **opts)
            for s in range(0, n, 65_536):  # the corpus streamed in batches, as `fractal index build` does
                ix.add(texts[s : s + 65_536], labels=lab_rows[s : s + 65_536], vectors=V[s : s + 65_536])
        build_s = time.perf_counter() - t0
        ix.save(out / "index")
        for m in MODES:
            key = f"{m['mode']}@{m['zoom']}"
            searches[key] = lambda q, m=m: (
                ix.search(q, K, m["zoom"], mode=m["mode"], candidates=m.get("candidates")).rows
            )
    sizes = _dir_bytes(out / "index") if (out / "index").is_dir() else _dir_bytes(out)
    if backend == "qdrant":
        sizes["vector_bytes"] = sum(f.stat().st_size for f in (out / "qdrant").rglob("*") if f.is_file())
    truth_file = work / f"truth-{n}.npz"
    exact = not truth_file.exists()
    truth = {} if exact else dict(np.load(truth_file))
    result = {"n": n, "backend": backend, "kind": kind, "layout": layout, "quantize": quantize}
    result |= {"build_s": round(build_s, 2), **{k: round(v / n, 1) for k, v in sizes.items()}, "modes": {}}
    for key, search in searches.items():
        rows = search(Q)
        if exact:
            truth[key] = rows
        ref = truth.get(key if key.startswith("zoom") else "zoom@256")
        lat = []
        with one_thread():
            search(Q[:2])
            for q in Q[:n_timed]:
                t = time.perf_counter_ns()
                search(q[None, :])
                lat.append((time.perf_counter_ns() - t) / 1e3)
        recall = (
            None if ref is None else float(np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, ref, strict=False)]))
        )
        result["modes"][key] = {
            "queries": len(Q),
            "timed": len(lat),
            "p50_us": round(float(np.median(lat)), 1),
            "p99_us": round(float(np.percentile(lat, 99)), 1),
            "recall@10": None if recall is None else round(recall, 4),
        }
    if exact:
        np.savez(truth_file, **truth)
    result["peak_rss_mb"] = peak_rss_mb()
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--out", default=str(ROOT / "results" / "scale" / "index_cost.json"))
    ap.add_argument("--work", default=None, help="where items and temporary indexes go (default: a temp dir)")
    ap.add_argument("--run", default=None, help="a trained run whose head makes the items (default: train one)")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        w, n, backend, kind, layout, quantize = a.child
        print(json.dumps(child(Path(w), int(n), backend, kind, layout, quantize)))
        return
    from fractal_embeddings.atomic import atomic_write_bytes
    from fractal_embeddings.experiments.latency import machine_info
    from fractal_embeddings.records import canonical_json

    work = Path(a.work or tempfile.mkdtemp(prefix="fractal-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    items = make_items(work, a.sizes, a.run)
    if a.run:
        (work / "run.txt").write_text(str(Path(a.run).resolve()))
    points = []
    for n in a.sizes:
        for backend, kind, layout, quantize, cap in CONFIGS:
            if cap is not None and n > cap:
                continue
            cmd = [sys.executable, __file__, "--child", str(work), str(n), backend, kind, layout, quantize]
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise SystemExit(f"scale: {backend} {kind} {layout} {quantize} at {n:,} failed:\n{r.stderr[-2000:]}")
            p = json.loads(r.stdout.strip().splitlines()[-1])
            points.append(p)
            lat = " ".join(f"{k} {v['p50_us'] / 1000:.2f}ms r{v['recall@10']}" for k, v in p["modes"].items())
            print(
                f"{n:>9,} {backend:>12} {kind:>4} {layout:>13} {quantize:>6}: build {p['build_s']:7.1f}s "
                f"peak {p['peak_rss_mb']:7.0f}MB {p['vector_bytes']:7.1f}B/item | {lat}",
                flush=True,
            )
    head = "the run given" if a.run else f"trained on {TRAIN_PASSAGES:,} of the passages, seed 42"
    doc = {
        "schema": "fractal-embeddings/index-cost/1",
        "items": {
            "description": (
                f"{items['passages']:,} real 20 Newsgroups passages (MiniLM-L6) in a seeded order; past that, "
                f"seeded Gaussian perturbations of them (std {NOISE} x norm / sqrt(dim)), all through one "
                f"fractal head ({head})"
            ),
            "queries": N_QUERIES,
            "qdrant_queries": list(QDRANT_QUERIES),
            "timed_queries": N_TIMED,
            "noise": NOISE,
        },
        "hnsw": HNSW,
        "k": K,
        "machine": machine_info(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "points": points,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, canonical_json(doc).encode())
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
