"""Either backend by name: :func:`load_index` opens an index directory whichever backend wrote it
(its ``index.json`` says), :func:`prepare_build` makes every check of a build before any text is read
or encoded, :func:`build_from_source` reads a corpus and builds a FAISS or a Qdrant index from it (what
``fractal index build`` runs, in that order)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ZoomIndexError
from ..extras import require
from ..runs import Run
from .corpus import read_corpus
from .folder import BACKENDS, check_target, index_backend
from .prefix import HNSW_DEFAULTS, KINDS
from .qdrant import QdrantIndex
from .qdrant_target import QdrantTarget, api_key_or_env
from .shared import LAYOUTS, QUANTIZERS
from .zoom import ZoomIndex

__all__ = ["build_from_source", "load_index", "prepare_build"]


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


def prepare_build(
    run: Run | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    backend: str = "faiss",
    kind: str = "flat",
    layout: str = "shared",
    quantize: str = "none",
    split: str | None = None,
    overwrite: bool = False,
    m: int = HNSW_DEFAULTS["M"],
    ef_construction: int = HNSW_DEFAULTS["ef_construction"],
    ef_search: int = HNSW_DEFAULTS["ef_search"],
    qdrant_path: str | None = None,
    qdrant_url: str | None = None,
    api_key: str | None = None,
    collection: str | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Every check of an index build that needs no corpus, made before any text is read or encoded: the
    ``out_dir`` may receive an index, the backend and its extra, the kind, the FAISS layout and quantiser,
    the split, the Qdrant options
    (given only with ``backend="qdrant"``; the server answers and the collection is absent, or was built
    by this run with these settings, or ``overwrite``). Returns the options :func:`build_from_source`
    takes after the corpus arguments. ``api_key`` defaults to ``$QDRANT_API_KEY`` for a server; the
    collection's name to the name of ``out_dir``."""
    check_target(out_dir, overwrite)
    if backend not in BACKENDS:
        raise ZoomIndexError(f"unknown --backend {backend!r}; use faiss (the default) or qdrant")
    require(*(("qdrant", "--backend qdrant") if backend == "qdrant" else ("index", "a FAISS zoom index")))
    if kind not in KINDS:
        raise ZoomIndexError(f"unknown --kind {kind!r}; use flat (exact) or hnsw (approximate)")
    if layout not in LAYOUTS:
        raise ZoomIndexError(f"unknown --layout {layout!r}; use shared (each item stored once) or per-prefix")
    if quantize not in QUANTIZERS:
        raise ZoomIndexError(f"unknown --quantize {quantize!r}; use none (float32) or int8")
    if quantize != "none" and layout != "shared":
        raise ZoomIndexError(f"--quantize {quantize} needs --layout shared; drop --quantize or the layout")
    if split is not None and (not isinstance(split, str) or not split.strip()):
        raise ZoomIndexError("--split is empty; give a split name (train, val, test) or leave it out")
    options: dict[str, Any] = {"backend": backend, "kind": kind, "m": m, "ef_construction": ef_construction}
    options["ef_search"] = ef_search
    qdrant = {
        "--qdrant-path": qdrant_path,
        "--qdrant-url": qdrant_url,
        "--api-key": api_key,
        "--collection": collection,
    }
    if backend != "qdrant":
        given = ", ".join(k for k, v in qdrant.items() if v is not None)
        if given:
            raise ZoomIndexError(f"{given} applies to --backend qdrant; add --backend qdrant or drop it")
        return options | {"layout": layout, "quantize": quantize}
    if layout != "shared":
        raise ZoomIndexError(
            f"--layout {layout} applies to --backend faiss (a Qdrant collection keeps a named vector per "
            "prefix); drop it or use --backend faiss"
        )
    if qdrant_url is not None:
        api_key = api_key_or_env(api_key)
    name = collection if collection is not None else (Path(out_dir).resolve().name or "fractal")
    target = QdrantTarget(name, path=qdrant_path, url=qdrant_url, api_key=api_key)
    probe = QdrantIndex(
        run, target, kind=kind, m=m, ef_construction=ef_construction, ef_search=ef_search, quantize=quantize
    )
    try:
        probe.check_collection(overwrite)
    finally:
        probe.close()
    return options | {"target": target, "overwrite": overwrite, "batch_size": batch_size, "quantize": quantize}
