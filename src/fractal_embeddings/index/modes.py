"""Search modes over steerable vectors: ``zoom``, ``funnel`` and ``routed``.

A steerable vector's first block (64 dims by default) carries the coarse label and the whole vector
the fine one. An index (:class:`~fractal_embeddings.index.ZoomIndex` on FAISS,
:class:`~fractal_embeddings.index.qdrant.QdrantIndex` on Qdrant) answers a query in one of three
modes; every score is the cosine of the query's and the item's prefixes at the chosen zoom:

* ``zoom`` (the default): the ``k`` nearest items at one prefix length (``zoom``), from that
  prefix's index: exact with ``kind="flat"``, approximate with ``kind="hnsw"``.
* ``funnel``: a cheap first pass on the first block returns ``candidates`` items (default
  :data:`CANDIDATES_PER_HIT` x ``k``; exact or HNSW like the index), which are re-ranked exactly at
  the zoom (default: the full vector). This is what Matryoshka users do with a short prefix
  (Qdrant's ``prefetch``, Milvus' funnel search); steerable vectors make the first pass a coarse one.
* ``routed``: the query's coarse class is predicted from its first block, and only that class's
  items are searched at the zoom (``route_classes=2``: the runner-up class too when the vote is close,
  i.e. it has at least :data:`ROUTE_CLOSE` of the winner's votes).

How a query's coarse class is predicted
---------------------------------------
By a k-NN vote over the corpus: the ``candidates`` nearest items at the first block vote with their
coarse labels (a tie goes to the label of the nearest tied item, as in the k-NN evaluation and the
explorer's "predicted coarse class"). The run's own coarse classifier was the alternative; the vote
is used because

1. it works for every run: ``mrl`` and ``flat`` runs, fine-tuned runs, heads without classifiers,
   and it puts them on the same footing (an ``mrl`` prefix, trained on fine labels, still votes:
   the measurement shows what routing gets without a coarse prefix);
2. it predicts the corpus's own coarse labels: a corpus labelled with another taxonomy than the
   run's training set (or other class names) is routed by its labels, which a classifier trained
   on the run's classes can't do;
3. its cost is one search of the first block, the pass a funnel makes anyway (an HNSW index makes it
   sub-linear), and it needs nothing besides the index.

Its cost: the vote leans towards large classes, and it needs every item's coarse label (an index
built from a corpus without labels refuses ``routed``).

Everything that can be checked is checked by :func:`plan_search` before a query is encoded: the mode,
``candidates`` (``>= k``; only for ``funnel`` and ``routed``), ``route_classes`` (1 or 2), a funnel
whose zoom is no longer than its first pass, a routed search over items without labels.

This module holds the mode logic shared by the backends: the plan, the vote (:func:`route`), the
exact re-rank of funnel candidates over stored vectors (:func:`rerank`), the per-class exact indexes
the FAISS backend routes to (:class:`ClassPartition`) and the merge of per-class hits
(:func:`merge_top_k`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from ..errors import ZoomIndexError
from ..evaluation import unit_rows
from ..validation import check_int, is_int
from .prefix import RowSubset

__all__ = [
    "CANDIDATES_PER_HIT",
    "MODES",
    "ROUTE_CLOSE",
    "ClassPartition",
    "Route",
    "SearchMode",
    "SearchPlan",
    "check_mode",
    "is_routed",
    "merge_top_k",
    "plan_search",
    "rerank",
    "route",
]


class SearchMode(str, Enum):
    """How an index answers a query (see the module docstring)."""

    ZOOM = "zoom"
    FUNNEL = "funnel"
    ROUTED = "routed"


MODES = tuple(m.value for m in SearchMode)
CANDIDATES_PER_HIT = 10  # default candidates: 10 x k
ROUTE_CLOSE = 0.5  # route_classes=2: the runner-up is searched too with >= half the winner's votes


@dataclass(frozen=True)
class SearchPlan:
    """A checked search request: ``mode``, ``k``, the ``zoom`` the hits are ranked at, the ``first``
    pass's prefix length (the first block), ``candidates`` (funnel: items re-ranked; routed:
    neighbours that vote; zoom: ``None``) and ``route_classes`` (routed: 1 or 2)."""

    mode: SearchMode
    k: int
    zoom: int
    first: int
    candidates: int | None = None
    route_classes: int = 1


def check_mode(mode: object) -> SearchMode:
    """``mode`` as a :class:`SearchMode` (a one-line error naming the modes otherwise)."""
    if isinstance(mode, SearchMode):
        return mode
    if isinstance(mode, str) and mode.strip().lower() in MODES:
        return SearchMode(mode.strip().lower())
    raise ZoomIndexError(f"unknown search mode {mode!r}; use {', '.join(MODES)}")


def is_routed(mode: object) -> bool:
    """Whether ``mode`` names the routed mode (an unknown mode is not; :func:`plan_search` refuses it)."""
    return str(getattr(mode, "value", mode)).strip().lower() == SearchMode.ROUTED.value


def plan_search(
    mode: object,
    k: int,
    zoom: int,
    dims: Sequence[int],
    candidates: int | None = None,
    route_classes: int = 1,
    *,
    has_coarse_labels: bool = True,
) -> SearchPlan:
    """Check a request against an index with prefix lengths ``dims`` (``zoom`` already one of them);
    raise a one-line :class:`~fractal_embeddings.errors.ZoomIndexError` naming the fix, before any work."""
    m = check_mode(mode)
    check_int(k, "k", lo=1, error=ZoomIndexError)
    first = int(dims[0])
    if m is SearchMode.ZOOM:
        if candidates is not None:
            raise ZoomIndexError(
                "candidates applies to the funnel and routed modes; drop --candidates or pick --mode funnel or routed"
            )
        if route_classes != 1:
            raise ZoomIndexError("route_classes applies to the routed mode; drop it or pick --mode routed")
        return SearchPlan(m, int(k), int(zoom), first)
    if candidates is None:
        candidates = CANDIDATES_PER_HIT * int(k)
    if not is_int(candidates) or candidates < k:
        raise ZoomIndexError(
            f"candidates ({candidates!r}) must be an integer >= k ({k}): the first pass must return at least "
            "the k hits asked for; raise --candidates or lower -k"
        )
    if m is SearchMode.FUNNEL:
        if route_classes != 1:
            raise ZoomIndexError("route_classes applies to the routed mode; drop it or pick --mode routed")
        if zoom <= first:
            longer = ", ".join(str(d) for d in dims if d > first) or "none: this head has one block"
            raise ZoomIndexError(
                f"a funnel re-ranks its {first}-d first pass at a longer prefix, not at {zoom} dims; "
                f"use --zoom fine (or a longer prefix: {longer})"
            )
    else:
        if route_classes not in (1, 2) or not is_int(route_classes):
            raise ZoomIndexError(
                f"route_classes must be 1 or 2 (2: the runner-up too when close), got {route_classes!r}"
            )
        if not has_coarse_labels:
            raise ZoomIndexError(
                "routed search needs the coarse label of every item, and this index has items without labels; "
                "build it from a labelled corpus (a dataset, or a file with --levels) or use --mode zoom or funnel"
            )
    return SearchPlan(m, int(k), int(zoom), first, int(candidates), int(route_classes))


# ------------------------------------------------------------------ routing
@dataclass(frozen=True)
class Route:
    """Where a routed query was sent: the predicted coarse class (``label``, of level ``level``) with
    its ``votes`` out of ``voters`` neighbours, the ``runner_up`` (and its votes) and the ``classes``
    searched (the winner, and the runner-up when it was close and ``route_classes`` is 2)."""

    level: str
    label: str
    votes: int
    voters: int
    runner_up: str | None
    runner_up_votes: int
    classes: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "level": self.level,
            "label": self.label,
            "votes": self.votes,
            "voters": self.voters,
            "runner_up": self.runner_up,
            "runner_up_votes": self.runner_up_votes,
            "classes": list(self.classes),
        }


def route(
    neighbour_labels: Sequence[str], level: str = "", route_classes: int = 1, close: float = ROUTE_CLOSE
) -> Route:
    """The k-NN vote of a query's neighbours (nearest first): the majority label (a tie goes to the
    label of the nearest tied neighbour), the runner-up likewise, and the classes to search."""
    labels = [str(x) for x in neighbour_labels]
    if not labels:
        raise ZoomIndexError("no neighbours to vote: the index is empty")
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    first_seen = {lab: labels.index(lab) for lab in counts}
    ranked = sorted(counts, key=lambda lab: (-counts[lab], first_seen[lab]))
    top = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    second_votes = counts[second] if second is not None else 0
    classes: tuple[str, ...] = (top,)
    if route_classes == 2 and second is not None and second_votes >= close * counts[top]:
        classes = (top, second)
    return Route(level, top, counts[top], len(labels), second, second_votes, classes)


# ------------------------------------------------------------------ funnel
def rerank(
    Q: np.ndarray,
    candidates: np.ndarray,
    vectors: np.ndarray | Callable[[np.ndarray], np.ndarray],
    k: int,
    *,
    chunk_floats: int = 1 << 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact re-rank of each query's candidate rows: the cosine of the query prefix ``Q[i]`` (``(n, d)``)
    with the ``d``-dim prefixes of ``vectors[candidates[i]]`` (``candidates``: ``(n, c)`` rows, ``-1``
    = none; ``vectors``: the stored vectors, or a function of an array of rows giving theirs). Returns
    ``(scores, rows)``, each ``(n, k)``, best first (equal scores: lower row first),
    padded with ``-inf`` / ``-1`` where a query had fewer than ``k`` candidates. Vectorised over
    queries in chunks of at most ``chunk_floats`` gathered floats."""
    Q = unit_rows(Q)
    d = Q.shape[1]
    C = np.sort(np.asarray(candidates, dtype=np.int64), axis=1)  # by row: a stable sort keeps ties lower-row-first
    n, c = C.shape
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    rows = np.full((n, k), -1, dtype=np.int64)
    step = max(1, chunk_floats // max(1, c * d))
    for s in range(0, n, step):
        Cs = C[s : s + step]
        at = np.maximum(Cs, 0)
        G = (  # (m, c, d)
            np.asarray(vectors(at.ravel()), dtype=np.float32).reshape(*at.shape, -1)[:, :, :d]
            if callable(vectors)
            else np.asarray(vectors, dtype=np.float32)[at, :d]
        )
        norms = np.maximum(np.linalg.norm(G, axis=2), 1e-12)
        S = np.einsum("mcd,md->mc", G, Q[s : s + step]) / norms
        S = np.where(Cs >= 0, S, -np.inf).astype(np.float32)
        order = np.argsort(-S, axis=1, kind="stable")[:, :k]
        top_s = np.take_along_axis(S, order, axis=1)
        top_r = np.where(np.isfinite(top_s), np.take_along_axis(Cs, order, axis=1), -1)
        scores[s : s + step, : order.shape[1]] = top_s
        rows[s : s + step, : order.shape[1]] = top_r
    return scores, rows


def merge_top_k(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several ``(scores, rows)`` hit lists of one query (1-d arrays; row ``-1`` =
    none), best first, equal scores by lower row."""
    s = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.float32)
    r = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    keep = r >= 0
    s, r = s[keep], r[keep]
    order = np.lexsort((r, -s))[:k]
    out_s = np.full(k, -np.inf, dtype=np.float32)
    out_r = np.full(k, -1, dtype=np.int64)
    out_s[: len(order)] = s[order]
    out_r[: len(order)] = r[order]
    return out_s, out_r


class ClassPartition:
    """The rows of each coarse class of an index and, per prefix length, an exact FAISS index
    (``IndexFlatIP`` of the L2-normalised prefixes) of each class's items, built on first use from
    ``vectors`` (``None``: the index scans the classes' rows itself): a routed search over a flat
    index scans only the classes it is sent to."""

    def __init__(self, labels: Sequence[str], vectors: np.ndarray | None):
        self.labels = np.asarray([str(x) for x in labels], dtype=object)
        self.vectors = vectors
        by_class: dict[str, list[int]] = {}
        for r, lab in enumerate(self.labels):
            by_class.setdefault(lab, []).append(r)
        self.rows: dict[str, np.ndarray] = {lab: np.asarray(rs, dtype=np.int64) for lab, rs in by_class.items()}
        self._indexes: dict[tuple[str, int], object] = {}
        self._subsets: dict[tuple[str, ...], RowSubset] = {}

    def subset(self, classes: tuple[str, ...]) -> RowSubset:
        """The rows of these classes (with their FAISS ID selector), built once per set of classes."""
        sub = self._subsets.get(classes)
        if sub is None:
            empty = np.zeros(0, dtype=np.int64)
            sub = self._subsets[classes] = RowSubset(np.concatenate([self.rows.get(c, empty) for c in classes]))
        return sub

    def index(self, label: str, d: int) -> Any:
        """The exact index of class ``label``'s ``d``-dim prefixes (built once)."""
        import faiss

        key = (label, d)
        ix = self._indexes.get(key)
        if ix is None:
            if self.vectors is None:
                raise ZoomIndexError("this class partition holds no vectors; search its rows in the index")
            ix = faiss.IndexFlatIP(d)
            rows = self.rows.get(label)
            if rows is not None and len(rows):
                ix.add(unit_rows(self.vectors[rows, :d]))
            self._indexes[key] = ix
        return ix

    def search(self, Q: np.ndarray, d: int, k: int, label: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items of class ``label`` for each query prefix (``(n, d)``): ``(scores, rows)``
        in index rows, ``(n, k)``, padded with ``-inf`` / ``-1``."""
        rows = self.rows.get(label, np.zeros(0, dtype=np.int64))
        n = len(Q)
        if len(rows) == 0:
            return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)
        kk = min(k, len(rows))
        D, found = self.index(label, d).search(unit_rows(Q), kk)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        out = np.full((n, k), -1, dtype=np.int64)
        scores[:, :kk] = np.where(found >= 0, D, -np.inf)
        out[:, :kk] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        return scores, out
