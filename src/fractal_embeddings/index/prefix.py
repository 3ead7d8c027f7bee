"""The FAISS part of a zoom index: one index per prefix length of the same vectors.

:class:`PrefixIndexes` holds the full head vectors as added (``vectors.npy`` on disk) and, for each
prefix length ``d``, a FAISS inner-product index of the L2-normalised ``d``-dim prefixes
(``prefix-<d>.faiss``): exact ``IndexFlatIP`` (``kind="flat"``) or approximate ``IndexHNSWFlat``
(``kind="hnsw"``, with ``M``, ``ef_construction`` and ``ef_search``). A query prefix is normalised
the same way before it is searched, so a score is the cosine of the two prefixes. Why one index per
prefix, and why each prefix is normalised on its own: :mod:`fractal_embeddings.index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ZoomIndexError
from ..evaluation import unit_rows
from ..validation import check_int

KINDS = ("flat", "hnsw")
HNSW_DEFAULTS = {"M": 32, "ef_construction": 200, "ef_search": 64}
VECTORS_FILE = "vectors.npy"
FAISS_TYPES = {"flat": "IndexFlatIP", "hnsw": "IndexHNSWFlat"}


def check_params(
    kind: str,
    m: int = HNSW_DEFAULTS["M"],
    ef_construction: int = HNSW_DEFAULTS["ef_construction"],
    ef_search: int = HNSW_DEFAULTS["ef_search"],
) -> dict[str, int]:
    """The index kind and its HNSW parameters, checked (one-line errors): ``{}`` for ``flat``, else
    ``{"M", "ef_construction", "ef_search"}`` (what ``index.json`` records)."""
    if kind not in KINDS:
        raise ZoomIndexError(f"unknown index kind '{kind}'; use flat (exact) or hnsw (approximate)")
    if kind != "hnsw":
        return {}
    for name, v, lo in (("M", m, 2), ("ef_construction", ef_construction, 1), ("ef_search", ef_search, 1)):
        check_int(v, f"HNSW {name}", lo=lo, error=ZoomIndexError)
    return {"M": int(m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)}


class RowSubset:
    """Rows a search is restricted to (sorted), with their FAISS ID selector built once."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = np.ascontiguousarray(np.sort(np.asarray(rows, dtype=np.int64)))
        self._selector: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def selector(self) -> Any:
        """A ``faiss.IDSelectorBatch`` of the rows (it copies them into its own set)."""
        if self._selector is None:
            import faiss

            self._selector = faiss.IDSelectorBatch(self.rows)
        return self._selector


def faiss_search(
    ix: Any, Q: np.ndarray, k: int, params: dict[str, int], ef_search: int | None, subset: RowSubset | None
) -> tuple[np.ndarray, np.ndarray]:
    """``ix.search`` of the normalised query prefixes ``Q`` for ``k`` rows: ``(scores, rows)``, each
    ``(n, k)``, row ``-1`` / score ``-inf`` where an approximate index found fewer. ``params``: the
    HNSW parameters (empty for an exact index), ``ef_search`` overriding their search breadth;
    ``subset``: only these rows are candidates (a FAISS ID selector: HNSW walks the whole graph and
    keeps the selected rows; a flat index still scans every row)."""
    import faiss

    sel = None if subset is None else subset.selector
    if params:
        ef = params["ef_search"] if ef_search is None else int(ef_search)
        if ef < 1:
            raise ZoomIndexError(f"ef_search must be >= 1, got {ef}")
        p = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from faiss's stubs
        p.efSearch = max(ef, k)
        if sel is not None:
            p.sel = sel
        D, rows = ix.search(Q, k, params=p)
    elif sel is not None:
        params_sel = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]  # faiss's stubs lack the sel keyword
        D, rows = ix.search(Q, k, params=params_sel)
    else:
        D, rows = ix.search(Q, k)
    return np.where(rows >= 0, D, -np.inf).astype(np.float32), rows.astype(np.int64)


def checked_batch(E: Any, dim: int) -> np.ndarray:
    """Full vectors to add, as float32 ``(n, dim)``, all finite (one-line errors otherwise)."""
    E = np.asarray(E, dtype=np.float32)
    if E.ndim != 2 or E.shape[1] != dim:
        raise ZoomIndexError(f"vectors have shape {E.shape}; expected (n, {dim})")
    if not np.isfinite(E).all():
        raise ZoomIndexError("the vectors to add contain NaN or inf")
    return E


def read_faiss(path: Path, fix: str) -> Any:
    """``faiss.read_index`` of ``path``; one line ending in ``fix`` when it is not a FAISS index."""
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        raise ZoomIndexError(f"{path}: not a readable FAISS index ({str(e).splitlines()[-1][:80]}); {fix}") from None


def read_array(path: Path, fix: str) -> np.ndarray:
    """``numpy.load`` of ``path`` (no pickle); one line ending in ``fix`` when it is not an array file."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ZoomIndexError(f"{path}: not a readable array ({str(e)[:80]}); {fix}") from None


def prefix_file(d: int) -> str:
    """The file name of the index of the ``d``-dim prefixes."""
    return f"prefix-{d}.faiss"


class PrefixIndexes:
    """One FAISS index per prefix length (``dims``, shortest first; the last is the full vector)."""

    def __init__(
        self,
        dims: Sequence[int],
        kind: str = "flat",
        *,
        m: int = HNSW_DEFAULTS["M"],
        ef_construction: int = HNSW_DEFAULTS["ef_construction"],
        ef_search: int = HNSW_DEFAULTS["ef_search"],
    ):
        import faiss

        self.params = check_params(kind, m, ef_construction, ef_search)
        self.kind = kind
        self.dims = tuple(int(d) for d in dims)
        self.dim = self.dims[-1]
        self.indexes: dict[int, faiss.Index] = {}
        for d in self.dims:
            ix: faiss.Index
            if kind == "flat":
                ix = faiss.IndexFlatIP(d)
            else:
                hnsw = faiss.IndexHNSWFlat(d, self.params["M"], faiss.METRIC_INNER_PRODUCT)
                hnsw.hnsw.efConstruction = self.params["ef_construction"]
                hnsw.hnsw.efSearch = self.params["ef_search"]
                ix = hnsw
            self.indexes[d] = ix
        self._parts: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)]  # joined on first read

    layout = "per-prefix"
    quantize = "none"

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    @property
    def _vectors(self) -> np.ndarray:
        if len(self._parts) > 1:  # a build adds batch by batch: joined once, not once per batch
            self._parts = [np.concatenate(self._parts, axis=0)]
        return self._parts[0]

    @property
    def faiss_type(self) -> str:
        return FAISS_TYPES[self.kind]

    @property
    def vectors(self) -> np.ndarray:
        """The full vectors as added (not normalised), ``(n, dim)`` read-only."""
        v = self._vectors.view()
        v.flags.writeable = False
        return v

    def rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """The full vectors of these rows."""
        return self._vectors[rows]

    @property
    def matrix(self) -> np.ndarray:
        """What a prefix's cosine is computed from on demand (funnel re-rank, per-class indexes): the
        full vectors."""
        return self.vectors

    def files(self) -> dict[str, str]:
        """Prefix length (as a string) -> its FAISS file name (the ``files`` of ``index.json``'s ``index``)."""
        return {str(d): prefix_file(d) for d in self.dims}

    # ------------------------------------------------------------------ add / search
    def add(self, E: np.ndarray) -> None:
        """Add full vectors ``(n, dim)``: each prefix, normalised, to its index; ``E`` to :attr:`vectors`."""
        E = checked_batch(E, self.dim)
        for d, ix in self.indexes.items():
            ix.add(unit_rows(E[:, :d]))
        self._parts.append(E.copy())

    def search(
        self, Q: np.ndarray, d: int, k: int, ef_search: int | None = None, *, subset: RowSubset | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` (at most the size) best rows of each query prefix ``Q`` (``(n, d)``, normalised here)
        in the ``d``-dim index: ``(scores, rows)``, each ``(n, k)``; row ``-1`` / score ``-inf`` where
        an approximate index found fewer. ``ef_search`` (HNSW) overrides the search breadth.
        ``subset``: only these rows are candidates (a FAISS ID selector: HNSW walks the whole graph
        and keeps the selected rows; a flat index still scans every row)."""
        Q = unit_rows(Q)
        k = min(int(k), len(self) if subset is None else len(subset))
        return faiss_search(self.indexes[d], Q, k, self.params, ef_search, subset)

    # ------------------------------------------------------------------ disk
    def write(self, folder: Path) -> list[str]:
        """Write each prefix's FAISS file and ``vectors.npy`` into ``folder``; returns their names."""
        import faiss

        names = []
        for d, ix in self.indexes.items():
            name = prefix_file(d)
            faiss.write_index(ix, str(folder / name))
            names.append(name)
        np.save(folder / VECTORS_FILE, self._vectors, allow_pickle=False)
        return [*names, VECTORS_FILE]

    def read(self, folder: Path, files: dict, size: int, fix: str) -> None:
        """Replace the indexes and vectors with those :meth:`write` left in ``folder`` (``files``: prefix
        length -> FAISS file name, as in ``index.json``), each checked to hold ``size`` rows of its
        length; ``fix`` ends every error message."""
        for d in self.dims:
            name = files[str(d)]
            fx = read_faiss(folder / name, fix)
            if fx.d != d or fx.ntotal != size:
                raise ZoomIndexError(
                    f"{folder / name}: holds {fx.ntotal} x {fx.d}-d vectors, expected {size} x {d}; {fix}"
                )
            self.indexes[d] = fx
        vec = read_array(folder / VECTORS_FILE, fix)
        if vec.shape != (size, self.dim):
            raise ZoomIndexError(f"{folder / VECTORS_FILE}: shape {vec.shape}, expected ({size}, {self.dim}); {fix}")
        self._parts = [np.asarray(vec, dtype=np.float32)]
