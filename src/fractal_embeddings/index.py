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
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_dir, check_output_dir
from .errors import FractalError, InputDataError
from .evaluation import unit_rows as _unit

SCHEMA = "fractal-embeddings/zoom-index/1"
META_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
RUN_DIR = "run"
KINDS = ("flat", "hnsw")
HNSW_DEFAULTS = {"M": 32, "ef_construction": 200, "ef_search": 64}
TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


class ZoomIndexError(FractalError):
    """A zoom index that cannot be built, loaded or searched as asked (one line: problem and fix)."""


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
        return {"rank": self.rank, "id": self.id, "score": self.score, "text": self.text,
                "labels": self.labels, "payload": self.payload}


@dataclass
class SearchResults:
    """Hits of a batch of queries (a single query is a batch of one).

    ``rows`` / ``scores`` are ``(n_queries, k)`` arrays (row ``-1``, score ``-inf``: no hit, which
    only an approximate index can return); ``results[i]`` is the list of :class:`Hit` of query i."""

    zoom: int
    rows: np.ndarray
    scores: np.ndarray
    hits: list[list[Hit]] = field(repr=False)

    @property
    def ids(self) -> list[list]:
        return [[h.id for h in hs] for hs in self.hits]

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> list[Hit]:
        return self.hits[i]

    def __iter__(self):
        return iter(self.hits)


# ------------------------------------------------------------------ helpers


def _as_run(run):
    from .runs import Run, load_run

    if isinstance(run, Run):
        return run
    if isinstance(run, (str, os.PathLike)):
        return load_run(run)
    raise ZoomIndexError(f"expected a run directory or a Run, got {type(run).__name__}")


def _identity(run) -> dict:
    """What makes a run's vectors comparable with another's: run id, encoder, head dims."""
    rec = run.record
    h, enc = rec.head, rec.encoder
    return {"run_id": rec.run_id, "method": rec.method, "seed": rec.seed,
            "dataset": rec.dataset.name, "levels": rec.level_names,
            "encoder_name": enc.name, "encoder_model": enc.model,
            "encoder_fingerprint": enc.fingerprint, "encoder_dim": enc.dim,
            "n_blocks": h.n_blocks, "block_dim": h.block_dim, "head_kind": h.kind}


def _describe(ident: dict) -> str:
    return f"run {ident['run_id']} (encoder {ident['encoder_name']} {str(ident['encoder_fingerprint'])[:12]})"


def _json_value(value, what: str):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ZoomIndexError(f"{what} is not JSON-serialisable ({e}); payloads must be plain JSON values") from None
    return value


def _check_id(i):
    if isinstance(i, (bool, np.bool_)):
        raise ZoomIndexError(f"ids must be ints or strings, got {i!r}")
    if isinstance(i, (int, np.integer)):
        return int(i)
    if isinstance(i, str):
        return i
    raise ZoomIndexError(f"ids must be ints or strings, got {type(i).__name__} {i!r}")


def _target_checks(overwrite: bool) -> dict:
    return {"overwrite": overwrite, "marker": META_FILE, "what": "an index", "error": ZoomIndexError}


def check_target(out_dir, overwrite: bool = False) -> Path:
    """Raise unless ``out_dir`` may receive an index: absent, empty, or (with ``overwrite``) an index;
    never a file, a folder under a file, an unwritable place or a folder holding anything else
    (:func:`~fractal_embeddings.atomic.check_output_dir`)."""
    return check_output_dir(out_dir, **_target_checks(overwrite))


# -------------------------------------------------------------------- index
class ZoomIndex:
    """Nearest-neighbour search at every prefix length of a trained run's embeddings.

    Build with :meth:`build` (encodes texts with the run's encoder and head) or :meth:`load`; an
    empty index from the constructor takes texts with :meth:`add`."""

    def __init__(self, run, *, kind: str = "flat", m: int = HNSW_DEFAULTS["M"],
                 ef_construction: int = HNSW_DEFAULTS["ef_construction"], ef_search: int = HNSW_DEFAULTS["ef_search"],
                 level_names: Sequence[str] | None = None, encoder=None, corpus_role: str = "query",
                 device: str | None = "auto"):
        import faiss

        from .heads import Head

        self.run = _as_run(run)
        if self.run.head is not None and not isinstance(self.run.head, Head):
            raise ZoomIndexError(f"run {self.run.record.run_id}: its head ({type(self.run.head).__name__}) does not "
                                 "take sentence vectors; the zoom index needs a run with a head on the frozen encoder")
        h = self.run.record.head
        self.n_blocks, self.block_dim = h.n_blocks, h.block_dim
        self.dim = self.n_blocks * self.block_dim
        self.dims = tuple(j * self.block_dim for j in range(1, self.n_blocks + 1))
        if kind not in KINDS:
            raise ZoomIndexError(f"unknown index kind '{kind}'; use flat (exact) or hnsw (approximate)")
        self.kind = kind
        if kind == "hnsw":
            for name, v, lo in (("M", m, 2), ("ef_construction", ef_construction, 1), ("ef_search", ef_search, 1)):
                if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                    raise ZoomIndexError(f"HNSW {name} must be an integer >= {lo}, got {v!r}")
            self.params = {"M": int(m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)}
        else:
            self.params = {}
        from .encoders import ROLES

        if corpus_role not in ROLES:
            raise ZoomIndexError(f"corpus_role must be one of {', '.join(ROLES)}, got {corpus_role!r}")
        self.corpus_role = corpus_role
        self.level_names = tuple(level_names) if level_names is not None else tuple(self.run.level_names)
        self.indexes = {}
        for d in self.dims:
            if kind == "flat":
                ix = faiss.IndexFlatIP(d)
            else:
                ix = faiss.IndexHNSWFlat(d, self.params["M"], faiss.METRIC_INNER_PRODUCT)
                ix.hnsw.efConstruction = self.params["ef_construction"]
                ix.hnsw.efSearch = self.params["ef_search"]
            self.indexes[d] = ix
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        self.ids: list = []
        self.texts: list[str] = []
        self.payloads: list = []
        self.labels: list[list[str] | None] = []
        self._id_rows: dict = {}
        self._encoder = None
        self.device = device  # where the run's encoder runs for text queries and builds
        if encoder is not None:
            self.encoder = encoder

    # ----------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"ZoomIndex({len(self)} items, {self.kind}, prefixes {'/'.join(map(str, self.dims))}, "
                f"run {self.run.record.run_id!r})")

    @property
    def vectors(self) -> np.ndarray:
        """The full head vectors of the items, as added (not normalised), ``(n, dim)`` read-only."""
        v = self._vectors.view()
        v.flags.writeable = False
        return v

    @property
    def identity(self) -> dict:
        return _identity(self.run)

    @property
    def faiss_type(self) -> str:
        return "IndexFlatIP" if self.kind == "flat" else "IndexHNSWFlat"

    def info(self) -> dict:
        """The index metadata without the per-item columns (JSON-ready)."""
        return {"schema": SCHEMA, "size": len(self), "run": self.identity, "encoder": self.run.record.encoder.to_dict(),
                "head": {"n_blocks": self.n_blocks, "block_dim": self.block_dim, "dim": self.dim,
                         "kind": self.run.record.head.kind},
                "index": {"kind": self.kind, "faiss_type": self.faiss_type, "metric": "cosine (inner product of L2-normalised prefixes)",
                          "prefix_dims": list(self.dims), "params": dict(self.params),
                          "files": {str(d): f"prefix-{d}.faiss" for d in self.dims}},
                "corpus_role": self.corpus_role, "query_role": "query", "level_names": list(self.level_names)}

    # -------------------------------------------------------------- encoder
    @property
    def encoder(self):
        """The run's encoder, rebuilt from its record on first use (and checked against it)."""
        if self._encoder is None:
            self.encoder = self.run.encoder(self.device)
        return self._encoder

    @encoder.setter
    def encoder(self, enc) -> None:
        want = self.run.record.encoder
        have = enc.identity().as_dict()
        if have.get("fingerprint") != want.fingerprint or have.get("name") != want.name:
            raise ZoomIndexError(
                f"the index's run {self.run.record.run_id} was trained on encoder {want.name} "
                f"({str(want.fingerprint)[:12]}), not {have.get('name')} ({str(have.get('fingerprint'))[:12]}); "
                f"pass encoder=None to use the run's own encoder ({want.model or want.name})")
        self._encoder = enc

    def embed(self, texts: Sequence[str], role: str = "query", cache: bool = False, show_progress: bool = False) -> np.ndarray:
        """Texts -> head vectors ``(n, dim)`` with the run's encoder and head (``cache``: through the
        encoder's embedding cache, as for a corpus)."""
        enc = self.encoder
        texts = list(texts)
        X = enc.embed(texts, role=role, show_progress=show_progress) if cache else enc.encode(texts, role=role)
        head = self.run.head
        want = head.input_dim if head is not None else self.run.record.encoder.dim
        if want is not None and X.shape[1] != want:
            raise ZoomIndexError(f"the run's head expects {want}-d encoder vectors, the encoder gives {X.shape[1]}-d; "
                                 "rebuild the run with this encoder")
        return self.run.transform(X)

    # --------------------------------------------------------------- build
    @classmethod
    def build(cls, run, texts: Sequence[str], ids: Sequence | None = None, payloads: Sequence | None = None,
              labels: Sequence[Sequence[str]] | None = None, *, level_names: Sequence[str] | None = None,
              kind: str = "flat", m: int = HNSW_DEFAULTS["M"], ef_construction: int = HNSW_DEFAULTS["ef_construction"],
              ef_search: int = HNSW_DEFAULTS["ef_search"], encoder=None, vectors: np.ndarray | None = None,
              corpus_role: str = "query", show_progress: bool = False, device: str | None = "auto") -> ZoomIndex:
        """An index of ``texts`` built with a trained run (a :class:`~fractal_embeddings.runs.Run` or
        its directory): each text is encoded with the run's encoder (cached, role ``corpus_role``)
        and head. ``labels[i]`` holds item i's class names, one per level (``level_names``, default
        the run's levels); ``payloads[i]`` any JSON value; ``ids`` default to 0..n-1. ``vectors``:
        the texts' head vectors when already computed (skips the encoding)."""
        if texts is None or len(texts) == 0:
            raise ZoomIndexError("empty corpus: there are no texts to index; give at least one text")
        ix = cls(run, kind=kind, m=m, ef_construction=ef_construction, ef_search=ef_search,
                 level_names=level_names, encoder=encoder, corpus_role=corpus_role, device=device)
        ix.add(texts, ids=ids, payloads=payloads, labels=labels, vectors=vectors, show_progress=show_progress)
        return ix

    def add(self, texts: Sequence[str], ids: Sequence | None = None, payloads: Sequence | None = None,
            labels: Sequence[Sequence[str]] | None = None, *, vectors: np.ndarray | None = None,
            show_progress: bool = False) -> np.ndarray:
        """Encode and add texts (see :meth:`build`); returns the rows they got in the index."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts) if texts is not None else []
        n = len(texts)
        if n == 0:
            raise ZoomIndexError("empty corpus: there are no texts to add; give at least one text")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ZoomIndexError(f"text {i} is a {type(t).__name__}, not a string")
        if ids is None:
            start = max((i + 1 for i in self.ids if isinstance(i, int)), default=0)
            ids = list(range(start, start + n))
        else:
            ids = [_check_id(i) for i in ids]
        if len(ids) != n:
            raise ZoomIndexError(f"{len(ids)} ids for {n} texts; give one id per text")
        seen = set(self._id_rows)
        for i in ids:
            if i in seen:
                raise ZoomIndexError(f"duplicate id {i!r}: ids must be unique in the index")
            seen.add(i)
        if payloads is None:
            payloads = [None] * n
        payloads = list(payloads)
        if len(payloads) != n:
            raise ZoomIndexError(f"{len(payloads)} payloads for {n} texts; give one payload per text (or None)")
        for i, p in enumerate(payloads):
            _json_value(p, f"payload {i}")
        if labels is None:
            labels = [None] * n
        labels = [None if row is None else [row] if isinstance(row, str) else
                  [str(x) for x in (row.tolist() if isinstance(row, np.ndarray) else row)] for row in labels]
        if len(labels) != n:
            raise ZoomIndexError(f"{len(labels)} label rows for {n} texts; give one row (class names per level) per text")
        nl = len(self.level_names)
        for i, row in enumerate(labels):
            if row is not None and len(row) != nl:
                raise ZoomIndexError(f"label row {i} has {len(row)} names for {nl} levels ({', '.join(self.level_names)}); "
                                     "give one class name per level, coarse -> fine")
        if vectors is None:
            E = self.embed(texts, role=self.corpus_role, cache=True, show_progress=show_progress)
        else:
            E = np.asarray(vectors, dtype=np.float32)
            if E.ndim != 2 or E.shape != (n, self.dim):
                raise ZoomIndexError(f"vectors have shape {E.shape}; expected ({n}, {self.dim}): one {self.dim}-d head "
                                     "vector (run.transform of the encoder vector) per text")
        if not np.isfinite(E).all():
            raise ZoomIndexError("the vectors to add contain NaN or inf")
        first = len(self)
        for d, ix in self.indexes.items():
            ix.add(_unit(E[:, :d]))
        self._vectors = np.concatenate([self._vectors, E.astype(np.float32)], axis=0)
        for r, i in enumerate(ids):
            self._id_rows[i] = first + r
        self.ids += ids
        self.texts += texts
        self.payloads += payloads
        self.labels += labels
        return np.arange(first, first + n)

    # -------------------------------------------------------------- search
    def zoom_dims(self, zoom) -> int:
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
        raise ZoomIndexError(f"zoom {zoom!r} is not one of this index's zooms; use coarse, fine or a prefix length "
                             f"({', '.join(map(str, self.dims))})")

    def _query_matrix(self, queries, zd: int) -> np.ndarray:
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
            raise ZoomIndexError(f"query vectors have {w} dims; this index expects {self.dim}-d head vectors{alt}{hint}")
        if not np.isfinite(Q).all():
            raise ZoomIndexError("query vectors contain NaN or inf")
        return Q[:, :zd]

    def search(self, queries, k: int = 10, zoom="fine", *, ef_search: int | None = None) -> SearchResults:
        """The ``k`` nearest items of each query at a zoom (cosine of the prefixes).

        ``queries``: a text, a list of texts (encoded with the run's encoder and head), or head
        vectors ``(dim,)`` / ``(n, dim)`` (or already cut to the zoom's length). ``zoom``: ``"coarse"``
        (the first block), ``"fine"`` (the whole vector) or a prefix length. ``ef_search`` (HNSW)
        overrides the index's search breadth for this call."""
        import faiss

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ZoomIndexError(f"k must be an integer >= 1, got {k!r}")
        if ef_search is not None and (isinstance(ef_search, bool) or not isinstance(ef_search, (int, np.integer))
                                      or ef_search < 1):  # before any query is encoded
            raise ZoomIndexError(f"ef_search must be an integer >= 1, got {ef_search!r}")
        zd = self.zoom_dims(zoom)
        if len(self) == 0:
            raise ZoomIndexError("the index is empty; add texts before searching")
        Q = _unit(self._query_matrix(queries, zd))
        kk = min(int(k), len(self))
        ix = self.indexes[zd]
        if self.kind == "hnsw":
            ef = self.params["ef_search"] if ef_search is None else int(ef_search)
            if ef < 1:
                raise ZoomIndexError(f"ef_search must be >= 1, got {ef}")
            p = faiss.SearchParametersHNSW()
            p.efSearch = max(ef, kk)
            D, I = ix.search(Q, kk, params=p)
        else:
            D, I = ix.search(Q, kk)
        D = np.where(I >= 0, D, -np.inf).astype(np.float32)
        hits = []
        for qi in range(len(I)):
            row_hits = []
            for rank, (r, s) in enumerate(zip(I[qi], D[qi]), start=1):
                if r < 0:
                    continue
                r = int(r)
                lab = self.labels[r]
                row_hits.append(Hit(rank, r, self.ids[r], float(s), self.texts[r],
                                    dict(zip(self.level_names, lab)) if lab is not None else None, self.payloads[r]))
            hits.append(row_hits)
        return SearchResults(zd, I.astype(np.int64), D, hits)

    # ------------------------------------------------------- model checks
    def check_run(self, run) -> None:
        """Raise unless ``run`` is the run this index was built with (same id, encoder and head dims)."""
        other = _identity(_as_run(run))
        mine = self.identity
        keys = ("run_id", "encoder_fingerprint", "encoder_name", "n_blocks", "block_dim")
        if any(other[k] != mine[k] for k in keys):
            raise ZoomIndexError(f"this index was built with {_describe(mine)}, not {_describe(other)}: their vectors are "
                                 "not comparable; use the index's own run (load without run=) or rebuild the index with "
                                 "this run (fractal index build RUN_DIR CORPUS --out DIR --overwrite)")

    # -------------------------------------------------------------- disk
    def metadata(self) -> dict:
        return {**self.info(), "faiss_version": _faiss_version(), "library_version": _library_version(),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "items": {"ids": list(self.ids), "texts": list(self.texts), "payloads": list(self.payloads),
                          "labels": list(self.labels)}}

    def save(self, out_dir, overwrite: bool = False) -> Path:
        """Write the index directory atomically (a temporary directory beside it, then a rename).
        An existing index is replaced only with ``overwrite``; any other non-empty folder never."""
        import faiss

        from .records import file_sha256

        if len(self) == 0:
            raise ZoomIndexError("empty corpus: the index has no items to save; add texts first")
        with atomic_dir(out_dir, **_target_checks(overwrite)) as tmp:  # checked first, swapped in whole
            self.run.save(tmp / RUN_DIR)
            files = {}
            for d, ix in self.indexes.items():
                name = f"prefix-{d}.faiss"
                faiss.write_index(ix, str(tmp / name))
                files[name] = None
            np.save(tmp / VECTORS_FILE, self._vectors, allow_pickle=False)
            files[VECTORS_FILE] = None
            meta = self.metadata()
            meta["files"] = {name: file_sha256(tmp / name) for name in files}
            (tmp / META_FILE).write_text(_meta_json(meta), encoding="utf-8")
        return Path(out_dir)

    @classmethod
    def load(cls, index_dir, run=None, *, encoder=None, device: str | None = "auto") -> ZoomIndex:
        """An index saved by :meth:`save`, every file checked against ``index.json``. Text queries use
        the run saved with the index; ``run`` (a Run or its directory) must be that same run."""
        import faiss

        from .records import RunRecordError, file_sha256
        from .runs import load_run

        d = Path(index_dir)
        fix = "rebuild it with `fractal index build RUN_DIR CORPUS --out DIR --overwrite`"
        if not d.is_dir():
            raise ZoomIndexError(f"{d}: no such index directory; build one with `fractal index build RUN_DIR CORPUS --out {d}`")
        if not (d / META_FILE).is_file():
            raise ZoomIndexError(f"{d}: not a zoom index (no {META_FILE}); pass the directory `fractal index build --out` wrote")
        try:
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ZoomIndexError(f"{d / META_FILE}: corrupt, not readable JSON ({str(e)[:80]}); {fix}") from None
        if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
            got = meta.get("schema") if isinstance(meta, dict) else None
            raise ZoomIndexError(f"{d / META_FILE}: not a zoom index (schema {got!r}, expected {SCHEMA!r}); {fix}")
        try:
            size = int(meta["size"])
            spec = meta["index"]
            dims = [int(x) for x in spec["prefix_dims"]]
            items = meta["items"]
            cols = [list(items[c]) for c in ("ids", "texts", "payloads", "labels")]
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
        ix = cls(stored, kind=spec["kind"], level_names=meta.get("level_names") or [],
                 corpus_role=meta.get("corpus_role", "passage"), device=device,
                 **({"m": spec["params"]["M"], "ef_construction": spec["params"]["ef_construction"],
                     "ef_search": spec["params"]["ef_search"]} if spec["kind"] == "hnsw" else {}))
        if ix.dims != tuple(dims) or ix.dim != int(head["dim"]):
            raise ZoomIndexError(f"{d / META_FILE}: prefixes {dims} don't fit the saved run's head "
                                 f"({ix.n_blocks} x {ix.block_dim}); {fix}")
        saved_ident = meta.get("run") or {}
        if saved_ident.get("run_id") != ix.identity["run_id"] or \
                saved_ident.get("encoder_fingerprint") != ix.identity["encoder_fingerprint"]:
            raise ZoomIndexError(f"{d}: the run saved with the index ({_describe(ix.identity)}) is not the one "
                                 f"{META_FILE} names; {fix}")
        if run is not None:
            try:
                ix.check_run(run)
            except ZoomIndexError as e:
                raise ZoomIndexError(f"{d}: {e}") from None
        for dd in dims:
            name = spec["files"][str(dd)]
            try:
                fx = faiss.read_index(str(d / name))
            except RuntimeError as e:
                raise ZoomIndexError(f"{d / name}: not a readable FAISS index ({str(e).splitlines()[-1][:80]}); {fix}") from None
            if fx.d != dd or fx.ntotal != size:
                raise ZoomIndexError(f"{d / name}: holds {fx.ntotal} x {fx.d}-d vectors, expected {size} x {dd}; {fix}")
            ix.indexes[dd] = fx
        try:
            vec = np.load(d / VECTORS_FILE, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ZoomIndexError(f"{d / VECTORS_FILE}: not a readable array ({str(e)[:80]}); {fix}") from None
        if vec.shape != (size, ix.dim):
            raise ZoomIndexError(f"{d / VECTORS_FILE}: shape {vec.shape}, expected ({size}, {ix.dim}); {fix}")
        ix._vectors = np.asarray(vec, dtype=np.float32)
        ids, ix.texts, ix.payloads, labels = cols
        ix.ids = [_check_id(i) for i in ids]
        ix.labels = [None if r is None else list(r) for r in labels]
        ix._id_rows = {i: r for r, i in enumerate(ix.ids)}
        if encoder is not None:
            ix.encoder = encoder
        return ix


def _meta_json(meta: dict) -> str:
    """``index.json``: one top-level key per line (sorted), each value compact JSON, so the header
    stays readable and the per-item columns (one line) don't grow it by a line per item."""
    def dump(v) -> str:
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
@dataclass
class Corpus:
    """Texts to index, with ids, payloads and per-level label names (``labels[i]``, or ``None``)."""

    texts: list[str]
    ids: list
    payloads: list
    labels: list | None
    level_names: tuple[str, ...]
    source: dict

    def __len__(self) -> int:
        return len(self.texts)


def _drop_empty(texts, keep_rows, source: str) -> list[int]:
    rows = [i for i in keep_rows if isinstance(texts[i], str) and texts[i].strip()]
    dropped = len(keep_rows) - len(rows)
    if dropped:
        warnings.warn(f"{source}: dropped {dropped} empty or missing texts", stacklevel=3)
    return rows


def read_corpus(source: str, *, split: str | None = None, text: str = "text", levels: Sequence[str] | None = None,
                id_column: str | None = None) -> Corpus:
    """Texts to index from a built-in dataset name (its ``split``, default ``train``, with class
    names at each level), a ``.txt`` file (one text per line; blank lines skipped; id = line index,
    0-based) or a CSV/TSV/JSONL/Parquet file (column ``text``; ``levels`` columns give labels,
    ``id_column`` ids (default: row index, 0-based); the other columns become each item's payload; a
    ``split`` column is filtered by ``split`` when given)."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        if path.is_dir():
            raise InputDataError(f"{path} is a directory, not a file; pass a .txt file (one text per line)")
        if not path.is_file():
            raise InputDataError(f"{path}: no such file")
        try:
            lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): ids are the file's line indices
        except UnicodeDecodeError:
            from .data.loaders import decode_error

            raise decode_error(path) from None
        if lines and lines[-1] == "":
            lines.pop()
        if levels:
            raise InputDataError(f"{path}: a .txt corpus has no label columns; drop --levels or use a CSV/JSONL file")
        rows = _drop_empty(lines, list(range(len(lines))), str(path))
        if not rows:
            raise ZoomIndexError(f"empty corpus: {path} has no non-empty lines")
        return Corpus([lines[i] for i in rows], rows, [None] * len(rows), None, (),
                      {"kind": "txt", "path": str(path)})
    if suffix in TABLE_SUFFIXES:
        return _table_corpus(path, split, text, levels, id_column)
    if path.exists() and path.is_file():
        raise InputDataError(f"{path}: unsupported file type '{path.suffix}'; use .txt, .csv, .tsv, .jsonl or .parquet")
    from .data import load_dataset

    ds = load_dataset(source, tuple(levels) if levels else None)
    split = split or "train"
    sp = ds.split(split)
    if len(sp) == 0:
        raise ZoomIndexError(f"empty corpus: split '{split}' of {ds.name} has no rows")
    classes = [lv.classes for lv in ds.levels]
    labels = [[classes[k][c] for k, c in enumerate(row)] for row in sp.labels.tolist()]
    return Corpus(list(sp.texts), list(range(len(sp))), [None] * len(sp), labels, ds.level_names,
                  {"kind": "dataset", "name": ds.name, "split": split, "fingerprint": ds.fingerprint()})


def _payloads(df, extra: list, keep: list[int], path: Path) -> list:
    """The other columns of the kept rows as JSON objects; a column JSON can't hold (binary) is left out, with a warning."""
    def as_json(cols):
        return json.loads(df[cols].iloc[keep].to_json(orient="records"))

    try:
        return as_json(extra)
    except (ValueError, TypeError, OverflowError, UnicodeError):
        good, bad = [], []
        for c in extra:
            try:
                as_json([c])
                good.append(c)
            except (ValueError, TypeError, OverflowError, UnicodeError):
                bad.append(c)
        warnings.warn(f"{path}: column{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} left out of the "
                      "payloads: its values can't be stored as JSON (binary data?)", stacklevel=4)
        return as_json(good) if good else [None] * len(keep)


def _table_corpus(path: Path, split, text, levels, id_column) -> Corpus:
    from .data.tabular import _read_frame, check_scalar_columns, describe_columns

    df = _read_frame(path)
    if len(df) == 0:
        raise ZoomIndexError(f"empty corpus: {path} has no rows")
    levels = list(levels or [])
    wanted = [text, *levels] + ([id_column] if id_column else []) + (["split"] if split else [])
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputDataError(f"{path}: no column {', '.join(repr(c) for c in missing)}; the file has "
                             f"{describe_columns(df.columns)} (set --text / --levels / --id)")
    check_scalar_columns(df, [text, *levels] + (["split"] if split else []), path)
    keep = list(range(len(df)))
    if split:
        col = df["split"].astype(str).str.strip().str.lower().tolist()
        keep = [i for i in keep if col[i] == split]
    texts = [None if (isinstance(t, float) and math.isnan(t)) else t for t in df[text].tolist()]
    for i in keep:
        if texts[i] is not None and not isinstance(texts[i], str):
            texts[i] = str(texts[i])
    keep = _drop_empty(texts, keep, str(path))
    if not keep:
        raise ZoomIndexError(f"empty corpus: {path} has no rows with text" + (f" in split '{split}'" if split else ""))
    extra = [c for c in df.columns if c not in {text, *levels, id_column, "split"}]
    payloads = _payloads(df, extra, keep, path) if extra else [None] * len(keep)
    labels = None
    if levels:
        cols = [df[lv].tolist() for lv in levels]
        labels = [["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in (c[i] for c in cols)]
                  for i in keep]
    if id_column:
        raw = df[id_column].tolist()
        ids = [raw[i].item() if isinstance(raw[i], np.generic) else raw[i] for i in keep]
        ids = [i if isinstance(i, (int, str)) and not isinstance(i, bool) else str(i) for i in ids]
    else:
        ids = keep
    return Corpus([texts[i] for i in keep], ids, payloads, labels, tuple(levels),
                  {"kind": path.suffix.lower().lstrip("."), "path": str(path), "split": split})


def build_from_source(run, source: str, *, split: str | None = None, text: str = "text",
                      levels: Sequence[str] | None = None, id_column: str | None = None, **build_options) -> ZoomIndex:
    """:func:`read_corpus` + :meth:`ZoomIndex.build` (what ``fractal index build`` runs)."""
    corpus = read_corpus(source, split=split, text=text, levels=levels, id_column=id_column)
    return ZoomIndex.build(run, corpus.texts, corpus.ids, corpus.payloads, corpus.labels,
                           level_names=corpus.level_names if corpus.labels is not None else None, **build_options)
