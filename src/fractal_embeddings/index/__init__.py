"""Zoom indexes: nearest-neighbour search over steerable embeddings at a chosen zoom level.

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

* **Each item stored once** (``layout="shared"``, the default; :mod:`~fractal_embeddings.index.shared`).
  The cosine of two prefixes is not a function of the full vectors' cosine (nor of their inner
  product restricted to ``d`` dims unless each prefix has unit norm), but it is one of the unit full
  vector ``u`` and the prefix norms: ``cos_d = (u[:d] . q / |q|) * |x| / |x[:d]|``. So one matrix of
  unit full vectors (one FAISS index), the first block's unit vectors (a small coarse index for the
  coarse zoom and the first passes) and one norm per prefix serve every zoom exactly: 1.27x the full
  vectors for 4 blocks. ``layout="per-prefix"`` (:mod:`~fractal_embeddings.index.prefix`, what earlier
  versions wrote; still read) keeps one FAISS index per prefix length plus the full vectors: 3.5x.
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
fingerprint, head dims, index kind, layout, quantiser and parameters, and per item its id, text,
payload and label names; sha256 of every other file), the vectors (shared layout: ``full.faiss``,
``prefix-<block>.faiss`` and ``norms.npy``; per-prefix: one ``prefix-<d>.faiss`` per prefix and
``vectors.npy``; ``faiss.write_index``, ``numpy.save``) and ``run/`` (a copy of the run's
record and weights, checked against its own sha256 on load, so text queries need nothing else).
Nothing is pickled. :meth:`ZoomIndex.save` writes everything into a temporary directory beside the
target, which then takes its place in one step (an index being replaced with ``overwrite`` is
exchanged with it, then deleted; :mod:`~fractal_embeddings.atomic`), so the path always holds the
old index or the new one and a reader never sees a half-written index.

Search modes and backends
-------------------------
:meth:`ZoomIndex.search` answers in three modes (:mod:`~fractal_embeddings.index.modes`): ``zoom``
(k-NN at one prefix, the default), ``funnel`` (the first block's index returns ``candidates`` items,
re-ranked exactly at the zoom) and ``routed`` (the query's coarse class, voted by its nearest items at
the first block; only that class's items are searched at the zoom: a flat index scans the class's
rows exactly (the per-prefix layout: in a FAISS index per class), an HNSW index is searched with a
filter on the class's rows).
:class:`QdrantIndex` is the same index in a Qdrant collection (an embedded folder or a server, a
:class:`QdrantTarget`); :func:`load_index` opens either from its directory (``index.json`` says
which backend wrote it). :class:`RunIndex` is what both share: the run, its encoder, the zooms, the
checks of queries and runs, and the search template (:meth:`RunIndex.search` checks the request
and encodes the queries; each backend implements only its lookup).

Modules
-------
Imports only go down this list (nothing outside the package but the deploy layer imports it):

* :mod:`~fractal_embeddings.index.folder`: the index directory (``index.json``, ``run/``), the
  backend that wrote it, the check of an output directory;
* :mod:`~fractal_embeddings.index.corpus`: corpus files and datasets -> :class:`Corpus`
  (:func:`read_corpus`);
* :mod:`~fractal_embeddings.index.items`: the item table (ids, texts, payloads, labels);
* :mod:`~fractal_embeddings.index.prefix`: the FAISS indexes per prefix and the full vectors;
* :mod:`~fractal_embeddings.index.shared`: the one-matrix layout (each item once; int8);
* :mod:`~fractal_embeddings.index.modes`: the search plan and the modes' logic (vote, re-rank, merge);
* :mod:`~fractal_embeddings.index.base`: :class:`Hit`, :class:`SearchResults`, :class:`RunIndex`;
* :mod:`~fractal_embeddings.index.zoom`: :class:`ZoomIndex` (FAISS);
* :mod:`~fractal_embeddings.index.qdrant_target`, :mod:`~fractal_embeddings.index.qdrant`:
  :class:`QdrantTarget`, :class:`QdrantIndex`;
* :mod:`~fractal_embeddings.index.backends`: :func:`load_index`, :func:`build_from_source`.
"""

from ..errors import ZoomIndexError
from .backends import build_from_source, load_index, prepare_build
from .base import Hit, RunIndex, SearchResults, as_run, describe_run, run_identity
from .corpus import TABLE_SUFFIXES, TEXT_SUFFIXES, Corpus, read_corpus
from .folder import BACKENDS, META_FILE, RUN_DIR, check_target, index_backend, read_index_meta
from .modes import MODES, Route, SearchMode, check_mode
from .prefix import HNSW_DEFAULTS, KINDS, VECTORS_FILE
from .qdrant import QdrantIndex
from .qdrant_target import API_KEY_ENV, QdrantTarget
from .zoom import SCHEMA, ZoomIndex

__all__ = [
    "API_KEY_ENV",
    "BACKENDS",
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
    "QdrantIndex",
    "QdrantTarget",
    "Route",
    "RunIndex",
    "SearchMode",
    "SearchResults",
    "ZoomIndex",
    "ZoomIndexError",
    "as_run",
    "build_from_source",
    "check_mode",
    "check_target",
    "describe_run",
    "index_backend",
    "load_index",
    "prepare_build",
    "read_corpus",
    "read_index_meta",
    "run_identity",
]
