"""Zoom search in a Qdrant collection: the zoom index for corpora that outgrow one process.

>>> from fractal_embeddings.index import QdrantIndex, QdrantTarget
>>> target = QdrantTarget("clinc", path="qdrant-data")          # embedded (local mode), no server
>>> target = QdrantTarget("clinc", url="http://qdrant:6333")    # a server or cluster: only this changes
>>> qx = QdrantIndex.build("runs/clinc-fractal", texts, labels=labels, target=target)
>>> qx.search("book me a flight to paris", k=5, zoom="coarse")
>>> qx.search(["cancel my card"], k=10, mode="funnel", candidates=100)   # prefetch on the 64-d prefix
>>> qx.search(["cancel my card"], k=10, mode="routed")                   # a payload filter on the coarse class
>>> qx.save("indexes/clinc")                 # index.json (+ the run) naming the collection; never the api key
>>> load_index("indexes/clinc")              # fractal_embeddings.index.load_index: either backend

What is stored
--------------
One collection per index. Each item is one point with a named vector per prefix length (``d64``,
``d128``, ``d192``, ``d256`` for the default head), each the L2-normalised prefix with cosine distance:
the same vectors FAISS holds in :class:`~fractal_embeddings.index.ZoomIndex`, so every zoom is exact
(the cosine of a prefix is not a function of the full vector, so ``d128`` and ``d192`` pay for
themselves by keeping the middle zooms exact: 2.5x the full vectors in all, as with FAISS). The
payload holds the item's ``row`` (its position in the build, the hit's ``row``), ``id``, ``text``,
``labels`` (class name per level), the user ``payload``, and ``coarse`` (the level-0 class, the key a
routed search filters on; a keyword payload index on a server). Point ids are UUIDv5 of the item id,
so building the same corpus again writes the same points (idempotent: a re-run, or a resumed killed
build, upserts them again and deletes points of items no longer in the corpus). The collection's
metadata records the run (id, encoder fingerprint, head dims), the prefix lengths, the levels, the
index kind and whether the build completed (collection metadata: qdrant-client and Qdrant >= 1.16).

Search modes (:mod:`~fractal_embeddings.index.modes`): ``zoom`` is one query on that prefix's named
vector; ``funnel`` is Qdrant's ``prefetch`` (the first block's vector returns ``candidates`` points,
re-scored exactly on the zoom's vector in the same request); ``routed`` votes the query's coarse class
with its ``candidates`` nearest points on the first block, then searches the zoom's vector with a
payload filter on ``coarse``. ``kind="flat"`` searches exactly (``SearchParams(exact=True)``, and no
HNSW graph is built on a server); ``kind="hnsw"`` builds Qdrant's HNSW with ``m`` /
``ef_construction`` and searches with ``hnsw_ef = ef_search``. The embedded mode always searches
exactly (it is Qdrant's numpy implementation), and commits every point to SQLite: on a disk with slow
``fsync`` that is ms per point; Qdrant recommends a server beyond ~20,000 points.

Where it lives: :class:`QdrantTarget` (a collection name + an embedded ``path`` or a server ``url``
with an optional ``api_key``). An index directory (:meth:`QdrantIndex.save`) holds ``index.json``
(``backend: qdrant``, the collection's name and path or URL, the run's identity, the kind) and
``run/`` (a copy of the run, for text queries); it is written atomically once the collection is
complete. The api key is never written: pass it to :meth:`QdrantIndex.load` (``--api-key``) or set
``QDRANT_API_KEY``. Sharding, replication and quantization are the server's settings (Qdrant's
``shard_number``, ``replication_factor``; set them on the collection before or after a build); this
module creates the collection with Qdrant's defaults for those.

Checked before anything is encoded, each a one-line :class:`~fractal_embeddings.errors.ZoomIndexError`:
a target with both or neither of path and URL, a path that is a file, a URL that is not ``http(s)://host[:port]``, an
unreachable server or a refused api key, an embedded folder another client holds, a collection built
from another run (or with other index settings: ``overwrite=True`` rebuilds it). On load, a collection
that no longer matches its ``index.json`` (missing, rebuilt from another run, another size).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..atomic import atomic_dir
from ..errors import ZoomIndexError
from ..evaluation import unit_rows
from ..runs import Run
from ..validation import check_int
from .base import Hit, RunIndex, SearchResults, describe_run, load_saved_run, run_identity
from .folder import META_FILE, REBUILD_FIX, RUN_DIR, read_index_meta, target_checks
from .items import ItemBatch, ItemTable
from .modes import Route, SearchMode, SearchPlan, route
from .prefix import HNSW_DEFAULTS, check_params
from .qdrant_collection import META_KEY, UPSERT_BATCH, QdrantCollection, vector_name
from .qdrant_target import QdrantTarget
from .shared import check_quantize

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = ["SCHEMA", "QdrantIndex"]

SCHEMA = "fractal-embeddings/qdrant-index/1"


# ------------------------------------------------------------------ the index
class QdrantIndex(RunIndex):
    """A zoom index whose vectors and items live in a Qdrant collection (see the module docstring).

    Make one with :meth:`build` (encodes a corpus with the run and upserts it), :meth:`open` (an
    existing collection and the run that built it) or :meth:`load` (an index directory); search it
    like a :class:`~fractal_embeddings.index.ZoomIndex` (:meth:`search`). ``ids``, ``texts``,
    ``payloads``, ``labels`` and ``vectors`` read the whole collection once (for the explorer's map;
    meant for collections that fit in memory)."""

    backend = "qdrant"
    empty_fix = "build it before searching"

    def __init__(
        self,
        run: Run | str | os.PathLike,
        target: QdrantTarget,
        *,
        kind: str = "flat",
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
        quantize: str | None = None,
        level_names: Sequence[str] | None = None,
        encoder: Any = None,
        corpus_role: str = "query",
        device: str | None = "auto",
        size: int = 0,
    ) -> None:
        super().__init__(run, encoder=encoder, corpus_role=corpus_role, device=device)
        if not isinstance(target, QdrantTarget):
            raise ZoomIndexError(f"target must be a QdrantTarget, got {type(target).__name__}")
        self.kind = kind
        self.params = check_params(kind, m, ef_construction, ef_search)
        self.quantize = check_quantize(quantize)  # int8: Qdrant's scalar quantisation of every named vector
        self.target = target
        self.level_names = tuple(level_names if level_names is not None else self.run.level_names)
        self.size = int(size)
        self.store = QdrantCollection(target, self.dims)
        self._table: tuple[ItemTable, np.ndarray] | None = None  # the whole collection, read on demand

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (
            f"QdrantIndex({self.size} items, {self.kind}, prefixes {'/'.join(map(str, self.dims))}, "
            f"{self.target.describe()}, run {self.run.record.run_id!r})"
        )

    # ------------------------------------------------------------ client
    @property
    def client(self) -> QdrantClient:
        """The Qdrant client (connected on first use)."""
        return self.store.client

    def close(self) -> None:
        """Release the client (an embedded folder is unlocked when its last index closes)."""
        self.store.close()

    def __enter__(self) -> QdrantIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ metadata
    def collection_meta(self, complete: bool) -> dict:
        """What the collection's metadata records under ``fractal_embeddings``."""
        ident = self.identity
        return {
            "schema": SCHEMA,
            "run": {k: ident[k] for k in ("run_id", "method", "dataset", "encoder_name", "encoder_fingerprint")}
            | {"n_blocks": self.n_blocks, "block_dim": self.block_dim},
            "prefix_dims": list(self.dims),
            "level_names": list(self.level_names),
            "kind": self.kind,
            "params": dict(self.params),
            **({"quantize": self.quantize} if self.quantize != "none" else {}),
            "corpus_role": self.corpus_role,
            "size": self.size,
            "complete": complete,
        }

    def stored_meta(self) -> dict | None:
        """The collection's ``fractal_embeddings`` metadata (``None``: no such collection; ``{}``: a
        collection this library did not write)."""
        return self.store.metadata()

    def _check_same_run(self, meta: dict, fix: str) -> None:
        have = meta.get("run") or {}
        mine = self.identity
        if have.get("run_id") != mine["run_id"] or have.get("encoder_fingerprint") != mine["encoder_fingerprint"]:
            theirs = describe_run(
                {
                    "run_id": have.get("run_id"),
                    "encoder_name": have.get("encoder_name"),
                    "encoder_fingerprint": have.get("encoder_fingerprint"),
                }
            )
            raise ZoomIndexError(
                f"{self.target.describe()} was built from {theirs} (dataset {have.get('dataset')}), not from "
                f"{describe_run(mine)} (dataset {mine['dataset']}): their vectors are not comparable; {fix}"
            )

    # ------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        run: Run | str | os.PathLike,
        texts: Sequence[str],
        ids: Sequence | None = None,
        payloads: Sequence | None = None,
        labels: Sequence[Sequence[str]] | None = None,
        *,
        target: QdrantTarget,
        level_names: Sequence[str] | None = None,
        kind: str = "flat",
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
        quantize: str | None = None,
        encoder: Any = None,
        vectors: np.ndarray | None = None,
        corpus_role: str = "query",
        overwrite: bool = False,
        batch_size: int = UPSERT_BATCH,
        show_progress: bool = False,
        device: str | None = "auto",
    ) -> QdrantIndex:
        """Encode ``texts`` with the run (as :meth:`ZoomIndex.build <fractal_embeddings.index.ZoomIndex.build>`)
        and upsert them into ``target``'s collection in batches of ``batch_size``. The collection is
        created when missing; one built by the same run with the same settings is updated in place
        (same point ids; points of items no longer in the corpus are deleted); one built from another
        run or with other settings is refused unless ``overwrite`` (then it is dropped and rebuilt).
        Everything is checked (items, options, the server, the collection) before anything is encoded."""
        if texts is None or len(texts) == 0:
            raise ZoomIndexError("empty corpus: there are no texts to index; give at least one text")
        check_int(batch_size, "batch_size", lo=1, error=ZoomIndexError)
        ix = cls(
            run,
            target,
            kind=kind,
            m=m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            quantize=quantize,
            level_names=level_names,
            encoder=encoder,
            corpus_role=corpus_role,
            device=device,
        )
        texts = [texts] if isinstance(texts, str) else list(texts)
        batch = ItemTable(ix.level_names).check(texts, ids, payloads, labels)  # before the server, before encoding
        E = None if vectors is None else ix.check_vectors(vectors, len(texts))
        try:
            ix.prepare(overwrite)
            if E is None:
                E = ix.embed(texts, role=ix.corpus_role, cache=True, show_progress=show_progress)
            ix.upsert(batch, E, batch_size=batch_size, show_progress=show_progress)
        except BaseException:
            ix.close()
            raise
        return ix

    def check_collection(self, overwrite: bool = False) -> str:
        """What a build would do with the target collection, checked and changing nothing: ``"create"``
        (none yet), ``"reuse"`` (built by this run with these settings: upserted again, idempotent) or
        ``"recreate"`` (another run, other settings or not ours, and ``overwrite``); refused otherwise."""
        meta = self.stored_meta()
        if meta is None:
            return "create"
        name = self.target.collection
        fix = f"pick another collection name (--collection) or pass --overwrite to rebuild {name!r}"
        try:
            if not meta:
                raise ZoomIndexError(
                    f"{self.target.describe()} exists and was not written by fractal-embeddings "
                    f"(no {META_KEY!r} metadata); {fix}"
                )
            self._check_same_run(meta, fix)
            settings = (meta.get("prefix_dims"), meta.get("kind"), meta.get("params"), meta.get("quantize", "none"))
            if settings != (list(self.dims), self.kind, dict(self.params), self.quantize):
                raise ZoomIndexError(
                    f"{self.target.describe()} was built with kind {meta.get('kind')} {meta.get('params') or ''}, "
                    f"quantize {settings[3]} and prefixes {meta.get('prefix_dims')}, not kind {self.kind} "
                    f"{dict(self.params) or ''}, quantize {self.quantize}; {fix}"
                )
        except ZoomIndexError:
            if not overwrite:
                raise
            return "recreate"
        return "reuse"

    def prepare(self, overwrite: bool = False) -> None:
        """Create the collection, or check that the existing one was built by this run with these settings
        (else refuse, or with ``overwrite`` drop it and create it again)."""
        action = self.check_collection(overwrite)
        if action == "reuse":  # marked incomplete until the upsert is done (a killed re-build is not taken as whole)
            self.store.set_metadata(self.collection_meta(False))
            return
        meta = self.collection_meta(complete=False)
        self.store.create(self.kind, self.params, meta, replace=action == "recreate", quantize=self.quantize)

    def upsert(
        self, batch: ItemBatch, E: np.ndarray, *, batch_size: int = UPSERT_BATCH, show_progress: bool = False
    ) -> None:
        """Write the items (rows 0..n-1) and their normalised prefixes in batches, delete points of items
        no longer in the corpus, then mark the collection complete with its size."""
        self.store.write(batch, E, self.level_names, batch_size=batch_size, show_progress=show_progress)
        self.size = len(batch.ids)
        self._table = None
        self.store.set_metadata(self.collection_meta(True))

    # ------------------------------------------------------------ open / load / save
    @classmethod
    def open(
        cls,
        run: Run | str | os.PathLike,
        target: QdrantTarget,
        *,
        encoder: Any = None,
        device: str | None = "auto",
    ) -> QdrantIndex:
        """An existing collection, with the run that built it (refused: a missing collection, an incomplete
        build, a collection built from another run)."""
        ix = cls(run, target, encoder=encoder, device=device)
        try:
            meta = ix.stored_meta()
            fix = "build it with `fractal index build RUN_DIR CORPUS --backend qdrant ...`"
            if meta is None:
                raise ZoomIndexError(f"{target.describe()}: no such collection; {fix}")
            if not meta:
                raise ZoomIndexError(f"{target.describe()} was not written by fractal-embeddings; {fix}")
            ix._check_same_run(meta, "search it with the run that built it, or rebuild it with this run (--overwrite)")
            if not meta.get("complete"):
                raise ZoomIndexError(f"{target.describe()}: its build did not complete; run the build again")
            ix.kind = str(meta.get("kind", "flat"))
            ix.params = dict(meta.get("params") or {})
            ix.quantize = check_quantize(meta.get("quantize", "none"))
            ix.level_names = tuple(meta.get("level_names") or ())
            ix.corpus_role = str(meta.get("corpus_role", "query"))
            ix.size = int(meta.get("size", 0))
        except BaseException:
            ix.close()
            raise
        return ix

    def info(self) -> dict:
        """The index metadata (JSON-ready): what ``index.json`` holds."""
        return self.describe(
            SCHEMA,
            index={
                "kind": self.kind,
                "metric": "cosine (named vector per prefix length, each L2-normalised)",
                "prefix_dims": list(self.dims),
                "vectors": {str(d): vector_name(d) for d in self.dims},
                "params": dict(self.params),
                **({"quantize": self.quantize} if self.quantize != "none" else {}),
            },
            collection=self.target.to_dict(),
        )

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index directory (``index.json`` naming the collection, and ``run/``) atomically.
        The collection itself stays where it is; the api key is not written."""
        if self.target.path == ":memory:":
            raise ZoomIndexError(
                "an in-memory Qdrant collection can't be saved (it ends with this process); build into a folder "
                "(path=DIR) or a server (url=URL)"
            )
        if self.size == 0:
            raise ZoomIndexError("empty corpus: the index has no items to save; build it first")
        with atomic_dir(out_dir, **target_checks(overwrite)) as tmp:
            dataclasses.replace(self.run).save(tmp / RUN_DIR)
            meta = {
                **self.info(),
                "qdrant_client_version": version("qdrant-client"),
                "library_version": __version__,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return Path(out_dir)

    @classmethod
    def load(
        cls,
        index_dir: str | os.PathLike,
        run: Run | str | os.PathLike | None = None,
        *,
        encoder: Any = None,
        device: str | None = "auto",
        api_key: str | None = None,
    ) -> QdrantIndex:
        """The index an index directory names (its collection opened and checked against ``index.json``);
        ``run`` must be the run it was built with; ``api_key`` (default ``$QDRANT_API_KEY``) for a server."""
        d = Path(index_dir)
        meta = read_index_meta(d)
        if meta.get("schema") != SCHEMA or meta.get("backend") != "qdrant":
            raise ZoomIndexError(
                f"{d / META_FILE}: not a Qdrant index (schema {meta.get('schema')!r}); open it with "
                "fractal_embeddings.index.load_index"
            )
        try:
            coll = dict(meta["collection"])
            size = int(meta["size"])
            ident = dict(meta["run"])
        except (KeyError, TypeError, ValueError) as e:
            raise ZoomIndexError(f"{d / META_FILE}: corrupt, missing or malformed field {e}; {REBUILD_FIX}") from None
        stored = load_saved_run(d)
        if run_identity(stored)["run_id"] != ident.get("run_id"):
            raise ZoomIndexError(f"{d}: the run saved with the index is not the one {META_FILE} names; {REBUILD_FIX}")
        ix = cls.open(stored, QdrantTarget.from_dict(coll, api_key), encoder=encoder, device=device)
        try:
            if ix.size != size:
                raise ZoomIndexError(
                    f"{ix.target.describe()} holds {ix.size} items, {d / META_FILE} says {size}: it was rebuilt "
                    f"since; {REBUILD_FIX}"
                )
            ix.check_run_of(d, run)
        except BaseException:
            ix.close()
            raise
        return ix

    # ------------------------------------------------------------ the collection as a table
    def _read_table(self) -> tuple[ItemTable, np.ndarray]:
        if self._table is None:
            self._table = self.store.read(self.level_names)
        return self._table

    ids = property(lambda self: self._read_table()[0].ids, doc="Item ids, by row (reads the collection).")
    texts = property(lambda self: self._read_table()[0].texts, doc="Item texts, by row (reads the collection).")
    payloads = property(lambda self: self._read_table()[0].payloads, doc="Item payloads, by row.")
    labels = property(lambda self: self._read_table()[0].labels, doc="Item class names per level, by row.")

    @property
    def vectors(self) -> np.ndarray:
        """The items' full vectors, L2-normalised (what the collection stores), ``(n, dim)``: every
        prefix's direction is the raw vector's (reads the collection)."""
        return self._read_table()[1]

    # ------------------------------------------------------------ search
    @property
    def has_coarse_labels(self) -> bool:
        """Whether the items carry a coarse label (the collection's levels; each point's is checked when it votes)."""
        return bool(self.level_names)

    def lookup(self, Q: np.ndarray, plan: SearchPlan, ef_search: int | None) -> SearchResults:
        """The search in the collection (:meth:`RunIndex.search <fractal_embeddings.index.base.RunIndex.search>`
        checks first): ``zoom`` queries the zoom's named vector, ``funnel`` prefetches ``candidates``
        points on the first block and re-scores them on the zoom's vector, ``routed`` filters on the
        voted coarse class."""
        Q = unit_rows(Q)
        params = self.store.search_params(self.kind, self.params, ef_search)
        routes = self._routes(Q, plan, params) if plan.mode is SearchMode.ROUTED else None
        first = (plan.first, int(plan.candidates or plan.k)) if plan.mode is SearchMode.FUNNEL else None
        reqs = [
            self.store.request(q, plan.zoom, plan.k, params, first=first, classes=routes[i].classes if routes else None)
            for i, q in enumerate(Q)
        ]
        return self._results(plan, self.store.query(reqs), routes)

    def _routes(self, Q: np.ndarray, plan: SearchPlan, params: Any) -> list[Route]:
        """Each query's coarse class, voted by its ``candidates`` nearest points on the first block."""
        assert plan.candidates is not None
        votes = self.store.query(
            [self.store.request(q, plan.first, plan.candidates, params, payload=["coarse"]) for q in Q]
        )
        routes = []
        for pts in votes:
            labels = [p.payload.get("coarse") for p in pts]
            if any(x is None for x in labels):
                raise ZoomIndexError(
                    f"{self.target.describe()} has items without a coarse label: routed search needs every "
                    "item's label; rebuild it from a labelled corpus or use --mode zoom or funnel"
                )
            routes.append(route(labels, self.level_names[0], plan.route_classes))
        return routes

    def _results(self, plan: SearchPlan, found: list[list], routes: list[Route] | None) -> SearchResults:
        n, k = len(found), plan.k
        width = min(k, self.size)
        scores = np.full((n, width), -np.inf, dtype=np.float32)
        rows = np.full((n, width), -1, dtype=np.int64)
        hits: list[list[Hit]] = []
        for qi, pts in enumerate(found):
            pts = sorted(pts, key=lambda p: (-p.score, int(p.payload["row"])))[:width]  # equal scores: lower row first
            hs = []
            for rank, p in enumerate(pts, start=1):
                pl = p.payload
                hs.append(
                    Hit(rank, int(pl["row"]), pl["id"], float(p.score), pl["text"], pl.get("labels"), pl.get("payload"))
                )
                scores[qi, rank - 1] = p.score
                rows[qi, rank - 1] = int(pl["row"])
            hits.append(hs)
        return SearchResults(plan.zoom, rows, scores, hits, plan.mode.value, plan.candidates, routes)
