"""Either backend by name: :func:`load_index` opens an index directory whichever backend wrote it
(its ``index.json`` says), :func:`build_from_source` reads a corpus and builds a FAISS or a Qdrant
index from it (what ``fractal index build`` runs)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import ZoomIndexError
from ..runs import Run
from .corpus import read_corpus
from .folder import BACKENDS, index_backend
from .qdrant import QdrantIndex
from .zoom import ZoomIndex

__all__ = ["build_from_source", "load_index"]


def load_index(
    index_dir: str | os.PathLike,
    run: Run | str | os.PathLike | None = None,
    *,
    encoder: Any = None,
    device: str | None = "auto",
    api_key: str | None = None,
) -> ZoomIndex | QdrantIndex:
    """The index in ``index_dir``, whichever backend wrote it: a :class:`~fractal_embeddings.index.zoom.ZoomIndex`
    (FAISS files) or a :class:`~fractal_embeddings.index.qdrant.QdrantIndex` (the directory names its
    collection; ``api_key`` for a server that needs one, default ``$QDRANT_API_KEY``). ``run``: refuse
    the index unless it was built with this run."""
    if index_backend(index_dir) == "qdrant":
        return QdrantIndex.load(index_dir, run, encoder=encoder, device=device, api_key=api_key)
    return ZoomIndex.load(index_dir, run, encoder=encoder, device=device)


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
    """:func:`~fractal_embeddings.index.corpus.read_corpus` + :meth:`ZoomIndex.build
    <fractal_embeddings.index.zoom.ZoomIndex.build>` (what ``fractal index build`` runs); with
    ``backend="qdrant"``, :meth:`QdrantIndex.build <fractal_embeddings.index.qdrant.QdrantIndex.build>`
    into the collection ``build_options["target"]`` names."""
    if backend not in BACKENDS:
        raise ZoomIndexError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS)}")
    corpus = read_corpus(source, split=split, text=text, levels=levels, id_column=id_column)
    builder: type[ZoomIndex] | type[QdrantIndex] = QdrantIndex if backend == "qdrant" else ZoomIndex
    return builder.build(  # the Qdrant build takes its target from build_options
        run,
        corpus.texts,
        corpus.ids,
        corpus.payloads,
        corpus.labels,
        level_names=corpus.level_names if corpus.labels is not None else None,
        **build_options,
    )
