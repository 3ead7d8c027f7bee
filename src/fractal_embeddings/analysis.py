"""Analysis of experiment results: pure functions of numbers already measured or recorded.

Both the experiments and the report use these, so the report never imports an experiment module
to analyse its results:

* :func:`routing_curve`: adaptive routing on a mixed coarse/fine workload vs MRL at full length
  (the ``pareto`` experiment, computed from the ``retrieval`` run records);
* :func:`matched` / :func:`matched_ratio`: HNSW at matched quality in the ``latency``
  measurements (the fastest efSearch reaching a recall target), and the longest/shortest prefix
  latency ratio. ``LATENCY_NAME`` / ``LATENCY_RESULT_FILE`` say where those measurements are
  stored (``<results>/<LATENCY_NAME>[-quick]/<LATENCY_RESULT_FILE>``);
* :func:`fastest_at_recall`: in the ``search`` measurements (``SEARCH_NAME`` / ``SEARCH_RESULT_FILE``),
  the fastest configuration of a search mode reaching a recall target.

Nothing here trains, encodes or reads a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# ------------------------------------------------------------------ routing (pareto)
#: The coarse-query fractions of a routing curve: 0, 0.05, ..., 1.
ALPHAS = tuple(np.round(np.linspace(0, 1, 21), 2))


def routing_curve(
    coarse_short: float,
    fine_full: float,
    mrl_coarse: float,
    mrl_fine: float,
    block_dim: int,
    n_blocks: int,
    alphas: Sequence[float] = ALPHAS,
) -> dict:
    """Accuracy and mean dims of routing vs MRL at full length over ``alphas``; ``wins`` = the alpha
    interval where routing is at least as accurate (``None``: nowhere) and ``crossover`` = the smallest
    alpha from which routing wins up to alpha = 1 (0 when it never loses; ``None`` when it does not
    win at alpha = 1)."""
    a = np.asarray(alphas, dtype=float)
    full = n_blocks * block_dim
    route = a * coarse_short + (1 - a) * fine_full
    mrl = a * mrl_coarse + (1 - a) * mrl_fine
    gap0, gap1 = fine_full - mrl_fine, coarse_short - mrl_coarse  # routing - mrl at alpha = 0 and 1
    # routing - mrl is linear in alpha: routing is at least as accurate on one interval of [0, 1] (or none)
    if gap0 >= 0 and gap1 >= 0:
        wins = (0.0, 1.0)
    elif gap0 < 0 and gap1 < 0:
        wins = None
    else:
        root = float(gap0 / (gap0 - gap1))
        wins = (root, 1.0) if gap1 > gap0 else (0.0, root)
    cross = wins[0] if wins and wins[1] == 1.0 else None
    return {
        "alpha": a.tolist(),
        "route_acc": route.tolist(),
        "route_dims": (a * block_dim + (1 - a) * full).tolist(),
        "mrl_acc": mrl.tolist(),
        "mrl_dims": full,
        "wins": wins,
        "crossover": cross,
    }


# ------------------------------------------------------------------ latency
LATENCY_NAME = "latency"  # the latency experiment's name, and its store's folder
LATENCY_RESULT_FILE = "latency.json"  # its measurements, in that folder
TARGET_RECALL = 0.95  # matched quality: recall@10 against exact search on the same prefix


def matched(rows: list[dict], corpus: str, kind: str, dims: int, target: float = TARGET_RECALL) -> dict | None:
    """The fastest (batch-1 p50) measurement of an index at a length with recall@10 >= target."""
    ok = [
        r
        for r in rows
        if r["corpus"] == corpus and r["kind"] == kind and r["dims"] == dims and r["recall@10"] >= target
    ]
    return min(ok, key=lambda r: r["b1_p50_us"]) if ok else None


def matched_ratio(rows: list[dict], corpus: str, target: float = TARGET_RECALL) -> dict | None:
    """HNSW at matched quality (:func:`matched`): the longest/shortest batch-1 p50 ratio, and the
    same ratio for exact search."""

    def best(kind: str, d: int) -> dict | None:
        return matched(rows, corpus, kind, d, target)

    dims = sorted({r["dims"] for r in rows if r["corpus"] == corpus})
    if len(dims) < 2:
        return None
    lo, hi = dims[0], dims[-1]
    out: dict[str, Any] = {"short": lo, "long": hi}
    for kind in ("flat", "hnsw"):
        a, b = best(kind, lo), best(kind, hi)
        out[kind] = (
            None
            if a is None or b is None
            else {"ratio": round(b["b1_p50_us"] / a["b1_p50_us"], 2), "short": a, "long": b}
        )
    return out


# ------------------------------------------------------------------ search modes
SEARCH_NAME = "search"  # the search experiment's name, and its store's folder
SEARCH_RESULT_FILE = "search.json"  # its measurements, in that folder


def fastest_at_recall(
    rows: list[dict], corpus: str, method: str, mode: str, target: float = TARGET_RECALL, backend: str = "faiss"
) -> dict | None:
    """The ``search`` measurement of ``mode`` (any index kind and candidates) with the lowest batch-1
    median latency among those with recall@10 >= ``target`` against exact full-vector search."""
    ok = [
        r
        for r in rows
        if (r["corpus"], r["method"], r["mode"], r["backend"]) == (corpus, method, mode, backend)
        and r["recall@10"] >= target
        and (mode != "zoom" or r["zoom"] == max(x["zoom"] for x in rows))
    ]
    return min(ok, key=lambda r: r["b1_p50_us"]) if ok else None
