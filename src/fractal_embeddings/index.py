"""Zoom index: nearest-neighbour search over steerable embeddings at a chosen zoom level.

>>> from fractal_embeddings.index import ZoomIndex
>>> ix = ZoomIndex.build("runs/clinc-fractal", texts, labels=labels)     # encode + head, flat (exact)
>>> res = ix.search("can you move my dentist appointment", k=5, zoom="coarse")
>>> [(h.id, round(h.score, 3), h.text) for h in res[0]]
>>> ix.save("indexes/clinc")                     # FAISS files + index.json + a copy of the run
>>> ZoomIndex.load("indexes/clinc").search(["q1", "q2"], k=10, zoom=128)

Design
------
A trained head maps a text to ``n_blocks x block_dim`` dims (default 4 x 64); the first ``j``
blocks are the embedding zoomed out (the 64-d prefix carries the coarse label, the full vector the
fine one). A zoom is a prefix length ``d = j x block_dim``, and the similarity at that zoom is the
cosine of the two ``d``-dim prefixes: the similarity the prefix k-NN evaluation scores.

* **One FAISS index per prefix length** (64, 128, 192, 256 dims by default). The cosine of two
  prefixes is not a function of the full vectors' cosine (nor of their inner product restricted to
  ``d`` dims unless each prefix has unit norm), so a single full-length index cannot rank by a
  prefix's cosine; a per-prefix index answers every zoom exactly with one ordinary search. Memory
  is ``(1 + 2 + ... + B) / B`` times the full vectors (2.5x for 4 blocks), plus the full vectors.
* **Each prefix is L2-normalised on its own** before it is added, and each query prefix before it
  is searched: then inner product = cosine on exactly those ``d`` dims (``IndexFlatIP`` /
  ``IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT``). Normalising the full vector once would not do:
  its 64-d prefix keeps whatever norm the head gave it, and rows with larger prefix norms would
  rank higher at the coarse zoom for reasons unrelated to the angle. (Heads that normalise each
  block, like ``fractal``'s, give every j-block prefix the norm sqrt(j): there the per-prefix
  normalisation changes no ranking, it only puts scores on the cosine scale; for the other heads
  it is what makes the coarse zoom a cosine at all.)
* ``kind="flat"`` (default) is exact. ``kind="hnsw"`` is approximate, with the parameters ``M``
  (graph degree), ``ef_construction`` and ``ef_search`` (search breadth) recorded in the metadata.
* Texts are encoded with the run's own encoder and head. The corpus is encoded in the role the head
  was trained on (``query``, the default ``corpus_role``): a head has only seen query-role vectors,
  and the label-level neighbours the index serves are a symmetric task. ``corpus_role="passage"``
  is there for models with prompts (e.g. E5) when the corpus is documents.

On disk an index directory holds ``index.json`` (schema, the run's identity, the encoder
fingerprint, head dims, index kind and parameters, and per item its id, text, payload and label
names; sha256 of the FAISS files and of ``vectors.npy``), one ``prefix-<d>.faiss`` per prefix
(``faiss.write_index``), ``vectors.npy`` (the full head vectors) and ``run/`` (a copy of the run's
record and weights, checked against its own sha256 on load, so text queries need nothing else).
Nothing is pickled. :meth:`ZoomIndex.save` writes everything into a temporary directory beside the
target, which then takes its place in one step (an index being replaced with ``overwrite`` is
exchanged with it, then deleted; :mod:`~fractal_embeddings.atomic`), so the path always holds the
old index or the new one and a reader never sees a half-written index.

Search modes and backends
-------------------------
:meth:`ZoomIndex.search` answers in three modes (:mod:`~fractal_embeddings.search_modes`): ``zoom``
(k-NN at one prefix, the default), ``funnel`` (the first block's index returns ``candidates`` items,
re-ranked exactly at the zoom) and ``routed`` (the query's coarse class, voted by its nearest items at
the first block; only that class's items are searched at the zoom: each class gets its own exact
FAISS index on a flat index, an HNSW index is searched with a filter on the class's rows).
:class:`~fractal_embeddings.qdrant_index.QdrantIndex` is the same index in a Qdrant collection (an
embedded folder or a server); :func:`load_index` opens either from its directory (``index.json``
says which backend wrote it). :class:`RunIndex` is what both share: the run, its encoder, the zooms
and the checks of queries and runs.

Pieces
------
:class:`ZoomIndex` composes a run (its identity and head), the run's encoder, an
:class:`~fractal_embeddings.index_items.ItemTable` (ids, texts, payloads, labels) and
:class:`~fractal_embeddings.prefix_index.PrefixIndexes` (the FAISS indexes and the full vectors).
Corpus files are read by :mod:`fractal_embeddings.corpus` (:func:`read_corpus`, re-exported here).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .atomic import atomic_dir
from .corpus import TABLE_SUFFIXES, TEXT_SUFFIXES, Corpus, read_corpus
from .errors import ZoomIndexError
from .extras import require
from .index_items import COLUMNS as ITEM_COLUMNS
from .index_items import ItemTable
from .prefix_index import HNSW_DEFAULTS, KINDS, VECTORS_FILE, PrefixIndexes
from .search_modes import MODES, ClassPartition, Route, SearchMode, SearchPlan, merge_top_k, plan_search, rerank
from .validation import check_output_dir

if TYPE_CHECKING:
    from .qdrant_index import QdrantIndex
    from .runs import Run

__all__ = [
    "HNSW_DEFAULTS",
    "KINDS",
    "META_FILE",
    "MODES",
    "RUN_DIR",
    "SCHEMA",
    "TABLE_SUFFIXES",
    "TEXT_SUFFIXES",
    "VECTORS_FILE",
    "Corpus",
    "Hit",
    "Route",
    "RunIndex",
    "SearchMode",
    "SearchResults",
    "ZoomIndex",
    "ZoomIndexError",
    "as_run",
    "build_from_source",
    "check_target",
    "describe_run",
    "index_backend",
    "load_index",
    "read_corpus",
    "read_index_meta",
    "run_identity",
]

SCHEMA = "fractal-embeddings/zoom-index/1"
META_FILE = "index.json"
RUN_DIR = "run"
BACKENDS = ("faiss", "qdrant")  # what ``index.json``'s ``backend`` may say (absent: faiss)


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
    sent (:class:`~fractal_embeddings.search_modes.Route`; ``None`` in the other modes)."""

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
    from .runs import Run, load_run

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


REBUILD_FIX = "rebuild it with `fractal index build RUN_DIR CORPUS --out DIR --overwrite`"


def read_index_meta(index_dir: str | os.PathLike) -> dict:
    """The ``index.json`` of an index directory as a dict (one-line errors: no such directory, no
    ``index.json``, not readable JSON, not an object)."""
    d = Path(index_dir)
    if not d.is_dir():
        raise ZoomIndexError(
            f"{d}: no such index directory; build one with `fractal index build RUN_DIR CORPUS --out {d}`"
        )
    if not (d / META_FILE).is_file():
        raise ZoomIndexError(
            f"{d}: not a zoom index (no {META_FILE}); pass the directory `fractal index build --out` wrote"
        )
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ZoomIndexError(f"{d / META_FILE}: corrupt, not readable JSON ({str(e)[:80]}); {REBUILD_FIX}") from None
    if not isinstance(meta, dict):
        raise ZoomIndexError(f"{d / META_FILE}: not a zoom index (not a JSON object); {REBUILD_FIX}")
    return meta


def index_backend(index_dir: str | os.PathLike) -> str:
    """The backend that wrote an index directory: ``faiss`` or ``qdrant`` (its ``index.json`` says)."""
    backend = read_index_meta(index_dir).get("backend", "faiss")
    if backend not in BACKENDS:
        raise ZoomIndexError(
            f"{Path(index_dir) / META_FILE}: unknown backend {backend!r} (this library reads {', '.join(BACKENDS)}); "
            "rebuild the index with this version of fractal-embeddings"
        )
    return str(backend)


def load_index(
    index_dir: str | os.PathLike,
    run: Run | str | os.PathLike | None = None,
    *,
    encoder: Any = None,
    device: str | None = "auto",
    api_key: str | None = None,
) -> ZoomIndex | QdrantIndex:
    """The index in ``index_dir``, whichever backend wrote it: a :class:`ZoomIndex` (FAISS files) or a
    :class:`~fractal_embeddings.qdrant_index.QdrantIndex` (the directory names its collection; ``api_key``
    for a server that needs one, default ``$QDRANT_API_KEY``). ``run``: refuse the index unless it
    was built with this run."""
    if index_backend(index_dir) == "qdrant":
        from .qdrant_index import QdrantIndex

        return QdrantIndex.load(index_dir, run, encoder=encoder, device=device, api_key=api_key)
    return ZoomIndex.load(index_dir, run, encoder=encoder, device=device)


def _target_checks(overwrite: bool) -> dict:
    return {"overwrite": overwrite, "marker": META_FILE, "what": "an index", "error": ZoomIndexError}


def check_target(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise unless ``out_dir`` may receive an index: absent, empty, or (with ``overwrite``) an index;
    never a file, a folder under a file, an unwritable place or a folder holding anything else
    (:func:`~fractal_embeddings.atomic.check_output_dir`)."""
    return check_output_dir(out_dir, **_target_checks(overwrite))


# -------------------------------------------------------------------- index
class RunIndex:
    """What every index over a run's steerable vectors shares, whatever stores the vectors (FAISS
    here, Qdrant in :mod:`~fractal_embeddings.qdrant_index`): the run (``run``, whose head makes the
    vectors; ``identity``), its encoder (rebuilt from the record on first use, checked when given),
    texts -> head vectors (:meth:`embed`), the zooms (``dims``; :meth:`zoom_dims`), queries as a
    matrix (:meth:`query_matrix`), the search plan (:meth:`plan`) and :meth:`check_run`."""

    def __init__(
        self,
        run: Run | str | os.PathLike,
        *,
        encoder: Any = None,
        corpus_role: str = "query",
        device: str | None = "auto",
    ) -> None:
        from .encoders import ROLES
        from .heads import Head

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
        if isinstance(zoom, (int, np.integer)) and not isinstance(zoom, bool) and int(zoom) in self.dims:
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
        """A search request checked against this index (:func:`~fractal_embeddings.search_modes.plan_search`)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ZoomIndexError(f"k must be an integer >= 1, got {k!r}")
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
            queries = [queries]
        if isinstance(queries, (list, tuple)) and queries and all(isinstance(q, str) for q in queries):
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


class ZoomIndex(RunIndex):
    """Nearest-neighbour search at every prefix length of a trained run's embeddings (FAISS).

    Build with :meth:`build` (encodes texts with the run's encoder and head) or :meth:`load`; an
    empty index from the constructor takes texts with :meth:`add`. What it holds: ``run`` (whose
    head makes the vectors), ``items`` (an :class:`~fractal_embeddings.index_items.ItemTable`) and
    ``prefixes`` (a :class:`~fractal_embeddings.prefix_index.PrefixIndexes`); ``ids``, ``texts``,
    ``payloads``, ``labels``, ``kind``, ``params`` and ``indexes`` read through to those two."""

    backend = "faiss"

    def __init__(
        self,
        run: Run | str | os.PathLike,
        *,
        kind: str = "flat",
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
        level_names: Sequence[str] | None = None,
        encoder: Any = None,
        corpus_role: str = "query",
        device: str | None = "auto",
    ) -> None:
        require("index", "a FAISS zoom index")
        super().__init__(run, encoder=None, corpus_role=corpus_role, device=device)
        self.prefixes = PrefixIndexes(self.dims, kind, m=m, ef_construction=ef_construction, ef_search=ef_search)
        self.items = ItemTable(level_names if level_names is not None else self.run.level_names)
        self._partition: ClassPartition | None = None  # routed search: per-class rows (built on first use)
        self._labelled: tuple[tuple[int, int], bool] | None = None  # has_coarse_labels, per item-table state
        if encoder is not None:
            self.encoder = encoder

    # ----------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"ZoomIndex({len(self)} items, {self.kind}, prefixes {'/'.join(map(str, self.dims))}, "
            f"run {self.run.record.run_id!r})"
        )

    @property
    def vectors(self) -> np.ndarray:
        """The full head vectors of the items, as added (not normalised), ``(n, dim)`` read-only."""
        return self.prefixes.vectors

    # the item table's columns and the FAISS settings, as attributes of the index
    ids = property(lambda self: self.items.ids, doc="Item ids, by row.")
    texts = property(lambda self: self.items.texts, doc="Item texts, by row.")
    payloads = property(lambda self: self.items.payloads, doc="Item payloads (JSON values or None), by row.")
    labels = property(lambda self: self.items.labels, doc="Item class names per level (or None), by row.")
    level_names = property(lambda self: self.items.level_names, doc="The levels the label rows name, coarse -> fine.")
    kind = property(lambda self: self.prefixes.kind, doc="``flat`` (exact) or ``hnsw`` (approximate).")
    params = property(lambda self: self.prefixes.params, doc="HNSW parameters (empty for flat).")
    indexes = property(lambda self: self.prefixes.indexes, doc="Prefix length -> its FAISS index.")

    @property
    def faiss_type(self) -> str:
        return self.prefixes.faiss_type

    def info(self) -> dict:
        """The index metadata without the per-item columns (JSON-ready)."""
        return self.describe(
            SCHEMA,
            index={
                "kind": self.kind,
                "faiss_type": self.faiss_type,
                "metric": "cosine (inner product of L2-normalised prefixes)",
                "prefix_dims": list(self.dims),
                "params": dict(self.params),
                "files": self.prefixes.files(),
            },
        )

    # --------------------------------------------------------------- build
    @classmethod
    def build(
        cls,
        run: Run | str | os.PathLike,
        texts: Sequence[str],
        ids: Sequence | None = None,
        payloads: Sequence | None = None,
        labels: Sequence[Sequence[str]] | None = None,
        *,
        level_names: Sequence[str] | None = None,
        kind: str = "flat",
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
        encoder: Any = None,
        vectors: np.ndarray | None = None,
        corpus_role: str = "query",
        show_progress: bool = False,
        device: str | None = "auto",
    ) -> ZoomIndex:
        """An index of ``texts`` built with a trained run (a :class:`~fractal_embeddings.runs.Run` or
        its directory): each text is encoded with the run's encoder (cached, role ``corpus_role``)
        and head. ``labels[i]`` holds item i's class names, one per level (``level_names``, default
        the run's levels); ``payloads[i]`` any JSON value; ``ids`` default to 0..n-1. ``vectors``:
        the texts' head vectors when already computed (skips the encoding)."""
        if texts is None or len(texts) == 0:
            raise ZoomIndexError("empty corpus: there are no texts to index; give at least one text")
        ix = cls(
            run,
            kind=kind,
            m=m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            level_names=level_names,
            encoder=encoder,
            corpus_role=corpus_role,
            device=device,
        )
        ix.add(texts, ids=ids, payloads=payloads, labels=labels, vectors=vectors, show_progress=show_progress)
        return ix

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence | None = None,
        payloads: Sequence | None = None,
        labels: Sequence[Sequence[str]] | None = None,
        *,
        vectors: np.ndarray | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Encode and add texts (see :meth:`build`); returns the rows they got in the index."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts) if texts is not None else []
        n = len(texts)
        if n == 0:
            raise ZoomIndexError("empty corpus: there are no texts to add; give at least one text")
        batch = self.items.check(texts, ids, payloads, labels)  # all checked before anything is encoded
        if vectors is None:
            E = self.embed(texts, role=self.corpus_role, cache=True, show_progress=show_progress)
        else:
            E = np.asarray(vectors, dtype=np.float32)
            if E.ndim != 2 or E.shape != (n, self.dim):
                raise ZoomIndexError(
                    f"vectors have shape {E.shape}; expected ({n}, {self.dim}): one {self.dim}-d head "
                    "vector (run.transform of the encoder vector) per text"
                )
        self.prefixes.add(E)
        first = self.items.append(batch)
        self._partition = None  # the classes' rows changed
        return np.arange(first, first + n)

    # -------------------------------------------------------------- search
    @property
    def has_coarse_labels(self) -> bool:
        """Whether every item has labels (a routed search votes and filters on the coarse one); checked
        once per state of the item table."""
        state = (id(self.items), len(self.items))
        if self._labelled is None or self._labelled[0] != state:
            ok = bool(self.level_names) and len(self) > 0 and all(r is not None for r in self.items.labels)
            self._labelled = (state, ok)
        return self._labelled[1]

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

        ``queries``: a text, a list of texts (encoded with the run's encoder and head), or head
        vectors ``(dim,)`` / ``(n, dim)`` (or already cut to the zoom's length). ``zoom``: ``"coarse"``
        (the first block), ``"fine"`` (the whole vector) or a prefix length. ``mode``: ``zoom`` (k-NN
        at the zoom), ``funnel`` (``candidates`` items from the first block's index, default 10 x k,
        re-ranked exactly at the zoom) or ``routed`` (only the items of the query's predicted coarse
        class, voted by its ``candidates`` nearest items at the first block; ``route_classes=2``: the
        runner-up class too when the vote is close); see :mod:`~fractal_embeddings.search_modes`.
        ``ef_search`` (HNSW) overrides the index's search breadth for this call. Everything is
        checked before a query is encoded."""
        if ef_search is not None and (
            isinstance(ef_search, bool) or not isinstance(ef_search, (int, np.integer)) or ef_search < 1
        ):  # before any query is encoded
            raise ZoomIndexError(f"ef_search must be an integer >= 1, got {ef_search!r}")
        routed = str(getattr(mode, "value", mode)).strip().lower() == SearchMode.ROUTED.value
        plan = self.plan(
            k, zoom, mode, candidates, route_classes, has_coarse_labels=not routed or self.has_coarse_labels
        )
        if len(self) == 0:
            raise ZoomIndexError("the index is empty; add texts before searching")
        Q = self.query_matrix(queries, plan.zoom)
        routes = None
        if plan.mode is SearchMode.ZOOM:
            D, rows = self.prefixes.search(Q, plan.zoom, plan.k, ef_search)
        elif plan.mode is SearchMode.FUNNEL:
            _, cand = self.prefixes.search(Q[:, : plan.first], plan.first, plan.candidates or plan.k, ef_search)
            D, rows = rerank(Q, cand, self.prefixes.vectors, plan.k)
        else:
            D, rows, routes = self._routed(Q, plan, ef_search)
        hits = [
            [
                Hit(rank, int(r), score=float(s), **self.items.item(int(r)))
                for rank, (r, s) in enumerate(zip(rows[qi], D[qi], strict=True), start=1)
                if r >= 0
            ]
            for qi in range(len(rows))
        ]
        return SearchResults(plan.zoom, rows, D, hits, plan.mode.value, plan.candidates, routes)

    def coarse_labels(self) -> list[str]:
        """Every item's coarse class name (level 0), by row (the labels a routed search votes with)."""
        return [str(r[0]) for r in self.items.labels]  # type: ignore[index]  # checked by has_coarse_labels

    def _routed(self, Q: np.ndarray, plan: SearchPlan, ef_search: int | None) -> tuple:
        """Routed search: vote each query's coarse class on the first block, then search only the
        items of the class(es) it is routed to at the zoom (per-class exact indexes on a flat index,
        the zoom's HNSW index restricted to the classes' rows on an HNSW one)."""
        from .search_modes import route

        if self._partition is None:
            self._partition = ClassPartition(self.coarse_labels(), self.prefixes.vectors)
        part = self._partition
        assert plan.candidates is not None
        _, voters = self.prefixes.search(Q[:, : plan.first], plan.first, plan.candidates, ef_search)
        level = self.level_names[0]
        routes = [route([part.labels[r] for r in row if r >= 0], level, plan.route_classes) for row in voters.tolist()]
        n, k = len(Q), plan.k
        D = np.full((n, k), -np.inf, dtype=np.float32)
        rows = np.full((n, k), -1, dtype=np.int64)
        groups: dict[tuple[str, ...], list[int]] = {}
        for qi, rt in enumerate(routes):
            groups.setdefault(rt.classes, []).append(qi)
        for classes, qis in groups.items():
            Qg = Q[qis]
            if self.kind == "flat":
                parts = [part.search(Qg, plan.zoom, k, c) for c in classes]
            else:
                parts = [self.prefixes.search(Qg, plan.zoom, k, ef_search, subset=part.subset(classes))]
            for gi, qi in enumerate(qis):
                D[qi], rows[qi] = merge_top_k([(p[0][gi], p[1][gi]) for p in parts], k)
        return D, rows, routes

    # -------------------------------------------------------------- disk
    def metadata(self) -> dict:
        return {
            **self.info(),
            "faiss_version": _faiss_version(),
            "library_version": _library_version(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "items": self.items.columns(),
        }

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index directory atomically (a temporary directory beside it, then a rename).
        An existing index is replaced only with ``overwrite``; any other non-empty folder never."""
        from .records import file_sha256

        if len(self) == 0:
            raise ZoomIndexError("empty corpus: the index has no items to save; add texts first")
        with atomic_dir(out_dir, **_target_checks(overwrite)) as tmp:  # checked first, swapped in whole
            dataclasses.replace(self.run).save(tmp / RUN_DIR)  # a copy: saving must not re-point the caller's run
            files = self.prefixes.write(tmp)
            meta = self.metadata()
            meta["files"] = {name: file_sha256(tmp / name) for name in files}
            (tmp / META_FILE).write_text(_meta_json(meta), encoding="utf-8")
        return Path(out_dir)

    @classmethod
    def load(
        cls,
        index_dir: str | os.PathLike,
        run: Run | str | os.PathLike | None = None,
        *,
        encoder: Any = None,
        device: str | None = "auto",
    ) -> ZoomIndex:
        """An index saved by :meth:`save`, every file checked against ``index.json``. Text queries use
        the run saved with the index; ``run`` (a Run or its directory) must be that same run."""
        from .records import RunRecordError, file_sha256
        from .runs import load_run

        require("index", "a FAISS zoom index")
        d = Path(index_dir)
        fix = REBUILD_FIX
        meta = read_index_meta(d)
        if meta.get("backend", "faiss") != "faiss":
            raise ZoomIndexError(
                f"{d}: a {meta.get('backend')} index, not a FAISS one; open it with "
                "fractal_embeddings.index.load_index (or `fractal search`)"
            )
        if meta.get("schema") != SCHEMA:
            raise ZoomIndexError(
                f"{d / META_FILE}: not a zoom index (schema {meta.get('schema')!r}, expected {SCHEMA!r}); {fix}"
            )
        try:
            size = int(meta["size"])
            spec = meta["index"]
            dims = [int(x) for x in spec["prefix_dims"]]
            items = meta["items"]
            cols = [list(items[c]) for c in ITEM_COLUMNS]
            files = dict(meta["files"])
            head = meta["head"]
        except (KeyError, TypeError, ValueError) as e:
            raise ZoomIndexError(f"{d / META_FILE}: corrupt, missing or malformed field {e}; {fix}") from None
        if any(len(c) != size for c in cols):
            raise ZoomIndexError(f"{d / META_FILE}: corrupt, item columns don't have {size} rows; {fix}")
        for name, sha in files.items():
            p = d / name
            if not p.is_file():
                raise ZoomIndexError(f"{p}: missing; the index directory is incomplete, {fix}")
            if file_sha256(p) != sha:
                raise ZoomIndexError(f"{p}: does not match the sha256 in {META_FILE} (corrupt or changed); {fix}")
        try:
            stored = load_run(d / RUN_DIR)
        except RunRecordError as e:
            raise ZoomIndexError(f"{d}: the run saved with the index is unusable ({e}); {fix}") from None
        ix = cls(
            stored,
            kind=spec["kind"],
            level_names=meta.get("level_names") or [],
            corpus_role=meta.get("corpus_role", "passage"),
            device=device,
            **(
                {
                    "m": spec["params"]["M"],
                    "ef_construction": spec["params"]["ef_construction"],
                    "ef_search": spec["params"]["ef_search"],
                }
                if spec["kind"] == "hnsw"
                else {}
            ),
        )
        if ix.dims != tuple(dims) or ix.dim != int(head["dim"]):
            raise ZoomIndexError(
                f"{d / META_FILE}: prefixes {dims} don't fit the saved run's head "
                f"({ix.n_blocks} x {ix.block_dim}); {fix}"
            )
        saved_ident = meta.get("run") or {}
        if (
            saved_ident.get("run_id") != ix.identity["run_id"]
            or saved_ident.get("encoder_fingerprint") != ix.identity["encoder_fingerprint"]
        ):
            raise ZoomIndexError(
                f"{d}: the run saved with the index ({describe_run(ix.identity)}) is not the one "
                f"{META_FILE} names; {fix}"
            )
        if run is not None:
            try:
                ix.check_run(run)
            except ZoomIndexError as e:
                raise ZoomIndexError(f"{d}: {e}") from None
        ix.prefixes.read(d, spec["files"], size, fix)
        ix.items = ItemTable.from_columns(ix.level_names, *cols)
        if encoder is not None:
            ix.encoder = encoder
        return ix


def _meta_json(meta: dict) -> str:
    """``index.json``: one top-level key per line (sorted), each value compact JSON, so the header
    stays readable and the per-item columns (one line) don't grow it by a line per item."""

    def dump(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False, sort_keys=True)

    return "{\n" + ",\n".join(f"  {dump(k)}: {dump(meta[k])}" for k in sorted(meta)) + "\n}\n"


def _faiss_version() -> str | None:
    try:
        import faiss

        return getattr(faiss, "__version__", None)
    except ImportError:  # pragma: no cover
        return None


def _library_version() -> str:
    from . import __version__

    return __version__


# -------------------------------------------------------------------- corpus
def build_from_source(
    run: Run | str | os.PathLike,
    source: str,
    *,
    split: str | None = None,
    text: str = "text",
    levels: Sequence[str] | None = None,
    id_column: str | None = None,
    backend: str = "faiss",
    **build_options: Any,
) -> ZoomIndex | QdrantIndex:
    """:func:`read_corpus` + :meth:`ZoomIndex.build` (what ``fractal index build`` runs); with
    ``backend="qdrant"``, :meth:`~fractal_embeddings.qdrant_index.QdrantIndex.build` into the
    collection ``build_options["target"]`` names."""
    if backend not in BACKENDS:
        raise ZoomIndexError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS)}")
    corpus = read_corpus(source, split=split, text=text, levels=levels, id_column=id_column)
    builder: Any = ZoomIndex
    if backend == "qdrant":
        from .qdrant_index import QdrantIndex

        builder = QdrantIndex
    return builder.build(
        run,
        corpus.texts,
        corpus.ids,
        corpus.payloads,
        corpus.labels,
        level_names=corpus.level_names if corpus.labels is not None else None,
        **build_options,
    )
