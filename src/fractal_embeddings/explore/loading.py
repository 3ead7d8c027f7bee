"""Opening what the explorer serves: an index directory as it is, or a run directory with a flat
:class:`~fractal_embeddings.index.ZoomIndex` over a corpus, built once and kept in the explorer's cache."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cache import default_cache_dir
from ..errors import ZoomIndexError
from ..index import META_FILE, TABLE_SUFFIXES, TEXT_SUFFIXES, ZoomIndex, load_index, read_corpus
from ..records import RECORD_FILE, file_sha256
from ..runs import Run, dataset_for_record, load_run
from .logic import ExploreError

if TYPE_CHECKING:
    from .logic import AnyIndex

CACHE_SUBDIR = "explore"
FILE_SUFFIXES = TEXT_SUFFIXES + TABLE_SUFFIXES


def _cache_key(run: Run, corpus_spec: dict) -> str:
    rec = run.record
    ident = {
        "run_id": rec.run_id,
        "weights": rec.weights.sha256 if rec.weights else None,
        "encoder": rec.encoder.fingerprint,
        "corpus": corpus_spec,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _corpus_spec(run: Run, corpus: str | None, split: str | None, text: str, levels: Sequence[str] | None) -> dict:
    if corpus is None:
        d = run.record.dataset
        return {"kind": "run-dataset", "name": d.name, "fingerprint": d.fingerprint, "split": split}
    p = Path(corpus)
    if p.is_file():
        return {
            "kind": "file",
            "path": str(p.resolve()),
            "sha256": file_sha256(p),
            "split": split,
            "text": text,
            "levels": list(levels or []),
        }
    return {"kind": "dataset", "name": corpus, "split": split, "levels": list(levels or [])}


def _build(
    run: Run,
    corpus: str | None,
    split: str | None,
    text: str,
    levels: Sequence[str] | None,
    encoder: Any,
    show_progress: bool,
    device: str | None = "auto",
) -> ZoomIndex:
    if corpus is not None:
        c = read_corpus(corpus, split=split, text=text, levels=levels)
        return ZoomIndex.build(
            run,
            c.texts,
            c.ids,
            c.payloads,
            c.labels,
            level_names=c.level_names if c.labels is not None else None,
            encoder=encoder,
            show_progress=show_progress,
            device=device,
        )
    ds = dataset_for_record(run.record)
    if split not in ds.splits:
        raise ExploreError(f"the run's dataset {ds.name} has no '{split}' split; pass --split {' or '.join(ds.splits)}")
    sp = ds.split(split)
    classes = [lv.classes for lv in ds.levels]
    labels = [[classes[k][c] for k, c in enumerate(row)] for row in sp.labels.tolist()]
    ix = ZoomIndex(run, level_names=ds.level_names, encoder=encoder, device=device)
    enc = ix.encoder
    root, rows = sp.source_rows()  # a subset: cut it from its full split's cached vectors when there are some
    full = enc.cached(root.texts, role=ix.corpus_role) if rows is not None else None
    X = (
        np.asarray(full)[rows]
        if full is not None
        else enc.embed(list(sp.texts), role=ix.corpus_role, show_progress=show_progress)
    )
    ix.add(list(sp.texts), ids=list(range(len(sp))), labels=labels, vectors=run.transform(X))
    return ix


def _effective_split(corpus: str | None, split: str | None) -> str | None:
    """``--split``: default ``test`` for datasets; a file's rows are all taken unless a split is named."""
    if corpus is not None and (Path(corpus).is_file() or Path(corpus).suffix.lower() in FILE_SUFFIXES):
        return split
    return split or "test"


def _directory_kind(p: Path, corpus: str | None, run: object) -> str:
    """``"index"`` (an index directory) or ``"run"`` (a run directory); a one-line error for anything else,
    or for ``corpus`` with an index directory / ``run`` with a run directory."""
    if not p.exists():
        raise ExploreError(
            f"{p}: no such directory; pass a run directory (`fractal train --out`) or an index "
            "directory (`fractal index build --out`)"
        )
    if not p.is_dir():
        raise ExploreError(
            f"{p} is a file; pass a run directory (`fractal train --out`) or an index directory "
            "(`fractal index build --out`)"
        )
    if (p / META_FILE).is_file():
        if corpus is not None:
            raise ExploreError(
                f"{p} is an index directory: it holds its own corpus, so --corpus does not apply; "
                "pass a run directory to explore another corpus"
            )
        return "index"
    if not (p / RECORD_FILE).is_file():
        raise ExploreError(
            f"{p}: neither a run directory (no {RECORD_FILE}) nor an index directory (no {META_FILE}); "
            "pass the directory `fractal train --out` or `fractal index build --out` wrote"
        )
    if run is not None:
        raise ExploreError("--run applies to an index directory; with a run directory the index is built from that run")
    return "run"


def open_index(
    path: str | os.PathLike,
    *,
    corpus: str | None = None,
    split: str | None = None,
    text: str = "text",
    levels: Sequence[str] | None = None,
    run: Run | str | os.PathLike | None = None,
    encoder: Any = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    show_progress: bool = False,
    log_fn: Callable[[str], None] | None = None,
    device: str | None = "auto",
) -> tuple[AnyIndex, dict]:
    """The index to explore and where it came from.

    ``path`` is an index directory (``fractal index build --out``; loaded and checked, ``run``
    optionally names the run it must have been built with) or a run directory (``fractal train
    --out``): then a flat index over ``corpus`` (default: the run's own dataset; ``split`` defaults
    to ``test`` for datasets, a file's rows are all taken unless ``split`` names the rows of its
    ``split`` column) is built, or loaded from the explorer's cache under ``cache_dir`` (default
    ``$FRACTAL_CACHE/explore``)."""
    say = log_fn or (lambda _m: None)
    p = Path(path)
    if _directory_kind(p, corpus, run) == "index":
        loaded = load_index(p, run=run, encoder=encoder, device=device)  # a FAISS or a Qdrant index
        return loaded, {"kind": "index", "path": str(p), "corpus": None, "cached": False}
    the_run = load_run(p)
    levels = tuple(levels) if levels else None
    split = _effective_split(corpus, split)
    spec = _corpus_spec(the_run, corpus, split, text, levels)
    source = {"kind": "run", "path": str(p), "corpus": spec, "cached": False}
    if not use_cache:
        return _build(the_run, corpus, split, text, levels, encoder, show_progress, device), source
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / CACHE_SUBDIR
    target = root / _cache_key(the_run, spec)
    source["cache_dir"] = str(target)
    if (target / META_FILE).is_file():
        try:
            ix = ZoomIndex.load(target, run=the_run, encoder=encoder, device=device)
            say(f"loaded the cached index of {len(ix)} items from {target}")
            return ix, {**source, "cached": True}
        except ZoomIndexError as e:
            warnings.warn(f"the explorer's cached index is unusable ({e}); rebuilding it", stacklevel=2)
    what = f"split '{split}' of {the_run.record.dataset.name}" if corpus is None else corpus
    say(f"encoding {what} with run {the_run.record.run_id} (once; cached in {target})")
    t0 = time.perf_counter()
    ix = _build(the_run, corpus, split, text, levels, encoder, show_progress, device)
    root.mkdir(parents=True, exist_ok=True)
    ix.save(target, overwrite=True)
    say(f"indexed {len(ix)} items in {time.perf_counter() - t0:.1f} s")
    return ix, source
