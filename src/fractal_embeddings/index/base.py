"""What every zoom index shares, whatever stores its vectors: the results of a search (:class:`Hit`,
:class:`SearchResults`), a run's identity (:func:`run_identity`, :func:`describe_run`) and
:class:`RunIndex`, the base of :class:`~fractal_embeddings.index.zoom.ZoomIndex` (FAISS) and
:class:`~fractal_embeddings.index.qdrant.QdrantIndex` (Qdrant).

:meth:`RunIndex.search` is the one search template: it checks the request (``ef_search``, the mode,
``k``, the zoom, ``candidates``, ``route_classes``, an empty index, the queries: no empty or blank
text, vectors of the right width) before any query is encoded, encodes text queries with the run's
encoder and head, and hands the query prefixes and the checked :class:`~fractal_embeddings.index.modes.SearchPlan`
to the backend's :meth:`RunIndex.lookup`, the only part a backend implements.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..encoders import ROLES
from ..errors import ZoomIndexError
from ..heads import Head
from ..records import RunRecordError
from ..runs import Run, load_run
from ..validation import check_int, check_query, is_int
from .folder import REBUILD_FIX, RUN_DIR
from .modes import Route, SearchMode, SearchPlan, is_routed, plan_search

__all__ = ["Hit", "RunIndex", "SearchResults", "as_run", "describe_run", "load_saved_run", "run_identity"]


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Hit:
    """One search hit: rank (1 = nearest), row in the index, id, cosine score, and what was stored."""

    rank: int
    row: int
    id: Any
    score: float
    text: str
    labels: dict[str, str] | None = None
    payload: Any = None

    def as_dict(self) -> dict:
        return {
            "rank": self.rank,
            "id": self.id,
            "score": self.score,
            "text": self.text,
            "labels": self.labels,
            "payload": self.payload,
        }


@dataclass
class SearchResults:
    """Hits of a batch of queries (a single query is a batch of one).

    ``rows`` / ``scores`` are ``(n_queries, k)`` arrays (row ``-1``, score ``-inf``: no hit, which an
    approximate index, a routed search into a small class or a short funnel can return);
    ``results[i]`` is the list of :class:`Hit` of query i. ``mode`` is the search mode,
    ``candidates`` the first pass's size (funnel, routed) and ``routes[i]`` where routed query i was
    sent (:class:`~fractal_embeddings.index.modes.Route`; ``None`` in the other modes)."""

    zoom: int
    rows: np.ndarray
    scores: np.ndarray
    hits: list[list[Hit]] = field(repr=False)
    mode: str = "zoom"
    candidates: int | None = None
    routes: list[Route] | None = field(default=None, repr=False)

    @property
    def ids(self) -> list[list]:
        return [[h.id for h in hs] for hs in self.hits]

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> list[Hit]:
        return self.hits[i]

    def __iter__(self) -> Iterator[list[Hit]]:
        return iter(self.hits)


# ------------------------------------------------------------------ helpers


def as_run(run: Run | str | os.PathLike) -> Run:
    """A :class:`~fractal_embeddings.runs.Run`, or the run loaded from a directory."""
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, os.PathLike)):
        return load_run(run)
    raise ZoomIndexError(f"expected a run directory or a Run, got {type(run).__name__}")


def run_identity(run: Run) -> dict:
    """What makes a run's vectors comparable with another's: run id, encoder, head dims."""
    rec = run.record
    h, enc = rec.head, rec.encoder
    return {
        "run_id": rec.run_id,
        "method": rec.method,
        "seed": rec.seed,
        "dataset": rec.dataset.name,
        "levels": rec.level_names,
        "encoder_name": enc.name,
        "encoder_model": enc.model,
        "encoder_fingerprint": enc.fingerprint,
        "encoder_dim": enc.dim,
        "n_blocks": h.n_blocks,
        "block_dim": h.block_dim,
        "head_kind": h.kind,
    }


def describe_run(ident: dict) -> str:
    """``run <id> (encoder <name> <fingerprint>)``: a run identity in an error message."""
    return f"run {ident['run_id']} (encoder {ident['encoder_name']} {str(ident['encoder_fingerprint'])[:12]})"


def load_saved_run(index_dir: Path) -> Run:
    """The run saved with an index (its ``run/`` folder); one line naming the fix when it is unusable."""
    try:
        return load_run(index_dir / RUN_DIR)
    except RunRecordError as e:
        raise ZoomIndexError(f"{index_dir}: the run saved with the index is unusable ({e}); {REBUILD_FIX}") from None


# -------------------------------------------------------------------- index
class RunIndex:
    """What every index over a run's steerable vectors shares, whatever stores the vectors (FAISS in
    :mod:`~fractal_embeddings.index.zoom`, Qdrant in :mod:`~fractal_embeddings.index.qdrant`): the run
    (``run``, whose head makes the vectors; ``identity``), its encoder (rebuilt from the record on first
    use, checked when given), texts -> head vectors (:meth:`embed`), the zooms (``dims``;
    :meth:`zoom_dims`), queries as a matrix (:meth:`query_matrix`), the search plan (:meth:`plan`), the
    search template (:meth:`search`; a backend implements :meth:`lookup` and :attr:`has_coarse_labels`)
    and :meth:`check_run`."""

    def __init__(
        self,
        run: Run | str | os.PathLike,
        *,
        encoder: Any = None,
        corpus_role: str = "query",
        device: str | None = "auto",
    ) -> None:
        self.run = as_run(run)
        if self.run.head is not None and not isinstance(self.run.head, Head):
            raise ZoomIndexError(
                f"run {self.run.record.run_id}: its head ({type(self.run.head).__name__}) does not "
                "take sentence vectors; the zoom index needs a run with a head on the frozen encoder"
            )
        h = self.run.record.head
        self.n_blocks, self.block_dim = h.n_blocks, h.block_dim
        self.dim = self.n_blocks * self.block_dim
        self.dims = tuple(j * self.block_dim for j in range(1, self.n_blocks + 1))
        if corpus_role not in ROLES:
            raise ZoomIndexError(f"corpus_role must be one of {', '.join(ROLES)}, got {corpus_role!r}")
        self.corpus_role = corpus_role
        self._encoder: Any = None
        self.device = device  # where the run's encoder runs for text queries and builds
        if encoder is not None:
            self.encoder = encoder

    backend: ClassVar[str]  # what ``index.json`` names: faiss or qdrant
    empty_fix: ClassVar[str] = "add texts before searching"  # the fix named when searching an empty index
    level_names: Sequence[str]  # the levels the items' label rows name, coarse -> fine

    def __len__(self) -> int:  # items in the index
        raise NotImplementedError

    @property
    def identity(self) -> dict:
        return run_identity(self.run)

    def describe(self, schema: str, **parts: Any) -> dict:
        """An index's metadata (JSON-ready, what ``index.json`` holds): the schema, backend, size, run,
        encoder and head every index shares, ``parts`` (the store's own: ``index``, ...), then the roles
        and level names."""
        return {
            "schema": schema,
            "backend": self.backend,
            "size": len(self),
            "run": self.identity,
            "encoder": self.run.record.encoder.to_dict(),
            "head": {
                "n_blocks": self.n_blocks,
                "block_dim": self.block_dim,
                "dim": self.dim,
                "kind": self.run.record.head.kind,
            },
            **parts,
            "corpus_role": self.corpus_role,
            "query_role": "query",
            "level_names": list(self.level_names),
        }

    def close(self) -> None:
        """Release what the index holds open (a FAISS index holds nothing; a Qdrant index its client)."""

    # -------------------------------------------------------------- encoder
    @property
    def encoder(self) -> Any:
        """The run's encoder, rebuilt from its record on first use (and checked against it)."""
        if self._encoder is None:
            self.encoder = self.run.encoder(self.device)
        return self._encoder

    @encoder.setter
    def encoder(self, enc: Any) -> None:
        want = self.run.record.encoder
        have = enc.identity().as_dict()
        if have.get("fingerprint") != want.fingerprint or have.get("name") != want.name:
            raise ZoomIndexError(
                f"the index's run {self.run.record.run_id} was trained on encoder {want.name} "
                f"({str(want.fingerprint)[:12]}), not {have.get('name')} ({str(have.get('fingerprint'))[:12]}); "
                f"pass encoder=None to use the run's own encoder ({want.model or want.name})"
            )
        self._encoder = enc

    def embed(
        self, texts: Sequence[str], role: str = "query", cache: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        """Texts -> head vectors ``(n, dim)`` with the run's encoder and head (``cache``: through the
        encoder's embedding cache, as for a corpus)."""
        enc = self.encoder
        texts = list(texts)
        X = enc.embed(texts, role=role, show_progress=show_progress) if cache else enc.encode(texts, role=role)
        head = self.run.head
        want = head.input_dim if head is not None else self.run.record.encoder.dim
        if want is not None and X.shape[1] != want:
            raise ZoomIndexError(
                f"the run's head expects {want}-d encoder vectors, the encoder gives {X.shape[1]}-d; "
                "rebuild the run with this encoder"
            )
        return self.run.transform(X)

    # -------------------------------------------------------------- queries
    def zoom_dims(self, zoom: Any) -> int:
        """The prefix length of a zoom: ``"coarse"`` (first block), ``"fine"`` (all dims) or a length."""
        if isinstance(zoom, str):
            z = zoom.strip().lower()
            if z == "coarse":
                return self.dims[0]
            if z == "fine":
                return self.dims[-1]
            if z.isascii() and z.isdigit():  # not str.isdigit alone: '²' is a digit int() refuses
                zoom = int(z)
        if is_int(zoom) and int(zoom) in self.dims:
            return int(zoom)
        raise ZoomIndexError(
            f"zoom {zoom!r} is not one of this index's zooms; use coarse, fine or a prefix length "
            f"({', '.join(map(str, self.dims))})"
        )

    def plan(
        self,
        k: Any,
        zoom: Any = "fine",
        mode: Any = "zoom",
        candidates: Any = None,
        route_classes: Any = 1,
        *,
        has_coarse_labels: bool = True,
    ) -> SearchPlan:
        """A search request checked against this index (:func:`~fractal_embeddings.index.modes.plan_search`)."""
        check_int(k, "k", lo=1, error=ZoomIndexError)
        return plan_search(
            mode,
            int(k),
            self.zoom_dims(zoom),
            self.dims,
            candidates,
            route_classes,
            has_coarse_labels=has_coarse_labels,
        )

    def query_matrix(self, queries: Any, zd: int) -> np.ndarray:
        """Queries as ``(n, zd)`` head-vector prefixes: texts are encoded with the run's encoder and head;
        vectors must be ``dim``-d head vectors (or already ``zd``-d prefixes)."""
        if isinstance(queries, str):
            queries = [check_query(queries, "query", ZoomIndexError)]
        if isinstance(queries, (list, tuple)) and queries and all(isinstance(q, str) for q in queries):
            for i, q in enumerate(queries):  # an empty text would be encoded and answered like any other
                check_query(q, f"queries[{i}]", ZoomIndexError)
            return self.embed(queries, role="query")[:, :zd]
        if isinstance(queries, (list, tuple)) and any(isinstance(q, str) for q in queries):
            raise ZoomIndexError("queries mix texts and vectors; pass either texts or head vectors")
        try:
            Q = np.asarray(queries, dtype=np.float32)
        except (TypeError, ValueError):
            raise ZoomIndexError(f"queries must be texts or head vectors, got {type(queries).__name__}") from None
        if Q.size == 0:
            raise ZoomIndexError("no queries given")
        if Q.ndim == 1:
            Q = Q[None, :]
        if Q.ndim != 2:
            raise ZoomIndexError(f"query vectors must be 1-d or 2-d, got shape {Q.shape}")
        w = Q.shape[1]
        if w != self.dim and w != zd:
            hint = ""
            if w == self.run.record.encoder.dim:
                hint = f" ({w}-d looks like raw encoder vectors: pass run.transform(X) or the texts)"
            alt = f" (or {zd}-d prefixes at zoom {zd})" if zd != self.dim else ""
            raise ZoomIndexError(
                f"query vectors have {w} dims; this index expects {self.dim}-d head vectors{alt}{hint}"
            )
        if not np.isfinite(Q).all():
            raise ZoomIndexError("query vectors contain NaN or inf")
        return Q[:, :zd]

    # -------------------------------------------------------------- search
    @property
    def has_coarse_labels(self) -> bool:
        """Whether every item has a coarse label (what a routed search votes and filters on)."""
        raise NotImplementedError

    def search(
        self,
        queries: Any,
        k: int = 10,
        zoom: Any = "fine",
        *,
        mode: str | SearchMode = "zoom",
        candidates: int | None = None,
        route_classes: int = 1,
        ef_search: int | None = None,
    ) -> SearchResults:
        """The ``k`` nearest items of each query at a zoom (cosine of the prefixes).

        ``queries``: a text, a list of texts (encoded with the run's encoder and head; an empty or blank
        text is refused), or head vectors ``(dim,)`` / ``(n, dim)`` (or already cut to the zoom's
        length). ``zoom``: ``"coarse"`` (the first block), ``"fine"`` (the whole vector) or a prefix
        length. ``mode``: ``zoom`` (k-NN at the zoom), ``funnel`` (``candidates`` items from the first
        block, default 10 x k, re-ranked exactly at the zoom) or ``routed`` (only the items of the
        query's predicted coarse class, voted by its ``candidates`` nearest items at the first block;
        ``route_classes=2``: the runner-up class too when the vote is close); see
        :mod:`~fractal_embeddings.index.modes`. ``ef_search`` (HNSW) overrides the index's search
        breadth for this call. Everything is checked before a query is encoded."""
        if ef_search is not None:  # before any query is encoded
            check_int(ef_search, "ef_search", lo=1, error=ZoomIndexError)
        labelled = not is_routed(mode) or self.has_coarse_labels  # only a routed search needs (and pays for) it
        plan = self.plan(k, zoom, mode, candidates, route_classes, has_coarse_labels=labelled)
        if len(self) == 0:
            raise ZoomIndexError(f"the index is empty; {self.empty_fix}")
        return self.lookup(self.query_matrix(queries, plan.zoom), plan, ef_search)

    def lookup(self, Q: np.ndarray, plan: SearchPlan, ef_search: int | None) -> SearchResults:
        """The backend's search of the checked query prefixes ``Q`` (``(n, plan.zoom)``) by ``plan``."""
        raise NotImplementedError

    def check_vectors(self, vectors: Any, n: int) -> np.ndarray:
        """``vectors`` given for ``n`` texts (skipping their encoding) as float32, checked: ``(n, dim)``
        head vectors, all finite."""
        E = np.asarray(vectors, dtype=np.float32)
        if E.ndim != 2 or E.shape != (n, self.dim):
            raise ZoomIndexError(
                f"vectors have shape {E.shape}; expected ({n}, {self.dim}): one {self.dim}-d head "
                "vector (run.transform of the encoder vector) per text"
            )
        if not np.isfinite(E).all():
            raise ZoomIndexError("the vectors to add contain NaN or inf")
        return E

    # ------------------------------------------------------- model checks
    def check_run(self, run: Run | str | os.PathLike) -> None:
        """Raise unless ``run`` is the run this index was built with (same id, encoder and head dims)."""
        other = run_identity(as_run(run))
        mine = self.identity
        keys = ("run_id", "encoder_fingerprint", "encoder_name", "n_blocks", "block_dim")
        if any(other[k] != mine[k] for k in keys):
            raise ZoomIndexError(
                f"this index was built with {describe_run(mine)}, not {describe_run(other)}: their vectors are "
                "not comparable; use the index's own run (load without run=) or rebuild the index with "
                "this run (fractal index build RUN_DIR CORPUS --out DIR --overwrite)"
            )

    def check_run_of(self, index_dir: Path, run: Run | str | os.PathLike | None) -> None:
        """:meth:`check_run` for an index loaded from ``index_dir`` (named in the error); ``None``: no check."""
        if run is None:
            return
        try:
            self.check_run(run)
        except ZoomIndexError as e:
            raise ZoomIndexError(f"{index_dir}: {e}") from None
