"""``latency``: what a shorter prefix buys at query time.

For every prefix length (64/128/192/256) and index type -- exact (FAISS ``IndexFlatIP``) and HNSW
(``IndexHNSWFlat``, inner product, ``M`` = 32, ``efConstruction`` = 80, ``efSearch`` swept over
16..512) -- on two corpora:

* ``clinc150``: the 10,000 capped CLINC150 training rows through a ``fractal`` head trained here
  (seed 42, stored beside the measurements), queried with its test rows;
* ``synthetic-100k``: 100,000 random unit vectors (queries: 1,000 more), seeded.

Each prefix is re-normalised (cosine). Measured with one FAISS thread: per-query latency at batch 1
(p50, p99 over ``QUERIES_B1`` queries) and per-batch latency at batch 64 (p50, p99), and recall@10
against exact search on the same prefix. The HNSW comparison across lengths is made at matched
quality: for each length the fastest efSearch with recall@10 >= 0.95. Output:
``<results>/latency/latency.json`` (canonical JSON) + the trained run. ``--quick``: 2,000 real
and 5,000 synthetic vectors, fewer queries.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import LATENCY_NAME, LATENCY_RESULT_FILE, TARGET_RECALL, matched, matched_ratio  # noqa: F401 - re-exported
from ..evaluation import unit_rows as _unit
from .sweep import RunSpec

NAME = LATENCY_NAME
RESULT_FILE = LATENCY_RESULT_FILE
SCHEMA = "fractal-embeddings/latency/1"
HNSW = {"M": 32, "efConstruction": 80}
EF_SEARCH = (16, 32, 64, 128, 256, 512)
FULL = {"real_rows": 10_000, "synthetic_rows": 100_000, "queries_b1": 300, "batches_b64": 20}
QUICK: dict[str, Any] = {"real_rows": 2_000, "synthetic_rows": 5_000, "queries_b1": 100, "batches_b64": 5}


def machine_info() -> dict:
    """What a measurement file says of the machine it was measured on (cores, processor, Python, FAISS)."""
    import faiss

    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
    }


def model_spec(quick: bool) -> RunSpec:
    cap = {"train": 2_000, "val": 400, "test": 600} if quick else {"train": 10_000, "test": 2_000}
    return RunSpec(NAME, "clinc150", "fractal", 42, cap=cap)


def _timings(index: Any, queries: np.ndarray, k: int, n_b1: int, n_b64: int) -> dict:
    """p50/p99 microseconds: per query at batch 1, per batch at batch 64."""
    b1 = []
    for q in queries[:n_b1]:
        t = time.perf_counter_ns()
        index.search(q[None, :], k)
        b1.append((time.perf_counter_ns() - t) / 1e3)
    b64 = []
    for s in range(n_b64):
        batch = queries[(s * 64) % max(len(queries) - 64, 1) :][:64]
        t = time.perf_counter_ns()
        index.search(batch, k)
        b64.append((time.perf_counter_ns() - t) / 1e3)
    pct = lambda v, p: round(float(np.percentile(v, p)), 1)  # noqa: E731
    return {"b1_p50_us": pct(b1, 50), "b1_p99_us": pct(b1, 99), "b64_p50_us": pct(b64, 50), "b64_p99_us": pct(b64, 99)}


def measure(
    corpus: np.ndarray,
    queries: np.ndarray,
    name: str,
    block_dim: int,
    cfg: dict,
    log: Callable[[str], None] = print,
    k: int = 10,
) -> list[dict]:
    """Every (prefix, index type, efSearch) measurement of one corpus."""
    import faiss

    out = []
    for d in range(block_dim, corpus.shape[1] + 1, block_dim):
        C, Q = _unit(corpus[:, :d]), _unit(queries[:, :d])
        faiss.omp_set_num_threads(1)
        flat = faiss.IndexFlatIP(d)
        flat.add(C)
        truth = flat.search(Q, k)[1]
        row = {"corpus": name, "n": len(C), "dims": d, "kind": "flat", "ef_search": None, "recall@10": 1.0}
        out.append({**row, **_timings(flat, Q, k, cfg["queries_b1"], cfg["batches_b64"])})
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is not what is measured
        t0 = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(d, HNSW["M"], faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW["efConstruction"]
        hnsw.add(C)
        build_s = round(time.perf_counter() - t0, 2)
        faiss.omp_set_num_threads(1)
        for ef in EF_SEARCH:
            hnsw.hnsw.efSearch = ef
            found = hnsw.search(Q, k)[1]
            recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))
            out.append(
                {
                    "corpus": name,
                    "n": len(C),
                    "dims": d,
                    "kind": "hnsw",
                    "ef_search": ef,
                    "recall@10": round(recall, 4),
                    "build_s": build_s,
                    **_timings(hnsw, Q, k, cfg["queries_b1"], cfg["batches_b64"]),
                }
            )
        log(
            f"latency {name} {d}d: flat p50 {out[-1 - len(EF_SEARCH)]['b1_p50_us']} us, "
            f"hnsw ef{EF_SEARCH[-1]} p50 {out[-1]['b1_p50_us']} us (recall {out[-1]['recall@10']})"
        )
    return out


def _real_vectors(root: Path, quick: bool, log: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray, str]:
    """The CLINC150 corpus and queries through a fractal head (trained once, kept in the store)."""
    from ..encoders import embed_split
    from ..runs import load_run
    from ..store import RunStore
    from .sweep import load_spec_dataset, run_sweep, shared_encoder

    spec = model_spec(quick)
    store = RunStore(root)
    if not store.has(spec.key):
        run_sweep([spec], store, log=log, progress=False)
    run = load_run(store.path(spec.key))
    ds, enc = load_spec_dataset(spec), shared_encoder(spec.encoder)
    corpus = run.transform(embed_split(enc, ds.split("train")))
    queries = run.transform(embed_split(enc, ds.split("test")))
    return corpus, queries, run.record.run_id


def run(root: str | Path, quick: bool = False, log: Callable[[str], None] = print) -> Path:
    """Measure and write ``<root>/latency.json``; returns its path."""

    from ..atomic import atomic_write_bytes
    from ..records import canonical_json

    root = Path(root)
    path = root / RESULT_FILE
    if path.is_file():  # resumable like the training grids: a finished measurement is kept
        log(f"latency: {path} already measured; delete it to measure again")
        return path
    cfg = QUICK if quick else FULL
    corpus, queries, run_id = _real_vectors(root, quick, log)
    rows = measure(corpus[: cfg["real_rows"]], queries, "clinc150", 64, cfg, log)
    rng = np.random.default_rng(0)
    synth = rng.standard_normal((cfg["synthetic_rows"] + 1000, corpus.shape[1]), dtype=np.float32)
    rows += measure(synth[:-1000], synth[-1000:], f"synthetic-{cfg['synthetic_rows'] // 1000}k", 64, cfg, log)
    record = {
        "schema": SCHEMA,
        "experiment": NAME,
        "quick": quick,
        "model_run": run_id,
        "k": 10,
        "hnsw": HNSW,
        "ef_search": list(EF_SEARCH),
        "target_recall": TARGET_RECALL,
        "search_threads": 1,
        "machine": machine_info(),
        "config": cfg,
        "results": rows,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(path, canonical_json(record).encode())
    log(f"latency: {len(rows)} measurements -> {path}")
    return path
