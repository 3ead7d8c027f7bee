"""``search``: zoom, funnel and routed search at 15,000 and at 104,000 items, for ``fractal`` and ``mrl``.

Two corpora, each searched with the head of a run trained here on the dataset whose coarse labels
the corpus items carry (seed 42, the main experiment's caps: <= 10,000 training rows, stored beside
the measurements):

* ``clinc150``: the 15,000 CLINC150 training utterances as the corpus (domain -> intent), the 4,500
  test utterances as queries;
* ``newsgroups20-passages``: every 20 Newsgroups ``train`` and ``val`` document cut into passages of
  :data:`PASSAGE_WORDS` words (a last piece under :data:`PASSAGE_MIN_WORDS` words joins the one before;
  104,129 passages of 11,293 documents), each with its document's labels (subject -> newsgroup); the
  queries are the first passage of each of 1,000 ``test`` documents drawn with seed 0 (documents
  the corpus does not hold). The corpus is encoded in chunks of :data:`ENCODE_CHUNK` passages, each
  one embedding-cache entry (about 30 minutes with MiniLM-L6 on 2 CPU cores, once).

For each run, a flat (exact) and an HNSW :class:`~fractal_embeddings.index.ZoomIndex` (FAISS; HNSW
``M`` = 32, ``efConstruction`` = 80, ``efSearch`` = 64) are searched with ``k`` = 10 in every mode
(:mod:`~fractal_embeddings.index.modes`): ``zoom`` at 256 dims (the exact full-vector search every
recall is measured against, on the flat index) and at 64 dims, ``funnel`` with :data:`FUNNEL`
candidates (first pass on the 64-d prefix, exact re-rank on the full vector), ``routed`` with
:data:`ROUTED` voters (the 64-d neighbours whose coarse labels vote), top-1 and top-2 (the runner-up
class too when it has at least half the winner's votes). Measured per configuration: recall@10
against exact full-vector search, fine and coarse precision@10 (hits sharing the query's fine /
coarse label), for routed searches the routing error (the voted class is not the query's coarse
label) and the miss rate (the query's class is not among the classes searched), and the latency of
the library's search call on head vectors (encoding excluded; one FAISS thread): the median over
single-query calls and the median per-query time of 64-query batches. On CLINC150 the ``fractal``
run is also built into an embedded Qdrant collection (in memory) and searched in the same modes on
a subset of queries: the recall shows the two backends agree; the embedded Qdrant's latency is
numpy's brute force in this process, not a server's, and is recorded as such.

Output: ``<results>/search/search.json`` (canonical JSON) + the trained runs. ``--quick``: 3,000
CLINC150 and 20,000 passage items, fewer queries and configurations.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import SEARCH_NAME, SEARCH_RESULT_FILE
from ..atomic import atomic_write_bytes
from ..data import load_dataset
from ..records import canonical_json
from ..runs import load_run
from ..store import RunStore
from .latency import machine_info
from .sweep import RunSpec, run_sweep, shared_encoder

NAME = SEARCH_NAME
RESULT_FILE = SEARCH_RESULT_FILE
SCHEMA = "fractal-embeddings/search/1"
K = 10
METHODS = ("fractal", "mrl")
FUNNEL = (20, 50, 100, 200, 500)
ROUTED = (10, 50, 200)
HNSW: dict[str, int] = {"m": 32, "ef_construction": 80, "ef_search": 64}
PASSAGE_WORDS = 30  # words per passage of the 20 Newsgroups corpus
PASSAGE_MIN_WORDS = 8  # a shorter last piece of a document joins the passage before it
ENCODE_CHUNK = 10_000  # passages per embedding-cache entry (a killed encoding resumes by chunk)
CAP = {"train": 10_000, "test": 2_000}  # the runs' training rows: the main experiment's caps
FULL = {
    "clinc_items": None,  # all 15,000
    "clinc_queries": None,  # all 4,500
    "passage_items": None,  # all 104,129
    "passage_queries": 1_000,
    "single": 200,  # single-query calls timed per configuration
    "batches": 8,  # 64-query batches timed per configuration
    "qdrant_queries": 100,  # the embedded Qdrant is a numpy scan with Python payload filters: slow
    "funnel": FUNNEL,
    "routed": ROUTED,
}
QUICK = {
    "clinc_items": 3_000,
    "clinc_queries": 600,
    "passage_items": 20_000,
    "passage_queries": 300,
    "single": 50,
    "batches": 3,
    "qdrant_queries": 60,
    "funnel": (20, 100),
    "routed": (50,),
}
LogFn = Callable[[str], None]


# ------------------------------------------------------------------ the passage corpus
@dataclass(frozen=True)
class Passages:
    """Texts cut from documents, each with its document's labels (class names per level)."""

    texts: list[str]
    labels: list[tuple[str, ...]]
    doc: list[str]  # "<split>-<row>" of the document each passage comes from
    level_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)


def split_words(text: str, words: int = PASSAGE_WORDS, min_words: int = PASSAGE_MIN_WORDS) -> list[str]:
    """``text`` cut into passages of ``words`` words; a last piece under ``min_words`` joins the one before."""
    ws = text.split()
    parts = [ws[i : i + words] for i in range(0, len(ws), words)]
    if len(parts) > 1 and len(parts[-1]) < min_words:
        tail = parts.pop()
        parts[-1] = parts[-1] + tail
    return [" ".join(p) for p in parts]


def newsgroup_passages(splits: tuple[str, ...] = ("train", "val")) -> Passages:
    """Every document of those 20 Newsgroups splits cut into passages (:func:`split_words`), in order."""
    ds = load_dataset("newsgroups20")
    classes = [lv.classes for lv in ds.levels]
    texts, labels, doc = [], [], []
    for split in splits:
        sp = ds.split(split)
        for row, (text, codes) in enumerate(zip(sp.texts, sp.labels.tolist(), strict=True)):
            names = tuple(classes[k][c] for k, c in enumerate(codes))
            for p in split_words(text):
                texts.append(p)
                labels.append(names)
                doc.append(f"{split}-{row}")
    return Passages(texts, labels, doc, tuple(ds.level_names))


def newsgroup_queries(n: int, seed: int = 0) -> Passages:
    """The first passage of ``n`` 20 Newsgroups ``test`` documents drawn with ``seed`` (in row order)."""
    ds = load_dataset("newsgroups20")
    sp = ds.split("test")
    rows = np.sort(np.random.default_rng(seed).choice(len(sp), size=min(n, len(sp)), replace=False))
    classes = [lv.classes for lv in ds.levels]
    codes = sp.labels.tolist()
    return Passages(
        [split_words(sp.texts[r])[0] for r in rows],
        [tuple(classes[k][c] for k, c in enumerate(codes[r])) for r in rows],
        [f"test-{r}" for r in rows],
        tuple(ds.level_names),
    )


def embed_chunked(encoder: Any, texts: list[str], chunk: int = ENCODE_CHUNK, log: LogFn = print) -> np.ndarray:
    """``encoder.embed`` chunk by chunk (each chunk one cache entry): a killed encoding resumes."""
    parts = []
    for s in range(0, len(texts), chunk):
        part = texts[s : s + chunk]
        if not encoder.is_cached(part):
            log(f"search: encoding passages {s:,}-{s + len(part):,} of {len(texts):,}")
        parts.append(np.asarray(encoder.embed(part)))
    return np.concatenate(parts, axis=0)


# ------------------------------------------------------------------ corpora
@dataclass
class SearchCorpus:
    """A corpus and its queries as encoder vectors, with class names (coarse, fine) per item/query."""

    name: str
    dataset: str  # the dataset the runs are trained on
    description: str
    texts: list[str]
    X: np.ndarray  # encoder vectors of the items
    labels: list[list[str]]
    level_names: tuple[str, ...]
    Xq: np.ndarray  # encoder vectors of the queries
    q_labels: list[list[str]]

    def summary(self) -> dict:
        """What ``search.json`` says about the corpus."""
        return {
            "description": self.description,
            "dataset": self.dataset,
            "items": len(self.texts),
            "queries": len(self.Xq),
            "levels": list(self.level_names),
            "classes": [len({lab[i] for lab in self.labels}) for i in range(len(self.level_names))],
        }


def clinc_corpus(cfg: dict, encoder: Any) -> SearchCorpus:
    ds = load_dataset("clinc150")
    tr, te = ds.split("train"), ds.split("test")

    X, Xq = np.asarray(encoder.embed(tr.texts)), np.asarray(encoder.embed(te.texts))
    n, nq = cfg["clinc_items"] or len(tr), cfg["clinc_queries"] or len(te)
    return SearchCorpus(
        "clinc150",
        "clinc150",
        f"CLINC150 training utterances ({n:,}) as the corpus, test utterances ({nq:,}) as queries",
        list(tr.texts)[:n],
        X[:n],
        ds.label_names("train")[:n],
        tuple(ds.level_names),
        Xq[:nq],
        ds.label_names("test")[:nq],
    )


def passage_corpus(cfg: dict, encoder: Any, log: LogFn) -> SearchCorpus:
    p = newsgroup_passages()
    X = embed_chunked(encoder, p.texts, log=log)  # always the whole corpus: the cache entries don't depend on cfg
    q = newsgroup_queries(cfg["passage_queries"])
    n = cfg["passage_items"] or len(p)
    return SearchCorpus(
        "newsgroups20-passages",
        "newsgroups20",
        f"{n:,} passages of {PASSAGE_WORDS} words from {len(set(p.doc[:n])):,} 20 Newsgroups train+val documents; "
        f"queries: the first passage of {len(q):,} test documents (seed 0)",
        p.texts[:n],
        X[:n],
        [list(x) for x in p.labels[:n]],
        p.level_names,
        np.asarray(encoder.embed(q.texts)),
        [list(x) for x in q.labels],
    )


def model_spec(dataset: str, method: str, quick: bool) -> RunSpec:
    cap = {"train": 2_000, "val": 400, "test": 600} if quick else CAP
    return RunSpec(NAME, dataset, method, 42, cap=cap)


# ------------------------------------------------------------------ measuring
def _median_us(values: list[float]) -> float:
    return round(float(np.median(values)), 1)


def one_thread() -> contextlib.AbstractContextManager:
    """Every thread pool (FAISS's OpenMP, the BLAS libraries numpy and FAISS bring) limited to one
    thread while latency is measured, when threadpoolctl is installed (FAISS's OpenMP otherwise)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import faiss

        faiss.omp_set_num_threads(1)
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def timings(search: Callable[[np.ndarray], Any], Q: np.ndarray, n_single: int, n_batches: int) -> dict:
    """Median microseconds per query, on one thread: single-query calls, and 64-query batches (batch
    time / 64)."""
    search(Q[:2])  # warm: lazily built structures (per-class indexes) are not what is measured
    single = []
    batch = []
    with one_thread():
        for q in Q[:n_single]:
            t = time.perf_counter_ns()
            search(q[None, :])
            single.append((time.perf_counter_ns() - t) / 1e3)
        for s in range(n_batches):
            B = Q[(s * 64) % max(len(Q) - 64, 1) :][:64]
            t = time.perf_counter_ns()
            search(B)
            batch.append((time.perf_counter_ns() - t) / 1e3 / len(B))
    return {"b1_p50_us": _median_us(single), "b64_per_query_us": _median_us(batch), "n_single": len(single)}


def searcher(ix: Any, conf: dict[str, Any]) -> Callable[[np.ndarray], Any]:
    """``ix.search`` in one configuration (mode, zoom, candidates, route_classes), as a function of the queries."""

    def search(Q: np.ndarray) -> Any:
        return ix.search(
            Q,
            K,
            conf["zoom"],
            mode=conf["mode"],
            candidates=conf.get("candidates"),
            route_classes=conf.get("route_classes") or 1,
        )

    return search


def configurations(kind: str, cfg: dict) -> list[dict]:
    """The searches made on one index: mode, zoom, candidates, route_classes."""
    out: list[dict] = [{"mode": "zoom", "zoom": 256}]
    if kind == "flat":
        out.append({"mode": "zoom", "zoom": 64})
    out += [{"mode": "funnel", "zoom": 256, "candidates": c} for c in cfg["funnel"]]
    for c in cfg["routed"]:
        out.append({"mode": "routed", "zoom": 256, "candidates": c, "route_classes": 1})
        if kind == "flat":
            out.append({"mode": "routed", "zoom": 256, "candidates": c, "route_classes": 2})
    return out


def scores(
    res: Any, truth: np.ndarray, fine: np.ndarray, coarse: np.ndarray, q_fine: np.ndarray, q_coarse: np.ndarray
) -> dict:
    """Recall@k against ``truth`` rows, fine / coarse precision@k and, routed, the routing error and miss rates."""
    rows = res.rows
    k = truth.shape[1]
    valid = rows >= 0
    recall = np.mean([len(set(r[v]) & set(t)) / k for r, v, t in zip(rows, valid, truth, strict=True)])
    safe = np.where(valid, rows, 0)
    fine_p = np.mean(np.where(valid, fine[safe] == q_fine[:, None], False).sum(axis=1) / k)
    coarse_p = np.mean(np.where(valid, coarse[safe] == q_coarse[:, None], False).sum(axis=1) / k)
    out = {
        "recall@10": round(float(recall), 4),
        "fine_p@10": round(float(fine_p), 4),
        "coarse_p@10": round(float(coarse_p), 4),
    }
    if res.routes:
        out["route_error"] = round(float(np.mean([r.label != c for r, c in zip(res.routes, q_coarse, strict=True)])), 4)
        out["route_miss"] = round(
            float(np.mean([c not in r.classes for r, c in zip(res.routes, q_coarse, strict=True)])), 4
        )
        out["classes_searched"] = round(float(np.mean([len(r.classes) for r in res.routes])), 3)
    return out


def measure_run(run: Any, corpus: SearchCorpus, cfg: dict, log: LogFn) -> list[dict]:
    """Every configuration of both index kinds (and, on CLINC150 with ``fractal``, the embedded Qdrant)."""
    import faiss

    from ..index import ZoomIndex

    E, Eq = run.transform(corpus.X), run.transform(corpus.Xq)
    fine = np.asarray([lab[-1] for lab in corpus.labels], dtype=object)
    coarse = np.asarray([lab[0] for lab in corpus.labels], dtype=object)
    q_fine = np.asarray([lab[-1] for lab in corpus.q_labels], dtype=object)
    q_coarse = np.asarray([lab[0] for lab in corpus.q_labels], dtype=object)
    method = run.record.method
    rows: list[dict] = []
    truth: np.ndarray | None = None
    flat: Any = None
    for kind in ("flat", "hnsw"):
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is not what is measured
        t0 = time.perf_counter()
        ix = ZoomIndex.build(
            run,
            corpus.texts,
            labels=corpus.labels,
            level_names=corpus.level_names,
            vectors=E,
            kind=kind,
            m=HNSW["m"],
            ef_construction=HNSW["ef_construction"],
            ef_search=HNSW["ef_search"],
        )
        build_s = round(time.perf_counter() - t0, 2)
        faiss.omp_set_num_threads(1)
        if truth is None:
            truth = ix.search(Eq, K, 256).rows  # exact full-vector search: what recall is measured against
        for conf in configurations(kind, cfg):
            search = searcher(ix, conf)
            res = search(Eq)
            row = {
                "corpus": corpus.name,
                "method": method,
                "backend": "faiss",
                "kind": kind,
                "n": len(ix),
                "queries": len(Eq),
                "build_s": build_s,
                "candidates": None,
                "route_classes": None,
                **conf,
                **scores(res, truth, fine, coarse, q_fine, q_coarse),
                **timings(search, Eq, cfg["single"], cfg["batches"]),
            }
            rows.append(row)
            log(
                f"search {corpus.name} {method} {kind} {conf['mode']}@{conf['zoom']} c={conf.get('candidates')} "
                f"r={conf.get('route_classes')}: recall {row['recall@10']:.3f}, fine p@10 {row['fine_p@10']:.3f}, "
                f"{row['b1_p50_us']:.0f} us/query"
            )
        if kind == "flat":
            flat = ix  # kept for the embedded Qdrant's comparison
        del ix
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    if corpus.name == "clinc150" and method == "fractal" and truth is not None:
        rows += measure_qdrant(run, corpus, E, Eq, truth, flat, (fine, coarse, q_fine, q_coarse), cfg, log)
    return rows


def measure_qdrant(
    run: Any,
    corpus: SearchCorpus,
    E: np.ndarray,
    Eq: np.ndarray,
    truth: np.ndarray,
    flat: Any,
    labels: tuple,
    cfg: dict,
    log: LogFn,
) -> list[dict]:
    """The embedded Qdrant (in memory) in the same modes, on the first ``qdrant_queries`` queries;
    ``same_ids_as_faiss``: the share of those queries whose hits (ids, in order) equal the flat FAISS
    index's in the same configuration."""
    from ..index import QdrantIndex, QdrantTarget

    nq = cfg["qdrant_queries"]
    fine, coarse, q_fine, q_coarse = labels
    t0 = time.perf_counter()
    qx = QdrantIndex.build(
        run,
        corpus.texts,
        labels=corpus.labels,
        level_names=corpus.level_names,
        vectors=E,
        target=QdrantTarget("search", path=":memory:"),
    )
    build_s = round(time.perf_counter() - t0, 2)
    rows = []
    confs: list[dict[str, Any]] = [
        {"mode": "zoom", "zoom": 256},
        {"mode": "funnel", "zoom": 256, "candidates": 100},
        {"mode": "routed", "zoom": 256, "candidates": 50, "route_classes": 1},
    ]
    for conf in confs:
        search = searcher(qx, conf)
        res = search(Eq[:nq])
        same = np.mean([a == b for a, b in zip(res.ids, searcher(flat, conf)(Eq[:nq]).ids, strict=True)])
        row = {
            "corpus": corpus.name,
            "method": run.record.method,
            "backend": "qdrant-embedded",
            "kind": "flat",
            "n": len(qx),
            "queries": nq,
            "build_s": build_s,
            "candidates": None,
            "route_classes": None,
            **conf,
            **scores(res, truth[:nq], fine, coarse, q_fine[:nq], q_coarse[:nq]),
            "same_ids_as_faiss": round(float(same), 4),
            **timings(search, Eq[:nq], min(cfg["single"], 20), 1),
        }
        rows.append(row)
        log(
            f"search {corpus.name} qdrant-embedded {conf['mode']}: recall {row['recall@10']:.3f}, "
            f"{row['b1_p50_us']:.0f} us/query"
        )
    qx.close()
    return rows


def search_record(rows: list[dict], corpora: dict, runs: dict, cfg: dict, quick: bool) -> dict:
    """The ``search.json`` document: the measurements, what was measured and on what machine."""

    return {
        "schema": SCHEMA,
        "experiment": NAME,
        "quick": quick,
        "k": K,
        "corpora": corpora,
        "runs": runs,
        "hnsw": HNSW,
        "search_threads": 1,
        "machine": machine_info(),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "results": rows,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run(root: str | Path, quick: bool = False, log: LogFn = print) -> Path:
    """Train the runs (once, in the store), measure and write ``<root>/search.json``; returns its path."""
    root = Path(root)
    path = root / RESULT_FILE
    if path.is_file():  # resumable like the training grids: a finished measurement is kept
        log(f"search: {path} already measured; delete it to measure again")
        return path
    cfg = QUICK if quick else FULL
    specs = [model_spec(d, m, quick) for d in ("clinc150", "newsgroups20") for m in METHODS]
    store = RunStore(root)
    run_sweep([s for s in specs if not store.has(s.key)], store, log=log, progress=False)
    encoder = shared_encoder(None)
    rows: list[dict] = []
    corpora = {}
    runs = {}
    for name in ("clinc150", "newsgroups20"):
        corpus = clinc_corpus(cfg, encoder) if name == "clinc150" else passage_corpus(cfg, encoder, log)
        corpora[corpus.name] = corpus.summary()
        for spec in specs:
            if spec.dataset != corpus.dataset:
                continue
            the_run = load_run(store.path(spec.key))
            runs[f"{corpus.name}/{spec.method}"] = the_run.record.run_id
            rows += measure_run(the_run, corpus, cfg, log)
    record = search_record(rows, corpora, runs, cfg, quick)
    atomic_write_bytes(path, canonical_json(record).encode())
    log(f"search: {len(rows)} measurements -> {path}")
    return path
