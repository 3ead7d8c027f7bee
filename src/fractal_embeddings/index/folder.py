"""The index directory every backend writes: ``index.json`` (the metadata; its ``backend`` says who
wrote it, FAISS when absent) and ``run/`` (a copy of the run, for text queries).

:func:`read_index_meta` reads ``index.json`` (one-line errors naming the fix), :func:`index_backend`
says which backend wrote a directory, and :func:`check_target` checks, before any work, that a path
may receive an index (:func:`~fractal_embeddings.validation.check_output_dir` with an index's
marker); :func:`target_checks` is the same rule for :func:`~fractal_embeddings.atomic.atomic_dir`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ZoomIndexError
from ..validation import check_output_dir

__all__ = [
    "BACKENDS",
    "META_FILE",
    "REBUILD_FIX",
    "RUN_DIR",
    "check_target",
    "index_backend",
    "meta_json",
    "read_index_meta",
    "target_checks",
]

META_FILE = "index.json"
RUN_DIR = "run"
BACKENDS = ("faiss", "qdrant")  # what ``index.json``'s ``backend`` may say (absent: faiss)
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


def target_checks(overwrite: bool) -> dict[str, Any]:
    """The keyword arguments of :func:`~fractal_embeddings.validation.check_output_dir` (and of
    :func:`~fractal_embeddings.atomic.atomic_dir`) for an index directory."""
    return {"overwrite": overwrite, "marker": META_FILE, "what": "an index", "error": ZoomIndexError}


def check_target(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise unless ``out_dir`` may receive an index: absent, empty, or (with ``overwrite``) an index;
    never a file, a folder under a file, an unwritable place or a folder holding anything else
    (:func:`~fractal_embeddings.validation.check_output_dir`)."""
    return check_output_dir(out_dir, **target_checks(overwrite))


def meta_json(meta: dict) -> str:
    """``index.json`` of a FAISS index: one top-level key per line (sorted), each value compact JSON, so
    the header stays readable and the per-item columns (one line) don't grow it by a line per item."""

    def dump(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False, sort_keys=True)

    return "{\n" + ",\n".join(f"  {dump(k)}: {dump(meta[k])}" for k in sorted(meta)) + "\n}\n"
