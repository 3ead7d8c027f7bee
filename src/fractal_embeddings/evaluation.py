"""Prefix k-NN evaluation and steerability.

Leave-one-out k-NN (default k=5) with cosine similarity on L2-normalised vectors:

* neighbours of row i are the k rows j != i with the highest similarity; equal similarities are
  ordered by row index (lower first);
* the prediction is the majority label among them; a tie between labels goes to the tied label of
  the nearest neighbour.

``prefix_knn_accuracy`` scores every prefix j (the first j blocks) at every level; neighbours are
found once per prefix and shared by the levels. The search is exact and vectorised: blocked matrix
products + ``torch.topk``.

:func:`score` is what a run record holds for a set of embeddings (accuracy per prefix and level +
steerability); :func:`score_untrained` scores the raw encoder truncated to the same prefixes (the
record's ``baseline``); :func:`eval_block` describes the scored rows; :func:`compare_scores` checks a
re-score against a record.

Steerability metrics (``A[j, l]`` = accuracy of prefix j at level l; c = coarsest level, f = finest,
B = number of prefixes; see :func:`steerability_metrics`):

* ``S = (A[1,c] - A[B,c]) + (A[B,f] - A[1,f])``: coarse accuracy lost by zooming in plus fine
  accuracy gained. > 0 when the short prefix is coarse and the full vector fine; ~0 for MRL.
* ``S_AUC``: the signed area between the coarse and the fine curve, ``A[., c] - A[., f]``,
  over prefixes (trapezoid rule on the prefix axis rescaled to [0, 1]). Large when the coarse
  level is easier than the fine one at every length, so read it next to the untrained encoder's.
* ``S_gap = A[1,c] - A[1,f]``: the coarse-minus-fine gap at the shortest prefix.
* ``S_mono``: fraction of the 2(B-1) prefix steps that go the steerable way: coarse accuracy does
  not rise from j to j+1, fine accuracy does not fall. 1.0 = monotone zoom.
* one prefix (B = 1, a one-block head): no zoom, so ``S = 0``, ``S_AUC = S_gap`` and ``S_mono`` is
  ``None`` (``null`` in a record: there is no step).
* with >= 3 levels, ``S_<a><b>`` is ``S`` computed between levels a and b for each pair; ``S_02``
  (coarsest vs finest of three) equals ``S``.

The test rows scored are, by default, a stratified sample (by the finest level) of up to 2,000
rows drawn with a fixed evaluation seed, so every method and training seed of a dataset is scored on
the same rows (:func:`stratified_sample`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .data.splits import stratified_sample  # noqa: F401  (re-exported: the evaluation sample)
from .records import RunRecord, accuracy_array  # noqa: F401  (accuracy_array re-exported: the record form's inverse)

BLOCK_ROWS = 2048


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows L2-normalised (float32, C-contiguous: what FAISS takes); a zero row stays zero."""
    X = np.asarray(X, dtype=np.float32)
    return np.ascontiguousarray(X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12))


def knn_neighbours(X: np.ndarray, k: int = 5, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``(n, k)`` indices of each row's k nearest other rows (cosine), nearest first."""
    X = unit_rows(X)
    n = X.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1] for leave-one-out k-NN; got k={k} with n={n} rows")
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        sims = X[start:stop] @ X.T
        rows = np.arange(stop - start)
        sims[rows, rows + start] = -np.inf  # leave one out
        # the k largest per row (torch.topk: ~6x faster than np.argpartition at these shapes, and exact)
        cand = torch.topk(torch.from_numpy(sims), k, dim=1, sorted=False).indices.numpy()
        cs = np.take_along_axis(sims, cand, axis=1)
        order = np.lexsort((cand, -cs), axis=1)  # by similarity desc, then index asc
        out[start:stop] = np.take_along_axis(cand, order, axis=1)
        # a tie at the k-th similarity (e.g. duplicate texts): topk may pick any of the tied rows,
        # so those rows are redone with a full sort to keep "lower index first" exact
        tied = np.flatnonzero((sims >= cs.min(axis=1, keepdims=True)).sum(axis=1) > k)
        for r in tied:
            out[start + r] = np.lexsort((np.arange(n), -sims[r]))[:k]
    return out


def vote(neighbour_labels: np.ndarray) -> np.ndarray:
    """Majority label per row of ``(n, k)`` neighbour labels (nearest first); ties -> nearest."""
    nl = np.asarray(neighbour_labels)
    counts = (nl[:, :, None] == nl[:, None, :]).sum(axis=2)  # votes for the label at each position
    first_best = np.argmax(counts == counts.max(axis=1, keepdims=True), axis=1)
    return nl[np.arange(len(nl)), first_best]


def knn_accuracy(X: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy of one label vector."""
    labels = np.asarray(labels)
    return float((vote(labels[knn_neighbours(X, k)]) == labels).mean())


def prefix_knn_accuracy(
    X: np.ndarray, labels: np.ndarray, block_dim: int = 64, n_blocks: int | None = None, k: int = 5
) -> np.ndarray:
    """``acc[j-1, level]``: leave-one-out k-NN accuracy of prefix j (first ``j * block_dim`` dims).

    ``labels`` is ``(n, n_levels)``; ``n_blocks`` defaults to ``X.shape[1] // block_dim``.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    n_blocks = n_blocks or X.shape[1] // block_dim
    if n_blocks < 1 or n_blocks * block_dim > X.shape[1]:
        raise ValueError(f"{n_blocks} blocks of {block_dim} dims do not fit vectors of {X.shape[1]} dims")
    acc = np.empty((n_blocks, labels.shape[1]))
    for j in range(1, n_blocks + 1):
        nb = knn_neighbours(X[:, : j * block_dim], k)
        for lv in range(labels.shape[1]):
            acc[j - 1, lv] = (vote(labels[nb, lv]) == labels[:, lv]).mean()
    return acc


def steerability(acc: np.ndarray) -> float:
    """``S = (L0@j1 - L0@jmax) + (Lmax@jmax - Lmax@j1)`` from a prefix x level accuracy table."""
    acc = np.asarray(acc)
    return float((acc[0, 0] - acc[-1, 0]) + (acc[-1, -1] - acc[0, -1]))


def steerability_metrics(acc: np.ndarray) -> dict[str, float | None]:
    """``S``, ``S_AUC``, ``S_gap``, ``S_mono`` (and pairwise ``S_ab`` with >= 3 levels); module docstring.

    One prefix (a one-block head) has no zoom: ``S`` (and every ``S_ab``) is 0, ``S_AUC`` = ``S_gap``
    = coarse - fine accuracy of that prefix, and ``S_mono`` is ``None`` (no prefix step to judge;
    ``null`` in a record), so every value is a finite number or ``None``."""
    acc = np.asarray(acc, dtype=float)
    coarse, fine = acc[:, 0], acc[:, -1]
    n = acc.shape[0]
    out: dict[str, float | None] = {"S": steerability(acc)}
    gap = coarse - fine
    out["S_AUC"] = float(np.trapezoid(gap, np.linspace(0.0, 1.0, n))) if n > 1 else float(gap[0])
    out["S_gap"] = float(gap[0])
    if n > 1:
        steps = np.concatenate([np.diff(coarse) <= 1e-12, np.diff(fine) >= -1e-12])
        out["S_mono"] = float(steps.mean())
    else:
        out["S_mono"] = None
    if acc.shape[1] >= 3:
        for a in range(acc.shape[1]):
            for b in range(a + 1, acc.shape[1]):
                out[f"S_{a}{b}"] = steerability(acc[:, [a, b]])
    return {k: None if v is None else round(v, 6) for k, v in out.items()}


def accuracy_dict(acc: np.ndarray, level_names: Sequence[str], block_dim: int) -> dict[str, dict[str, float]]:
    """``{"<dims>": {"<level>": acc}}`` (the run-record form) from ``acc[j-1, level]``."""
    return {
        str((j + 1) * block_dim): {name: round(float(acc[j, lv]), 6) for lv, name in enumerate(level_names)}
        for j in range(acc.shape[0])
    }


def score(E: np.ndarray, labels: np.ndarray, block_dim: int, n_blocks: int, k: int, level_names: Sequence[str]) -> dict:
    """Accuracy dict + steerability metrics of embeddings ``E`` (already restricted to the eval rows)."""
    acc = prefix_knn_accuracy(E, labels, block_dim=block_dim, n_blocks=n_blocks, k=k)
    return {"accuracy": accuracy_dict(acc, level_names, block_dim), "steerability": steerability_metrics(acc)}


def blocks_that_fit(dim: int, block_dim: int, n_blocks: int) -> int:
    """How many of the head's prefixes the raw encoder (``dim`` wide) can be truncated to."""
    return min(n_blocks, dim // block_dim)


def score_untrained(
    X: np.ndarray, labels: np.ndarray, block_dim: int, n_blocks: int, k: int, level_names: Sequence[str]
) -> dict:
    """:func:`score` of the raw encoder vectors truncated to the same prefixes (as many as fit)."""
    blocks = blocks_that_fit(X.shape[1], block_dim, n_blocks)
    return score(X[:, : blocks * block_dim], labels, block_dim, blocks, k, level_names)


def eval_block(split: str, max_rows: int | None, rows: np.ndarray, sample_seed: int, k: int) -> dict:
    """A record's ``config.eval``: the scored split, the sample asked for and drawn, k, the rows' sha256."""
    return {
        "split": split,
        "max_rows": max_rows,
        "n_rows": len(rows),
        "sample_seed": sample_seed,
        "k": k,
        "rows_sha256": hashlib.sha256(np.asarray(rows).astype(np.int64).tobytes()).hexdigest(),
    }


def scored_as_record(record: RunRecord, rescored: dict) -> bool:
    """Whether a re-score used the record's protocol: same split, rows and k."""
    a, b = record.eval.to_dict(), rescored.get("eval", {})
    return all(a.get(key) == b.get(key) for key in ("split", "n_rows", "rows_sha256", "k"))


def _flat_scores(d: dict | None, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in (d or {}).items():
        name = f"{prefix} {key}".strip()
        if isinstance(v, dict):
            out.update(_flat_scores(v, name))
        else:
            out[name] = v
    return out


def compare_scores(record: RunRecord, rescored: dict, tol: float = 1e-9) -> list[str]:
    """Differences between a run record's scores and a re-score of the run
    (:func:`~fractal_embeddings.runs.evaluate`): accuracy, steerability and the untrained baseline's,
    each value equal within ``tol`` (the same rows, k and weights give the same numbers up to float
    rounding). One string per difference, e.g. ``"accuracy 64 domain: record 0.91, re-score 0.66"``;
    ``[]`` when they agree. A re-score on other rows than the record's gives one difference saying so."""
    if not scored_as_record(record, rescored):
        a, b = record.eval.to_dict(), rescored.get("eval", {})
        return [
            f"scored rows: record {a.get('n_rows')} {a.get('split')} rows (k={a.get('k')}), re-score "
            f"{b.get('n_rows')} {b.get('split')} rows (k={b.get('k')})"
        ]
    diffs = []
    for section, mine, theirs in (
        ("accuracy", record.accuracy, rescored.get("accuracy")),
        ("steerability", record.steerability, rescored.get("steerability")),
        ("baseline accuracy", record.baseline.accuracy, (rescored.get("baseline") or {}).get("accuracy")),
        ("baseline steerability", record.baseline.steerability, (rescored.get("baseline") or {}).get("steerability")),
    ):
        a, b = _flat_scores(mine, section), _flat_scores(theirs, section)
        for key in sorted(set(a) | set(b)):
            x: Any = a.get(key)  # numbers, or whatever else a damaged record holds
            y: Any = b.get(key)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            same = abs(x - y) <= tol if numbers else x == y
            if not same:
                mine_s = "missing" if key not in a else x
                theirs_s = "missing" if key not in b else y
                diffs.append(f"{key}: record {mine_s}, re-score {theirs_s}")
    return diffs
