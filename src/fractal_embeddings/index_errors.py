"""The zoom index's error, in a module of its own so that every piece of the index (the corpus
reader :mod:`~fractal_embeddings.corpus`, the item table :mod:`~fractal_embeddings.index_items`,
the FAISS indexes :mod:`~fractal_embeddings.prefix_index` and :mod:`~fractal_embeddings.index`
itself) raises the same class without importing one another. Import it from
:mod:`fractal_embeddings.index`."""

from __future__ import annotations

from .errors import FractalError


class ZoomIndexError(FractalError):
    """A zoom index that cannot be built, loaded or searched as asked (one line: problem and fix)."""
