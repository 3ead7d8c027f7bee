"""The FAISS zoom index: :class:`ZoomIndex`, a run's steerable vectors, each item stored once
(:class:`~fractal_embeddings.index.shared.SharedPrefixes`, the default layout) or with one FAISS index
per prefix length (:class:`~fractal_embeddings.index.prefix.PrefixIndexes`), and an item table
(:class:`~fractal_embeddings.index.items.ItemTable`); why, and the files of an index directory:
:mod:`fractal_embeddings.index`.

>>> from fractal_embeddings.index import ZoomIndex
>>> ix = ZoomIndex.build("runs/clinc-fractal", texts, labels=labels)     # encode + head, flat (exact)
>>> res = ix.search("can you move my dentist appointment", k=5, zoom="coarse")
>>> [(h.id, round(h.score, 3), h.text) for h in res[0]]
>>> ix.save("indexes/clinc")                     # FAISS files + index.json + a copy of the run
>>> ZoomIndex.load("indexes/clinc").search(["q1", "q2"], k=10, zoom=128)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._version import __version__
from ..atomic import atomic_dir
from ..errors import ZoomIndexError
from ..extras import require
from ..records import file_sha256
from ..runs import Run
from .base import Hit, RunIndex, SearchResults, describe_run, load_saved_run
from .folder import META_FILE, REBUILD_FIX, RUN_DIR, meta_json, read_index_meta, target_checks
from .items import COLUMNS as ITEM_COLUMNS
from .items import ItemTable
from .modes import ClassPartition, SearchMode, SearchPlan, merge_top_k, rerank, route
from .prefix import HNSW_DEFAULTS, PrefixIndexes
from .shared import SharedPrefixes, check_layout

__all__ = ["ADD_BATCH", "SCHEMA", "SCHEMAS", "ZoomIndex"]

SCHEMA = "fractal-embeddings/zoom-index/2"  # the shared layout (one matrix); /1: one index per prefix
SCHEMAS = {"shared": SCHEMA, "per-prefix": "fractal-embeddings/zoom-index/1"}
ADD_BATCH = 8_192  # texts encoded and added per step of a build (its memory: one batch, not the corpus)


class ZoomIndex(RunIndex):
    """Nearest-neighbour search at every prefix length of a trained run's embeddings (FAISS).

    Build with :meth:`build` (encodes texts with the run's encoder and head) or :meth:`load`; an
    empty index from the constructor takes texts with :meth:`add`. What it holds: ``run`` (whose
    head makes the vectors), ``items`` (an :class:`~fractal_embeddings.index.items.ItemTable`) and
    ``prefixes``: the vectors in the ``layout`` chosen, ``shared`` (default: each item stored once,
    :class:`~fractal_embeddings.index.shared.SharedPrefixes`, optionally ``quantize="int8"``) or
    ``per-prefix`` (one FAISS index per prefix length, :class:`~fractal_embeddings.index.prefix.PrefixIndexes`);
    ``ids``, ``texts``, ``payloads``, ``labels``, ``kind``, ``params``, ``layout``, ``quantize`` and
    ``indexes`` read through to those two."""

    backend = "faiss"

    def __init__(
        self,
        run: Run | str | os.PathLike,
        *,
        kind: str = "flat",
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
        layout: str = "shared",
        quantize: str | None = None,
        level_names: Sequence[str] | None = None,
        encoder: Any = None,
        corpus_role: str = "query",
        device: str | None = "auto",
    ) -> None:
        require("index", "a FAISS zoom index")
        layout, quantize = check_layout(layout, quantize)
        super().__init__(run, encoder=None, corpus_role=corpus_role, device=device)
        hnsw = {"m": m, "ef_construction": ef_construction, "ef_search": ef_search}
        self.prefixes: SharedPrefixes | PrefixIndexes = (
            SharedPrefixes(self.dims, kind, quantize=quantize, **hnsw)
            if layout == "shared"
            else PrefixIndexes(self.dims, kind, **hnsw)
        )
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
        """The full head vectors of the items, as added (not normalised), ``(n, dim)`` read-only; the shared
        layout rebuilds them from its unit vectors and norms (to float32 rounding; with int8, its precision)."""
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
    layout = property(lambda self: self.prefixes.layout, doc="``shared`` (one matrix) or ``per-prefix``.")
    quantize = property(lambda self: self.prefixes.quantize, doc="``none`` (float32) or ``int8``.")

    @property
    def faiss_type(self) -> str:
        return self.prefixes.faiss_type

    def info(self) -> dict:
        """The index metadata without the per-item columns (JSON-ready)."""
        return self.describe(
            SCHEMAS[self.layout],
            index={
                **({"layout": self.layout, "quantize": self.quantize} if self.layout == "shared" else {}),
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
        layout: str = "shared",
        quantize: str | None = None,
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
        the texts' head vectors when already computed (skips the encoding). ``layout`` / ``quantize``:
        how the vectors are stored (:mod:`~fractal_embeddings.index.shared`). Texts are encoded and
        added :data:`ADD_BATCH` at a time."""
        if texts is None or len(texts) == 0:
            raise ZoomIndexError("empty corpus: there are no texts to index; give at least one text")
        ix = cls(
            run,
            kind=kind,
            m=m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            layout=layout,
            quantize=quantize,
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
        if vectors is None:  # encoded batch by batch: only the head vectors are kept, not the encoder's
            parts = [
                self.embed(texts[s : s + ADD_BATCH], role=self.corpus_role, cache=True, show_progress=show_progress)
                for s in range(0, n, ADD_BATCH)
            ]
        else:
            E = self.check_vectors(vectors, n)
            parts = [E[s : s + ADD_BATCH] for s in range(0, n, ADD_BATCH)]
        # every text is encoded before the index changes (a failed encoding leaves it as it was); then each
        # batch's normalised copies are made and added one batch at a time
        for part in parts:
            self.prefixes.add(part)
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

    def lookup(self, Q: np.ndarray, plan: SearchPlan, ef_search: int | None) -> SearchResults:
        """The FAISS search (:meth:`RunIndex.search <fractal_embeddings.index.base.RunIndex.search>` checks
        first): ``zoom`` searches the zoom's prefix index, ``funnel`` re-ranks the first block's
        candidates exactly over the stored vectors, ``routed`` searches the voted classes' items."""
        routes = None
        if plan.mode is SearchMode.ZOOM:
            D, rows = self.prefixes.search(Q, plan.zoom, plan.k, ef_search)
        elif plan.mode is SearchMode.FUNNEL:
            _, cand = self.prefixes.search(Q[:, : plan.first], plan.first, plan.candidates or plan.k, ef_search)
            D, rows = rerank(Q, cand, self.prefixes.rows, plan.k)
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
        items of the class(es) it is routed to at the zoom (a flat index: an exact scan of the classes'
        rows, in per-class exact indexes for the per-prefix layout; an HNSW one: the zoom's graph
        restricted to the classes' rows)."""
        if self._partition is None:
            per_class = self.kind == "flat" and isinstance(self.prefixes, PrefixIndexes)
            self._partition = ClassPartition(self.coarse_labels(), self.prefixes.matrix if per_class else None)
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
            if part.vectors is not None:
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
            "library_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "items": self.items.columns(),
        }

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index directory atomically (a temporary directory beside it, then a rename).
        An existing index is replaced only with ``overwrite``; any other non-empty folder never."""
        if len(self) == 0:
            raise ZoomIndexError("empty corpus: the index has no items to save; add texts first")
        with atomic_dir(out_dir, **target_checks(overwrite)) as tmp:  # checked first, swapped in whole
            dataclasses.replace(self.run).save(tmp / RUN_DIR)  # a copy: saving must not re-point the caller's run
            files = self.prefixes.write(tmp)
            meta = self.metadata()
            meta["files"] = {name: file_sha256(tmp / name) for name in files}
            (tmp / META_FILE).write_text(meta_json(meta), encoding="utf-8")
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
        require("index", "a FAISS zoom index")
        d = Path(index_dir)
        saved = read_saved(d)
        spec = saved.spec
        hnsw = spec["params"] if spec["kind"] == "hnsw" else {}
        ix = cls(
            load_saved_run(d),
            kind=spec["kind"],
            layout=saved.layout,
            quantize=saved.quantize,
            level_names=saved.meta.get("level_names") or [],
            corpus_role=saved.meta.get("corpus_role", "passage"),
            device=device,
            **(
                {"m": hnsw["M"], "ef_construction": hnsw["ef_construction"], "ef_search": hnsw["ef_search"]}
                if hnsw
                else {}
            ),
        )
        ix.check_saved(d, saved)
        ix.check_run_of(d, run)
        ix.prefixes.read(d, spec["files"], saved.size, REBUILD_FIX)
        ix.items = ItemTable.from_columns(ix.level_names, *saved.columns)
        if encoder is not None:
            ix.encoder = encoder
        return ix

    def check_saved(self, d: Path, saved: SavedIndex) -> None:
        """Raise unless the run saved with the index fits ``index.json``: its head's prefixes, its identity."""
        if self.dims != tuple(saved.dims) or self.dim != saved.head_dim:
            raise ZoomIndexError(
                f"{d / META_FILE}: prefixes {saved.dims} don't fit the saved run's head "
                f"({self.n_blocks} x {self.block_dim}); {REBUILD_FIX}"
            )
        saved_ident = saved.meta.get("run") or {}
        if (
            saved_ident.get("run_id") != self.identity["run_id"]
            or saved_ident.get("encoder_fingerprint") != self.identity["encoder_fingerprint"]
        ):
            raise ZoomIndexError(
                f"{d}: the run saved with the index ({describe_run(self.identity)}) is not the one "
                f"{META_FILE} names; {REBUILD_FIX}"
            )


class SavedIndex(NamedTuple):
    """What :func:`read_saved` read from ``index.json``: the whole ``meta``, the size, the ``index``
    spec, its prefix lengths, the head's width, the four item columns, the layout and the quantiser."""

    meta: dict
    size: int
    spec: dict
    dims: list[int]
    head_dim: int
    columns: list[list]
    layout: str
    quantize: str


def read_saved(d: Path) -> SavedIndex:
    """The ``index.json`` of a FAISS index directory, checked (one line naming the fix): the backend and
    schema, its fields, item columns of its size, and every file against its sha256."""
    fix = REBUILD_FIX
    meta = read_index_meta(d)
    if meta.get("backend", "faiss") != "faiss":
        raise ZoomIndexError(
            f"{d}: a {meta.get('backend')} index, not a FAISS one; open it with "
            "fractal_embeddings.index.load_index (or `fractal search`)"
        )
    layouts = {schema: layout for layout, schema in SCHEMAS.items()}
    if meta.get("schema") not in layouts:
        raise ZoomIndexError(
            f"{d / META_FILE}: not a zoom index (schema {meta.get('schema')!r}, expected one of "
            f"{', '.join(map(repr, layouts))}); {fix}"
        )
    try:
        size = int(meta["size"])
        spec = meta["index"]
        dims = [int(x) for x in spec["prefix_dims"]]
        items = meta["items"]
        cols = [list(items[c]) for c in ITEM_COLUMNS]
        files = dict(meta["files"])
        head_dim = int(meta["head"]["dim"])
        layout = layouts[meta["schema"]]
        quantize = spec["quantize"] if layout == "shared" else "none"
        check_layout(layout, quantize)
    except (KeyError, TypeError, ValueError, ZoomIndexError) as e:
        raise ZoomIndexError(f"{d / META_FILE}: corrupt, missing or malformed field {e}; {fix}") from None
    if any(len(c) != size for c in cols):
        raise ZoomIndexError(f"{d / META_FILE}: corrupt, item columns don't have {size} rows; {fix}")
    for name, sha in files.items():
        p = d / name
        if not p.is_file():
            raise ZoomIndexError(f"{p}: missing; the index directory is incomplete, {fix}")
        if file_sha256(p) != sha:
            raise ZoomIndexError(f"{p}: does not match the sha256 in {META_FILE} (corrupt or changed); {fix}")
    return SavedIndex(meta, size, spec, dims, head_dim, cols, layout, quantize)


def _faiss_version() -> str | None:
    try:
        import faiss

        return getattr(faiss, "__version__", None)
    except ImportError:  # pragma: no cover
        return None
