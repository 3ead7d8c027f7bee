"""Retrieval evaluation per prefix and level: the zoom in a search setting.

Queries are the scored test rows, the corpus is the training split; a corpus item is *relevant* to
a query at level l when it has the query's class at level l. For every prefix j (the first j
blocks, re-normalised) and every level:

* ``R@k`` (k = 1, 10): the fraction of queries with at least one relevant item among the k nearest
  corpus items (cosine; for class-level relevance this is the usual "hit rate" reading of recall);
* ``mAP@10``: mean over queries of ``AP@10 = sum_{i<=10} P@i * rel_i / min(R, 10)``, R = number of
  relevant items in the corpus.

The search is exact (a FAISS flat inner-product index per prefix).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import FractalError
from .evaluation import unit_rows as _unit
from .extras import require

KS = (1, 10)
MAP_K = 10


def exact_search(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(n_queries, k)`` of the k most cosine-similar corpus rows, nearest first."""
    require("index", "exact search (retrieval metrics)")
    import faiss

    if k > len(corpus):
        raise FractalError(f"k={k} exceeds the corpus size {len(corpus)}")
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(_unit(corpus))
    return index.search(_unit(queries), k)[1]


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int] = KS, map_k: int = MAP_K) -> dict:
    """``hits[q, i]`` = the i-th result of query q is relevant; ``n_relevant[q]`` = relevant items."""
    hits = np.asarray(hits, dtype=bool)
    out = {f"R@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}
    h = hits[:, :map_k].astype(np.float64)
    precision = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    denom = np.minimum(np.asarray(n_relevant, dtype=np.float64), map_k)
    ap = np.where(denom > 0, (precision * h).sum(axis=1) / np.maximum(denom, 1), 0.0)
    out[f"mAP@{map_k}"] = float(ap.mean())
    return out


def prefix_retrieval(
    Q: np.ndarray,
    q_labels: np.ndarray,
    C: np.ndarray,
    c_labels: np.ndarray,
    block_dim: int,
    n_blocks: int,
    level_names: Sequence[str],
    ks: Sequence[int] = KS,
    map_k: int = MAP_K,
) -> dict:
    """``{dims: {level name: {"R@1", "R@10", "mAP@10"}}}`` for every prefix of ``Q`` against ``C``."""
    q_labels, c_labels = np.asarray(q_labels), np.asarray(c_labels)
    if Q.shape[1] < n_blocks * block_dim or C.shape[1] != Q.shape[1]:
        raise FractalError(
            f"queries have {Q.shape[1]} dims and the corpus {C.shape[1]}; both need {n_blocks} x {block_dim}"
        )
    depth = max(*ks, map_k)
    counts = [
        dict(zip(*np.unique(c_labels[:, lv], return_counts=True), strict=True)) for lv in range(c_labels.shape[1])
    ]
    out: dict[str, dict] = {}
    for j in range(1, n_blocks + 1):
        d = j * block_dim
        found = exact_search(Q[:, :d], C[:, :d], depth)
        out[str(d)] = {}
        for lv, name in enumerate(level_names):
            hits = c_labels[found, lv] == q_labels[:, lv][:, None]
            n_rel = np.array([counts[lv].get(c, 0) for c in q_labels[:, lv]])
            out[str(d)][name] = {m: round(v, 6) for m, v in ranking_metrics(hits, n_rel, ks, map_k).items()}
    return out
