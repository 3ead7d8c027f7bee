"""The one-matrix FAISS layout of a zoom index (``layout="shared"``, the default): each item is stored
once, and every prefix length is served from that one matrix.

What is stored, per item (default head, 4 x 64 dims, float32):

* the **full vector, L2-normalised**, in one FAISS index (``full.faiss``: ``IndexFlatIP``, or
  ``IndexHNSWFlat`` for ``kind="hnsw"``; ``IndexScalarQuantizer`` / ``IndexHNSWSQ`` with 8-bit codes
  for ``quantize="int8"``): 1,024 bytes (256 with int8);
* the **first block, L2-normalised**, in a small coarse index (``prefix-<block>.faiss``, the same
  kind): 256 bytes (64 with int8). The first block is what the coarse zoom, the funnel's first pass
  and the routed vote search, so it gets a contiguous index of its own;
* the **norms of the item's prefixes** (``norms.npy``, one float32 per block): 16 bytes.

That is 1,296 bytes per item in float32 (336 with int8), against 3,584 for the per-prefix layout
(:mod:`~fractal_embeddings.index.prefix`: the full vectors plus one copy per prefix length).

Why one matrix is enough: with ``u = x / |x|`` stored and the prefix norms ``N_j = |x[:d_j]|`` kept,
the cosine of a query prefix ``q`` with the item's ``d_j``-dim prefix is
``(u[:d_j] . q / |q|) * |x| / N_j``: a dot product on the stored matrix, rescaled per row. For heads
that normalise each block (``fractal``'s), ``|x| / N_j = sqrt(B / j)`` for every row, so the rescaling
changes no ranking; for other heads the stored norms make it exact all the same. The coarse and
the full zoom are searched in their FAISS indexes exactly as in the per-prefix layout (the same
vectors, the same index type: the same answers); a middle zoom (128 or 192 dims by default) is an
exact scan of the matrix in row chunks (:data:`SCAN_ROWS`), and so is any search restricted to a
subset of rows on a flat index (a routed search reads only its classes' rows).

What HNSW needs: a graph is built in one metric, so a graph per prefix length would need its own
copy of that prefix's vectors beside it (FAISS's HNSW indexes keep their vectors). The shared layout
keeps graphs for the first block and the full vector (the zooms searched most, and the first pass of
the funnel and routed modes) and scans the middle zooms exactly; ``layout="per-prefix"`` keeps a
graph per prefix when middle zooms must be approximate-fast at the price of the copies.

``quantize="int8"``: FAISS's 8-bit scalar quantiser (a per-dimension range learned from the first
batch added, at least :data:`INT8_MIN_ROWS` vectors; values outside it are clipped) stores a byte per
dimension; the middle-zoom scans decode the codes chunk by chunk. Scores and rankings are then
approximate (recall in ``bench/scale.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ZoomIndexError
from ..evaluation import unit_rows
from .prefix import (
    HNSW_DEFAULTS,
    RowSubset,
    check_params,
    checked_batch,
    faiss_search,
    prefix_file,
    read_array,
    read_faiss,
)

__all__ = ["LAYOUTS", "QUANTIZERS", "SCAN_ROWS", "SharedPrefixes", "check_layout", "check_quantize"]

LAYOUTS = ("shared", "per-prefix")
QUANTIZERS = ("none", "int8")
SCAN_ROWS = 65_536  # rows of the matrix scored per step of a middle-zoom scan (fewer for many queries)
INT8_MIN_ROWS = 1_000  # the first batch of an int8 index: its range is learned from these rows
SCAN_SCORES = 1 << 24  # at most this many scores (queries x rows) per step
FULL_FILE = "full.faiss"
NORMS_FILE = "norms.npy"
FAISS_TYPES = {
    ("flat", "none"): "IndexFlatIP",
    ("hnsw", "none"): "IndexHNSWFlat",
    ("flat", "int8"): "IndexScalarQuantizer",
    ("hnsw", "int8"): "IndexHNSWSQ",
}


def check_quantize(quantize: Any) -> str:
    """The quantiser, checked (``None`` reads as ``"none"``)."""
    q = "none" if quantize is None else quantize
    if q not in QUANTIZERS:
        raise ZoomIndexError(f"unknown quantize {quantize!r}; use none (float32) or int8")
    return str(q)


def check_layout(layout: Any, quantize: Any) -> tuple[str, str]:
    """The layout and the quantiser, checked (one-line errors naming the choices): ``quantize`` ``None``
    reads as ``"none"``; only the shared layout is quantised."""
    if layout not in LAYOUTS:
        raise ZoomIndexError(f"unknown index layout {layout!r}; use shared (one matrix, the default) or per-prefix")
    q = check_quantize(quantize)
    if q != "none" and layout != "shared":
        raise ZoomIndexError(f"quantize={q} needs layout='shared'; drop the quantizer or use the shared layout")
    return layout, q


def _new_index(d: int, kind: str, params: dict[str, int], quantize: str) -> Any:
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    qt = faiss.ScalarQuantizer.QT_8bit
    ix: Any
    if kind == "flat":
        ix = faiss.IndexFlatIP(d) if quantize == "none" else faiss.IndexScalarQuantizer(d, qt, ip)
    else:
        if quantize == "none":
            ix = faiss.IndexHNSWFlat(d, params["M"], ip)
        else:
            ix = faiss.IndexHNSWSQ(d, qt, params["M"], ip)  # type: ignore[arg-type]  # the stubs want a ScalarQuantizer
        ix.hnsw.efConstruction = params["ef_construction"]
        ix.hnsw.efSearch = params["ef_search"]
    return ix


def _top_k(S: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of scores ``S`` (``(n, m)``; ``rows``: their index rows, the
    same shape), best first, equal scores lower row first."""
    R = rows
    if S.shape[1] > k:
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        S, R = np.take_along_axis(S, part, axis=1), np.take_along_axis(rows, part, axis=1)
    order = np.lexsort((R, -S), axis=1)
    return np.take_along_axis(S, order, axis=1), np.take_along_axis(R, order, axis=1)


class SharedPrefixes:
    """Every prefix length of the same vectors served from one stored matrix (see the module)."""

    layout = "shared"

    def __init__(
        self,
        dims: Sequence[int],
        kind: str = "flat",
        *,
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
        quantize: str | None = None,
    ):
        self.params = check_params(kind, m, ef_construction, ef_search)
        self.quantize = check_quantize(quantize)
        self.kind = kind
        self.dims = tuple(int(d) for d in dims)
        self.dim = self.dims[-1]
        self.full = _new_index(self.dim, kind, self.params, self.quantize)
        self.coarse = _new_index(self.dims[0], kind, self.params, self.quantize)
        self._norms: list[np.ndarray] = [np.zeros((0, len(self.dims)), dtype=np.float32)]
        self._scales: dict[int, np.ndarray] = {}  # prefix index -> |x| / |x[:d]| per row (memory only)

    def __len__(self) -> int:
        return int(self.full.ntotal)

    @property
    def faiss_type(self) -> str:
        return FAISS_TYPES[(self.kind, self.quantize)]

    @property
    def norms(self) -> np.ndarray:
        """``(n, blocks)``: each item's prefix norms ``|x[:d]|`` for every prefix length ``d``."""
        if len(self._norms) > 1:
            self._norms = [np.concatenate(self._norms, axis=0)]
        return self._norms[0]

    @property
    def indexes(self) -> dict[int, Any]:
        """Prefix length -> its FAISS index, for the two lengths that have one (first block, full)."""
        return {self.dims[0]: self.coarse, self.dim: self.full}

    def files(self) -> dict[str, str]:
        """What ``index.json``'s ``index.files`` names: the full, coarse and norms files."""
        return {"full": FULL_FILE, "coarse": prefix_file(self.dims[0]), "norms": NORMS_FILE}

    # ------------------------------------------------------------------ the matrix
    def rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """The stored unit vectors of these rows, ``(m, dim)`` float32 (decoded when quantised)."""
        import faiss

        store: Any = self.full if self.kind == "flat" else faiss.downcast_index(self.full.storage)
        if self.quantize == "none":  # a read-only view of FAISS's own array
            view = faiss.rev_swig_ptr(store.get_xb(), len(self) * self.dim).reshape(len(self), self.dim)
            view.flags.writeable = False
            return view[rows]
        if isinstance(rows, slice):  # decoded by the quantiser (the storage, not the graph: batched)
            start, stop, _ = rows.indices(len(self))
            return store.reconstruct_n(start, max(0, stop - start))
        return store.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64))

    @property
    def matrix(self) -> np.ndarray:
        """The stored unit vectors, ``(n, dim)``: a prefix's cosine is computed from them on demand."""
        return self.rows(slice(None))

    @property
    def vectors(self) -> np.ndarray:
        """The full vectors as added, rebuilt from the unit vectors and their norms (to float32 rounding;
        approximate when quantised), ``(n, dim)``."""
        v = self.matrix * self.norms[:, -1:]
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------------ add / search
    def add(self, E: np.ndarray) -> None:
        """Add full vectors ``(n, dim)``: their unit vectors, unit first blocks and prefix norms."""
        E = checked_batch(E, self.dim)
        if len(E) == 0:
            return
        U, C = unit_rows(E), unit_rows(E[:, : self.dims[0]])
        if not self.full.is_trained:  # the int8 quantiser's range: learned from the first batch
            if len(E) < INT8_MIN_ROWS:
                raise ZoomIndexError(
                    f"quantize=int8 learns each dimension's range from the first {len(E)} vectors added; "
                    f"add at least {INT8_MIN_ROWS} in the first batch, or use quantize=none"
                )
            self.full.train(U)
            self.coarse.train(C)
        self.full.add(U)
        self.coarse.add(C)
        self._norms.append(np.stack([np.linalg.norm(E[:, :d], axis=1) for d in self.dims], axis=1))
        self._scales = {}

    def scale(self, j: int) -> np.ndarray:
        """``|x| / |x[:d_j]|`` of every row (what turns ``u[:d_j] . q`` into the prefix's cosine), kept."""
        if j not in self._scales:
            N = self.norms
            self._scales[j] = (N[:, -1] / np.maximum(N[:, j], 1e-12)).astype(np.float32)
        return self._scales[j]

    def search(
        self, Q: np.ndarray, d: int, k: int, ef_search: int | None = None, *, subset: RowSubset | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` (at most the size) best rows of each query prefix ``Q`` (``(n, d)``, normalised here)
        at prefix length ``d``: ``(scores, rows)``, each ``(n, k)``; row ``-1`` / score ``-inf`` where
        an approximate index found fewer. The first block and the full vector are searched in their
        FAISS index (``ef_search``: HNSW's search breadth); a middle length, or a subset of rows of a
        flat index, by an exact scan of the matrix."""
        Q = unit_rows(Q)
        k = min(int(k), len(self) if subset is None else len(subset))
        if d in self.indexes and (subset is None or self.kind == "hnsw"):
            return faiss_search(self.indexes[d], Q, k, self.params, ef_search, subset)
        return self.scan(Q, d, k, None if subset is None else subset.rows)

    def scan(self, Q: np.ndarray, d: int, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact search of the unit query prefixes ``Q`` (``(n, d)``) over the matrix (or its ``rows``), in
        chunks of :data:`SCAN_ROWS` rows: the cosine of each item's ``d``-dim prefix, from the unit
        vector rescaled by ``|x| / |x[:d]|``."""
        j = self.dims.index(d)
        n_rows = len(self) if rows is None else len(rows)
        best_s = np.zeros((len(Q), 0), dtype=np.float32)
        best_r = np.zeros((len(Q), 0), dtype=np.int64)
        scale = self.scale(j)
        step = max(1024, min(SCAN_ROWS, SCAN_SCORES // max(1, len(Q))))  # bounded scores per step
        for s in range(0, n_rows, step):
            if rows is None:
                at: slice | np.ndarray = slice(s, min(n_rows, s + step))
                r = np.arange(s, min(n_rows, s + step))
            else:
                at = r = rows[s : s + step]
            S = (Q @ self.rows(at)[:, :d].T) * scale[at][None, :]
            best_s, best_r = _top_k(
                np.concatenate([best_s, S.astype(np.float32)], axis=1),
                np.concatenate([best_r, np.broadcast_to(r, S.shape)], axis=1),
                k,
            )
        return best_s, best_r

    # ------------------------------------------------------------------ disk
    def write(self, folder: Path) -> list[str]:
        """Write ``full.faiss``, the coarse index and ``norms.npy`` into ``folder``; returns their names."""
        import faiss

        files = self.files()
        faiss.write_index(self.full, str(folder / files["full"]))
        faiss.write_index(self.coarse, str(folder / files["coarse"]))
        np.save(folder / files["norms"], self.norms, allow_pickle=False)
        return list(files.values())

    def read(self, folder: Path, files: dict, size: int, fix: str) -> None:
        """Replace the indexes and norms with those :meth:`write` left in ``folder`` (``files`` as in
        ``index.json``), each checked to hold ``size`` rows of its length and type; ``fix`` ends every
        error message."""
        for key, d in (("full", self.dim), ("coarse", self.dims[0])):
            path = folder / str(files[key])
            fx = read_faiss(path, fix)
            if fx.d != d or fx.ntotal != size or type(fx).__name__ != self.faiss_type:
                raise ZoomIndexError(
                    f"{path}: holds {fx.ntotal} x {fx.d}-d vectors ({type(fx).__name__}), expected "
                    f"{size} x {d} ({self.faiss_type}); {fix}"
                )
            setattr(self, key, fx)
        path = folder / str(files["norms"])
        norms = read_array(path, fix)
        if norms.shape != (size, len(self.dims)) or norms.dtype != np.float32:
            raise ZoomIndexError(f"{path}: shape {norms.shape}, expected ({size}, {len(self.dims)}) float32; {fix}")
        self._norms = [norms]
        self._scales = {}
