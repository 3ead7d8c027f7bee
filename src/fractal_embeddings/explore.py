"""Explorer: a local web app that shows semantic zoom on a trained run and its corpus.

>>> from fractal_embeddings.explore import Explorer, open_index, create_app
>>> ix, source = open_index("runs/clinc-fractal")          # or an index directory
>>> ex = Explorer(ix, source)
>>> ex.search("book me a flight to paris", zoom="coarse", k=10)["predicted"]
>>> app = create_app(ex)                                   # a Starlette app; `fractal explore` serves it

What it serves (``fractal explore RUN_DIR|INDEX_DIR``, 127.0.0.1:8765 by default)
--------------------------------------------------------------------------------
* ``/``: one page (HTML, CSS and vanilla JS from ``explore_static/``, nothing fetched from the
  network) with a search box, a zoom slider over the prefix lengths (64 = coarse ... 256 = fine),
  the hits with their labels at every level, a 2-D map of the corpus at the chosen prefix, and the
  run's per-prefix k-NN accuracy curve with S.
* ``/api/search?q=&zoom=&k=[&mode=zoom|funnel|routed&candidates=N]``: the ``k`` nearest corpus items of
  ``q`` at a zoom, in a search mode (:mod:`~fractal_embeddings.search_modes`; a routed search also
  returns ``route``: the class it was sent to), with the query's
  predicted coarse class: the majority coarse label of its ``k`` nearest neighbours at the coarse
  zoom (a tie goes to the label of the nearest of the tied rows). Each hit says whether its coarse
  label is that class.
* ``/api/map?zoom=&color=coarse|fine``: 2-D coordinates of the corpus (at most
  :data:`MAP_MAX_POINTS` rows, a seeded sample beyond that) at a prefix: the first two principal
  components (an SVD of the centred, L2-normalised prefixes: the cosine geometry the search uses),
  computed once per prefix and kept in memory; ``color`` picks the level whose class codes come
  back. ``/api/corpus``: the texts and labels of those rows (fetched once by the page).
* ``/api/run``: the run record's identity, per-prefix x level accuracy (trained and untrained
  encoder), steerability, and what the index holds.

Input is checked (query at most :data:`MAX_QUERY_CHARS` characters, ``k`` from 1 to :data:`MAX_K`,
a zoom the index has, a known colour level); a bad request gets a 400 with ``{"error": message}``,
an unknown path a 404, and any unexpected failure a 500 ``{"error": "internal error ..."}`` without
a traceback (the server logs one line).

Before any of that, every request is screened: its ``Host`` header must name this server
(``127.0.0.1``, ``localhost``, ``::1``, or a name given in ``allowed_hosts`` / ``--allow-host``;
``*`` allows any), else a 400 -- a web page elsewhere can't reach the explorer through a DNS name
rebound to 127.0.0.1; a path + query string over :data:`MAX_URL_BYTES` bytes is a 414; and a
request body (the API takes none) is a 413.

Given a run directory, :func:`open_index` builds a flat :class:`~fractal_embeddings.index.ZoomIndex`
over the corpus (default: the split ``test`` of the dataset the run was trained on, subset included;
``corpus=`` takes what ``fractal index build`` takes) and keeps it under
``$FRACTAL_CACHE/explore/<key>`` (key: the run id, its weights' sha256, the encoder fingerprint and
the corpus), so the next start loads it instead of encoding again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FractalError
from .extras import require
from .index import META_FILE, MODES, TABLE_SUFFIXES, TEXT_SUFFIXES, ZoomIndex, ZoomIndexError

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .index import QdrantIndex
    from .runs import Run

    AnyIndex = ZoomIndex | QdrantIndex  # what the explorer serves: either backend's index

MAX_QUERY_CHARS = 500
MAX_K = 100
DEFAULT_K = 10
MAP_MAX_POINTS = 5000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# path + query string: a 500-character query in 4-byte UTF-8 characters is 500 x 12 bytes percent-encoded
MAX_URL_BYTES = 8192
COLORS = ("coarse", "fine")
STATIC_DIR = Path(__file__).resolve().parent / "explore_static"
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CACHE_SUBDIR = "explore"
FILE_SUFFIXES = TEXT_SUFFIXES + TABLE_SUFFIXES
PREDICTED_RULE = (
    "predicted coarse class = the majority coarse label of the query's k nearest neighbours "
    "at the coarse zoom (first block); a tie goes to the label of the nearest tied row"
)

log = logging.getLogger("fractal_embeddings.explore")


class ExploreError(FractalError):
    """The explorer cannot start as asked (one line: the problem and the fix)."""


class BadRequest(ExploreError):
    """An API request with invalid input (answered with HTTP 400 and the message)."""

    status = 400


# ------------------------------------------------------------------ opening an index
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
        from .records import file_sha256

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
        from .index import read_corpus

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
    from .runs import dataset_for_record

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
    from .records import RECORD_FILE
    from .runs import load_run

    say = log_fn or (lambda _m: None)
    p = Path(path)
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
        from .index import load_index

        loaded = load_index(p, run=run, encoder=encoder, device=device)  # a FAISS or a Qdrant index
        return loaded, {"kind": "index", "path": str(p), "corpus": None, "cached": False}
    if not (p / RECORD_FILE).is_file():
        raise ExploreError(
            f"{p}: neither a run directory (no {RECORD_FILE}) nor an index directory (no {META_FILE}); "
            "pass the directory `fractal train --out` or `fractal index build --out` wrote"
        )
    if run is not None:
        raise ExploreError("--run applies to an index directory; with a run directory the index is built from that run")
    the_run = load_run(p)
    levels = tuple(levels) if levels else None
    split = _effective_split(corpus, split)
    spec = _corpus_spec(the_run, corpus, split, text, levels)
    source = {"kind": "run", "path": str(p), "corpus": spec, "cached": False}
    if not use_cache:
        return _build(the_run, corpus, split, text, levels, encoder, show_progress, device), source
    from .cache import default_cache_dir

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


# ------------------------------------------------------------------ the model behind the page
def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(n > 0, n, 1.0)


def _round(values: Iterable[Any], nd: int = 4) -> list:
    return [round(float(v), nd) for v in values]


class Explorer:
    """Search, map and run information over a :class:`ZoomIndex` (what the web API serves).

    Methods take the raw request strings or values and raise :class:`BadRequest` on invalid input."""

    def __init__(
        self, index: AnyIndex, source: dict | None = None, *, map_max_points: int = MAP_MAX_POINTS, seed: int = 0
    ) -> None:
        if len(index) == 0:
            raise ExploreError("the index is empty; build it over a corpus with at least one text")
        self.index = index
        self.source = dict(source or {"kind": "index", "path": None, "corpus": None, "cached": False})
        self.levels = list(index.level_names)
        self.has_labels = bool(self.levels) and all(r is not None for r in index.labels)
        n = len(index)
        if n > map_max_points:
            rng = np.random.default_rng(seed)
            self.map_rows = np.sort(rng.choice(n, size=map_max_points, replace=False))
        else:
            self.map_rows = np.arange(n)
        self.classes: dict[str, list[str]] = {}
        self.codes: dict[str, np.ndarray] = {}
        if self.has_labels:
            for li, name in enumerate(self.levels):
                col = [r[li] for r in index.labels]
                self.classes[name] = sorted(set(col))
                pos = {c: i for i, c in enumerate(self.classes[name])}
                self.codes[name] = np.array([pos[c] for c in col], dtype=np.int32)
        self._maps: dict[int, dict] = {}
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()

    # ------------------------------------------------------------ input checks
    def zoom(self, zoom: Any) -> int:
        dims = ", ".join(map(str, self.index.dims))
        if zoom is None or (isinstance(zoom, str) and not zoom.strip()):
            raise BadRequest(f"zoom is missing; use coarse, fine or a prefix length ({dims})")
        if isinstance(zoom, str) and (len(zoom) > 16 or not zoom.isascii()):
            raise BadRequest(
                f"zoom {zoom[:20]!r} is not one of this index's zooms; use coarse, fine or a prefix length ({dims})"
            )
        try:
            return self.index.zoom_dims(zoom)
        except ZoomIndexError as e:
            raise BadRequest(str(e)) from None

    @staticmethod
    def k(k: Any) -> int:
        if k is None or k == "":
            return DEFAULT_K
        if isinstance(k, str):
            k = k.strip()
            if not (k.isascii() and k.isdigit() and len(k) <= 6):
                raise BadRequest(f"k must be an integer from 1 to {MAX_K}, got {k[:20]!r}")
            k = int(k)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise BadRequest(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        return int(k)

    @staticmethod
    def query(q: Any) -> str:
        if not isinstance(q, str) or not q.strip():
            raise BadRequest("q is missing or empty; type a query")
        if len(q) > MAX_QUERY_CHARS:
            raise BadRequest(f"the query has {len(q)} characters; at most {MAX_QUERY_CHARS} are accepted")
        return q.strip()

    def color(self, color: Any) -> str:
        c = (color or "coarse").strip().lower() if isinstance(color, str) else color
        if c not in COLORS:
            raise BadRequest(f"color must be coarse or fine, got {str(color)[:20]!r}")
        return c

    # ------------------------------------------------------------ search
    def _embed(self, q: str) -> np.ndarray:
        with self._lock:
            v = self._queries.get(q)
            if v is None:
                v = np.asarray(self.index.embed([q], role="query"), dtype=np.float32)[0]
                self._queries[q] = v
                if len(self._queries) > 256:
                    self._queries.popitem(last=False)
            else:
                self._queries.move_to_end(q)
            return v

    def predict_coarse(self, vec: np.ndarray, k: int) -> dict | None:
        """Majority coarse label of the ``k`` nearest items at the coarse zoom (None without labels)."""
        if not self.has_labels:
            return None
        res = self.index.search(vec, k=k, zoom="coarse")[0]
        from .evaluation import vote

        coarse = self.levels[0]
        labels = [h.labels[coarse] for h in res if h.labels is not None]  # has_labels: every row has them
        label = str(vote(np.array([labels]))[0])  # the k-NN vote of the evaluation: a tie goes to the nearest
        return {
            "level": coarse,
            "label": label,
            "votes": labels.count(label),
            "k": len(res),
            "zoom": self.index.dims[0],
            "rule": PREDICTED_RULE,
        }

    @staticmethod
    def mode(mode: Any) -> str:
        if mode is None or (isinstance(mode, str) and not mode.strip()):
            return "zoom"
        if not isinstance(mode, str) or mode.strip().lower() not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, got {str(mode)[:20]!r}")
        return mode.strip().lower()

    @staticmethod
    def candidates(candidates: Any) -> int | None:
        if candidates is None or candidates == "":
            return None
        if isinstance(candidates, str):
            c = candidates.strip()
            if not (c.isascii() and c.isdigit() and len(c) <= 7):
                raise BadRequest(f"candidates must be an integer >= k, got {c[:20]!r}")
            return int(c)
        if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)):
            raise BadRequest(f"candidates must be an integer >= k, got {candidates!r}")
        return int(candidates)

    def search(self, q: Any, zoom: Any = "fine", k: Any = DEFAULT_K, mode: Any = None, candidates: Any = None) -> dict:
        q, zd, k = self.query(q), self.zoom(zoom), self.k(k)
        mode, candidates = self.mode(mode), self.candidates(candidates)
        try:  # the mode's own checks (candidates >= k, a funnel at the first block, ...) before any work
            self.index.plan(k, zd, mode, candidates, has_coarse_labels=mode != "routed" or self.has_labels)
        except ZoomIndexError as e:
            raise BadRequest(str(e)) from None
        vec = self._embed(q)
        with self._lock:
            res = self.index.search(vec, k=k, zoom=zd, mode=mode, candidates=candidates)
            hits = res[0]
            predicted = self.predict_coarse(vec, k)
            point = self._project(vec, zd)
        coarse = self.levels[0] if self.has_labels else ""  # read only when there is a prediction
        out = []
        for h in hits:
            out.append(
                {
                    "rank": h.rank,
                    "row": h.row,
                    "id": h.id,
                    "score": round(h.score, 4),
                    "text": h.text,
                    "labels": h.labels,
                    "payload": h.payload,
                    "in_predicted": bool(predicted and h.labels and h.labels.get(coarse) == predicted["label"]),
                }
            )
        return {
            "query": q,
            "zoom": zd,
            "zoom_name": self._zoom_name(zd),
            "k": k,
            "mode": res.mode,
            "candidates": res.candidates,
            "route": res.routes[0].as_dict() if res.routes else None,
            "hits": out,
            "predicted": predicted,
            "n_in_predicted": sum(h["in_predicted"] for h in out),
            "point": point,
        }

    def _zoom_name(self, zd: int) -> str:
        return "coarse" if zd == self.index.dims[0] else "fine" if zd == self.index.dims[-1] else "intermediate"

    # ------------------------------------------------------------ map
    def _pca(self, zd: int) -> dict:
        with self._lock:
            m = self._maps.get(zd)
            if m is None:
                X = _unit(self.index.vectors[self.map_rows, :zd])
                mean = X.mean(axis=0)
                Xc = X - mean
                _, s, vt = np.linalg.svd(Xc, full_matrices=False)
                comps = vt[:2] if len(vt) >= 2 else np.vstack([vt, np.zeros((2 - len(vt), zd))])
                for i in range(len(comps)):  # a deterministic sign: the largest loading positive
                    if comps[i][np.argmax(np.abs(comps[i]))] < 0:
                        comps[i] = -comps[i]
                xy = Xc @ comps.T
                var = s**2
                ratio = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
                m = {
                    "mean": mean,
                    "comps": comps,
                    "x": _round(xy[:, 0]),
                    "y": _round(xy[:, 1]),
                    "explained": _round(ratio + [0.0] * (2 - len(ratio)), 4),
                }
                self._maps[zd] = m
            return m

    def _project(self, vec: np.ndarray, zd: int) -> dict:
        m = self._pca(zd)
        p = (_unit(vec[None, :zd])[0] - m["mean"]) @ m["comps"].T
        return {"x": round(float(p[0]), 4), "y": round(float(p[1]), 4)}

    def map(self, zoom: Any, color: Any = "coarse") -> dict:
        zd, color = self.zoom(zoom), self.color(color)
        m = self._pca(zd)
        level = None
        codes = None
        if self.has_labels:
            level = self.levels[0] if color == "coarse" else self.levels[-1]
            codes = self.codes[level][self.map_rows].tolist()
        return {
            "zoom": zd,
            "color": color,
            "level": level,
            "method": "pca",
            "explained": m["explained"],
            "n": len(self.map_rows),
            "total": len(self.index),
            "x": m["x"],
            "y": m["y"],
            "c": codes,
            "classes": self.classes.get(level) if level else None,
        }

    def corpus(self) -> dict:
        """Texts and label codes of the map's rows (the page fetches them once, for hovering)."""
        rows = self.map_rows.tolist()
        return {
            "rows": rows,
            "texts": [self.index.texts[r] for r in rows],
            "levels": self.levels if self.has_labels else [],
            "classes": self.classes,
            "codes": {lv: self.codes[lv][self.map_rows].tolist() for lv in self.codes},
            "sampled": len(rows) < len(self.index),
            "total": len(self.index),
        }

    def warm(self) -> None:
        """Load the encoder and compute the coarse map now, so the first request is not the slow one."""
        self.index.embed(["warm up"], role="query")
        self._pca(self.index.dims[0])

    # ------------------------------------------------------------ run
    def run_info(self) -> dict:
        rec = self.index.run.record

        def finite(d: dict | None) -> dict:
            return {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in (d or {}).items()}

        ev = rec.eval
        return {
            "run_id": rec.run_id,
            "method": rec.method,
            "seed": rec.seed,
            "dataset": rec.dataset.name,
            "levels": rec.level_names,
            "encoder": rec.encoder.name,
            "dims": list(self.index.dims),
            "accuracy": rec.accuracy,
            "baseline_accuracy": rec.baseline.accuracy,
            "steerability": finite(rec.steerability),
            "baseline_steerability": finite(rec.baseline.steerability),
            "eval": {"split": ev.split, "rows": ev.n_rows, "k": ev.k},
            "index": {
                "size": len(self.index),
                "backend": self.index.backend,
                "modes": list(MODES),
                "kind": self.index.kind,
                "levels": self.levels,
                "has_labels": self.has_labels,
                "map_points": len(self.map_rows),
                "source": self.source,
            },
            "limits": {"max_query_chars": MAX_QUERY_CHARS, "max_k": MAX_K, "default_k": DEFAULT_K},
            "predicted_rule": PREDICTED_RULE,
        }


# ------------------------------------------------------------------ the web app
class _JsonErrors:
    """Outermost ASGI layer: an exception that escapes the app becomes a JSON 500 without traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:  # the catch-all the API promises
            log.error(
                "explore: %s %s failed: %s: %s",
                scope.get("method"),
                scope.get("path"),
                type(e).__name__,
                str(e).splitlines()[0][:200] if str(e) else "",
            )
            if started:
                raise
            body = json.dumps({"error": "internal error; the server log has one line about it", "status": 500}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


def _host_name(value: str) -> str:
    """The host of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``), lower-cased, no trailing dot."""
    v = value.strip().lower()
    if v.startswith("["):
        v = v[1 : v.find("]")] if "]" in v else v[1:]
    elif v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


def allowed_host_names(allowed_hosts: Sequence[str] = ()) -> frozenset[str]:
    """The host names the explorer answers: the loopback names plus ``allowed_hosts`` (``*``: any)."""
    return frozenset(_host_name(h) if h.strip() != "*" else "*" for h in (*LOOPBACK_HOSTS, *allowed_hosts) if h.strip())


class _Guard:
    """ASGI layer before the app: a ``Host`` this server doesn't answer to (DNS rebinding) is a 400, an
    over-long URL a 414, a request body a 413 -- each a one-line JSON error, nothing read further."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    @staticmethod
    async def _refuse(send: Send, status: int, msg: str) -> None:
        body = json.dumps({"error": msg, "status": status}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers") or []:
            headers.setdefault(k.lower(), v)
        raw_host = headers.get(b"host", b"").decode("latin-1")
        host = _host_name(raw_host)
        if "*" not in self.allowed and host not in self.allowed:
            shown = repr(raw_host[:60]) if raw_host else "missing"
            await self._refuse(
                send,
                400,
                f"host {shown} is not allowed: this explorer answers only "
                f"{', '.join(sorted(self.allowed))}; open it at http://127.0.0.1:PORT/, or "
                "start it with --allow-host NAME (allowed_hosts=[...]) for another name",
            )
            return
        size = len(scope.get("raw_path") or scope.get("path", "").encode()) + len(scope.get("query_string") or b"")
        if size > MAX_URL_BYTES:
            await self._refuse(
                send,
                414,
                f"the URL has {size} bytes; at most {MAX_URL_BYTES} are accepted (queries "
                f"are at most {MAX_QUERY_CHARS} characters)",
            )
            return
        length = headers.get(b"content-length", b"0").strip()
        if (length and length != b"0") or b"transfer-encoding" in headers:
            await self._refuse(
                send, 413, "request bodies are not accepted: the API answers GET with its input in the query string"
            )
            return
        await self.app(scope, receive, send)


def check_installed() -> None:
    """Raise a one-line error unless the ``explore`` extra (Starlette, uvicorn) is installed."""
    require("explore", "the explorer")


def create_app(explorer: Explorer, *, allowed_hosts: Sequence[str] = ()) -> Starlette:
    """The Starlette app over an :class:`Explorer` (needs the ``explore`` extra).

    It answers requests whose ``Host`` is ``127.0.0.1``, ``localhost`` or ``::1`` (any port), or a name
    in ``allowed_hosts`` (``"*"``: any host; for a server reached under another name or address);
    other hosts get a 400 (DNS rebinding)."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError:
        raise ExploreError(
            "the explorer needs Starlette and uvicorn: pip install 'fractal-embeddings[explore]'"
        ) from None

    def page(name: str) -> bytes:
        path = STATIC_DIR / name
        if not path.is_file():
            raise ExploreError(f"{path}: missing; the package was installed without its explore_static files")
        return path.read_bytes()

    index_html = page("index.html")
    static = {name: (page(name), ctype) for name, ctype in STATIC_FILES.items()}
    nocache = {"cache-control": "no-store"}

    def api(fn: Callable[[Any], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await run_in_threadpool(fn, request.query_params)
            except BadRequest as e:
                return JSONResponse({"error": str(e), "status": 400}, status_code=400)
            return JSONResponse(data, headers=nocache)

        return endpoint

    async def home(request: Request) -> Response:
        return Response(index_html, media_type="text/html; charset=utf-8", headers=nocache)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise HTTPException(404)
        body, ctype = static[name]
        return Response(body, media_type=ctype, headers=nocache)

    async def http_error(request: Request, exc: Any) -> Response:  # exc: an HTTPException
        msg = {
            404: "not found: the API is /api/search, /api/map, /api/corpus and /api/run",
            405: "method not allowed: the API answers GET",
        }.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": msg, "status": exc.status_code}, status_code=exc.status_code)

    routes = [
        Route("/", home),
        Route("/static/{name}", asset),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route(
            "/api/search",
            api(
                lambda p: explorer.search(
                    p.get("q"), p.get("zoom", "fine"), p.get("k"), p.get("mode"), p.get("candidates")
                )
            ),
        ),
        Route("/api/map", api(lambda p: explorer.map(p.get("zoom", "coarse"), p.get("color", "coarse")))),
        Route("/api/corpus", api(lambda p: explorer.corpus())),
        Route("/api/run", api(lambda p: explorer.run_info())),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(_JsonErrors), Middleware(_Guard, allowed=allowed_host_names(allowed_hosts))],
    )
    app.state.explorer = explorer
    return app


# ------------------------------------------------------------------ serving
def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port`` 0: any free port), or a one-line error."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ExploreError(f"--port must be an integer from 0 to 65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ExploreError(
            f"cannot resolve host {host!r} ({e.strerror}); use 127.0.0.1 (default) or an address of this machine"
        ) from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        import errno

        if e.errno == errno.EADDRINUSE:
            raise ExploreError(
                f"port {port} on {host} is in use (another server, or an explorer already running); "
                "pass --port with another number, or --port 0 for any free port"
            ) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise ExploreError(
                f"not allowed to listen on {host}:{port} (ports below 1024 need privileges); "
                "pass --port 8765 or another port above 1023"
            ) from None
        raise ExploreError(f"cannot listen on {host}:{port} ({e.strerror}); pass another --host or --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _server(app: ASGIApp, sock: socket.socket, log_level: str = "warning") -> uvicorn.Server:
    try:
        import uvicorn
    except ImportError:
        raise ExploreError(
            "the explorer needs Starlette and uvicorn: pip install 'fractal-embeddings[explore]'"
        ) from None
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(app: ASGIApp, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on a socket from :func:`bind` until interrupted (Ctrl+C)."""
    _server(app, sock, log_level).run(sockets=[sock])


class ServerThread:
    """``app`` served by uvicorn in a background thread (for notebooks and tests)::

    with ServerThread(create_app(ex)) as url:   # port 0: a free port
        ...
    """

    def __init__(self, app: ASGIApp, host: str = DEFAULT_HOST, port: int = 0, log_level: str = "warning") -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = _server(app, self.sock, log_level)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="fractal-explore"
        )

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        t0 = time.perf_counter()
        while not self.server.started:
            if not self.thread.is_alive() or time.perf_counter() - t0 > timeout:
                raise ExploreError(f"the explorer server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
