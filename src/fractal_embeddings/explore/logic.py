"""The explorer's domain: :class:`Explorer` answers the web API's questions (search, map, corpus, run)
over a zoom index, checking each request's raw values first (:class:`BadRequest`, one line each)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FractalError, ZoomIndexError
from ..evaluation import vote
from ..index import MODES

if TYPE_CHECKING:
    from ..index import QdrantIndex, ZoomIndex

    AnyIndex = ZoomIndex | QdrantIndex  # what the explorer serves: either backend's index

MAX_QUERY_CHARS = 500
MAX_K = 100
DEFAULT_K = 10
MAP_MAX_POINTS = 5000
COLORS = ("coarse", "fine")
PREDICTED_RULE = (
    "predicted coarse class = the majority coarse label of the query's k nearest neighbours "
    "at the coarse zoom (first block); a tie goes to the label of the nearest tied row"
)


class ExploreError(FractalError):
    """The explorer cannot start as asked (one line: the problem and the fix)."""


class BadRequest(ExploreError):
    """An API request with invalid input (answered with HTTP 400 and the message)."""

    status = 400


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
