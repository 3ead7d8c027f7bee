"""Search modes (zoom, funnel, routed) on both backends: FAISS (ZoomIndex) and Qdrant (QdrantIndex).

Real data and the real offline encoder: the CLINC150 subset and the short `fractal` run of the shared
fixtures (3,000 training rows as the corpus, test rows as queries) and a short TREC run as "a run
from another dataset". Qdrant runs embedded (``QdrantClient(path=...)``, no server); its folder goes
to /dev/shm when there is one, because the embedded mode commits every point to SQLite and an fsync
per point on a disk makes a 3,000-point build take tens of seconds instead of a few. A test against
a real server runs only when ``QDRANT_URL`` is set (``QDRANT_API_KEY`` when it needs one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from fractal_embeddings.encoders import embed_split
from fractal_embeddings.index import QdrantIndex, QdrantTarget, ZoomIndex, ZoomIndexError, load_index
from fractal_embeddings.index.modes import route
from fractal_embeddings.index.qdrant_collection import point_id
from fractal_embeddings.runs import train

pytestmark = pytest.mark.slow
K = 10


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg, msg
    return msg


def _recall(rows, truth) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(rows, truth, strict=True)]))


@pytest.fixture(scope="module")
def run(clinc_3k_run):
    return clinc_3k_run


@pytest.fixture(scope="module")
def corpus(clinc_3k_corpus):
    return clinc_3k_corpus


@pytest.fixture(scope="module")
def queries(clinc_3k, zoom_encoder, run):
    sp = clinc_3k.split("test")
    return {"labels": clinc_3k.label_names("test"), "vectors": run.transform(embed_split(zoom_encoder, sp))}


@pytest.fixture(scope="module")
def flat(run, corpus, zoom_encoder):
    return ZoomIndex.build(
        run, corpus["texts"], labels=corpus["labels"], vectors=corpus["vectors"], encoder=zoom_encoder
    )


@pytest.fixture(scope="module")
def qdrant_dir():
    root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="fractal-qdrant-", dir=root))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def qdrant(run, corpus, zoom_encoder, qdrant_dir):
    ix = QdrantIndex.build(
        run,
        corpus["texts"],
        labels=corpus["labels"],
        vectors=corpus["vectors"],
        encoder=zoom_encoder,
        target=QdrantTarget("clinc", path=str(qdrant_dir / "data")),
    )
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def trec_run(data_home, zoom_encoder):
    """A short run on another dataset (TREC): its vectors are not comparable with the CLINC150 run's."""
    from fractal_embeddings import load_dataset

    ds = load_dataset("trec").subset({"train": 600, "val": 200, "test": 200}, seed=0)
    return train(ds, "fractal", seed=0, encoder=zoom_encoder, train_options={"epochs": 1}, eval_rows=200)


# ------------------------------------------------------------------ the mode logic
def test_vote_routes_to_the_majority_and_the_close_runner_up():
    r = route(["a", "b", "a", "b", "c", "a"], "domain", route_classes=2)
    assert (r.label, r.votes, r.voters, r.runner_up, r.runner_up_votes, r.classes) == ("a", 3, 6, "b", 2, ("a", "b"))
    assert route(["a", "b", "a", "b", "c", "a"], "domain").classes == ("a",)  # top-1 unless asked
    assert route(["a", "a", "a", "a", "b"], route_classes=2).classes == ("a",)  # 1 of 4 votes: not close
    assert route(["b", "a", "a", "b"]).label == "b"  # a tie goes to the nearest tied label


# ------------------------------------------------------------------ FAISS
def test_funnel_reranks_exactly_and_recall_grows_with_candidates(flat, corpus, queries):
    Q = queries["vectors"]
    exact = flat.search(Q, K, "fine")
    everything = flat.search(Q[:100], K, "fine", mode="funnel", candidates=len(flat))
    np.testing.assert_array_equal(everything.rows, exact.rows[:100])  # re-ranking every item = exact search
    np.testing.assert_allclose(everything.scores, exact.scores[:100], atol=1e-5)
    recalls = [_recall(flat.search(Q, K, mode="funnel", candidates=c).rows, exact.rows) for c in (10, 50, 200)]
    assert recalls[0] < recalls[1] < recalls[2] and recalls[2] > 0.9, recalls
    res = flat.search(Q[:5], K, mode="funnel", candidates=50)
    assert res.mode == "funnel" and res.candidates == 50 and res.routes is None
    V = corpus["vectors"]
    cos = [
        float(V[h.row] @ Q[0] / np.linalg.norm(V[h.row]) / np.linalg.norm(Q[0])) for h in res[0]
    ]  # scores: the full vectors' cosine
    np.testing.assert_allclose([h.score for h in res[0]], cos, atol=1e-5)
    # a funnel at 128 dims re-ranks on the 128-d prefix
    assert flat.search(Q[:5], K, 128, mode="funnel", candidates=len(flat)).rows.tolist() == (
        flat.search(Q[:5], K, 128).rows.tolist()
    )


def test_routed_searches_only_the_predicted_class(flat, queries):
    Q, labels = queries["vectors"], queries["labels"]
    res = flat.search(Q, K, mode="routed", candidates=30)
    voters = flat.search(Q, 30, "coarse")
    for qi, (hits, rt) in enumerate(zip(res.hits, res.routes, strict=True)):
        assert rt == route([h.labels["domain"] for h in voters[qi]], "domain")  # the vote of the 64-d neighbours
        assert hits and all(h.labels["domain"] in rt.classes for h in hits)
    wrong = np.mean([rt.label != lab[0] for rt, lab in zip(res.routes, labels, strict=True)])
    exact = flat.search(Q, K, "fine").rows
    assert wrong < 0.15 and _recall(res.rows, exact) > 0.85, (wrong, _recall(res.rows, exact))
    # within the class the search is exact: it equals exact search with the other classes' items removed
    qi = 0
    rows = [h.row for h in res[qi]]
    allowed = [r for r in flat.search(Q[qi], len(flat), "fine").rows[0] if flat.labels[r][0] in res.routes[qi].classes]
    assert rows == allowed[:K]
    two = flat.search(Q, K, mode="routed", candidates=30, route_classes=2)
    assert any(len(rt.classes) == 2 for rt in two.routes) and _recall(two.rows, exact) >= _recall(res.rows, exact)


def test_hnsw_modes(run, corpus, queries, flat):
    hnsw = ZoomIndex.build(
        run, corpus["texts"], labels=corpus["labels"], vectors=corpus["vectors"], kind="hnsw", m=8, ef_construction=40
    )
    Q = queries["vectors"]
    exact = flat.search(Q, K, "fine").rows
    assert _recall(hnsw.search(Q, K, mode="funnel", candidates=200).rows, exact) > 0.85
    res = hnsw.search(Q, K, mode="routed", ef_search=128)  # the full-length HNSW, filtered to the class
    assert all(h.labels["domain"] in rt.classes for hs, rt in zip(res.hits, res.routes, strict=True) for h in hs)
    assert _recall(res.rows, exact) > 0.8


def test_bad_requests_are_one_line_before_any_work(flat, qdrant, run):
    unlabelled = ZoomIndex.build(run, ["a", "b", "c"], vectors=np.ones((3, 256), np.float32))
    for ix in (flat, qdrant):
        for kwargs, msg in [
            ({"mode": "nearest"}, "unknown search mode 'nearest'; use zoom, funnel, routed"),
            ({"mode": "funnel", "candidates": 5}, "candidates (5) must be an integer >= k (10)"),
            ({"mode": "routed", "candidates": 3}, "raise --candidates or lower -k"),
            ({"candidates": 50}, "candidates applies to the funnel and routed modes"),
            ({"mode": "funnel", "zoom": "coarse"}, "re-ranks its 64-d first pass at a longer prefix, not at 64"),
            ({"mode": "routed", "route_classes": 3}, "route_classes must be 1 or 2"),
        ]:
            with pytest.raises(ZoomIndexError) as e:
                # text queries: a request refused before work never loads the encoder
                ix.search("what is my balance", **{"k": K, **kwargs})
            assert msg in _one_line(e), (kwargs, str(e.value))
        # the shared search template: an empty or blank text is refused on either backend, in every mode
        for q, mode, ef in [
            ("", "zoom", None),
            ("  ", "funnel", None),
            (["ok", "\t"], "routed", None),
            ("", "zoom", 0),
        ]:
            with pytest.raises(ZoomIndexError) as e:
                ix.search(q, k=K, mode=mode, ef_search=ef)
            msg = "ef_search must be an integer >= 1" if ef is not None else "is empty; give the text to search for"
            assert msg in _one_line(e), (q, mode, str(e.value))
    with pytest.raises(ZoomIndexError) as e:
        unlabelled.search(np.ones(256), 2, mode="routed", candidates=3)
    assert "routed search needs the coarse label of every item" in _one_line(e)


# ------------------------------------------------------------------ Qdrant
def test_qdrant_and_faiss_return_identical_ids(flat, qdrant, queries):
    """Exact search on both backends: the same ids in the same order (zoom at 64 and 256, and the
    funnel and routed modes over a few queries: the embedded Qdrant is a slow numpy scan)."""
    Q = queries["vectors"][:100]
    for zoom in (64, 256):
        f, q = flat.search(Q, K, zoom), qdrant.search(Q, K, zoom)
        assert f.ids == q.ids, zoom
        np.testing.assert_allclose(f.scores, q.scores, atol=1e-5)
    for kwargs in ({"mode": "funnel", "candidates": 100}, {"mode": "routed"}, {"mode": "routed", "route_classes": 2}):
        f, q = flat.search(Q[:12], K, **kwargs), qdrant.search(Q[:12], K, **kwargs)
        assert f.ids == q.ids and f.routes == q.routes, kwargs
    hit = qdrant.search(Q[0], 1)[0][0]
    assert hit.labels == dict(zip(("domain", "intent"), flat.labels[hit.row], strict=True)) and hit.id == hit.row


def test_qdrant_index_dir_round_trip_and_cli_json(qdrant, run, tmp_path, capsys):
    from fractal_embeddings.cli import main

    path = qdrant.save(tmp_path / "qix")
    meta = json.loads((path / "index.json").read_text())
    assert meta["backend"] == "qdrant" and meta["collection"]["name"] == "clinc" and "api_key" not in json.dumps(meta)
    assert meta["index"]["vectors"] == {"64": "d64", "128": "d128", "192": "d192", "256": "d256"}
    v = np.asarray(qdrant.vectors[:3])
    qdrant.close()  # the embedded folder takes one client at a time: the CLI opens its own
    try:
        assert main(["search", str(path), "what is my checking balance", "--mode", "routed", "-k", "3", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["mode"] == "routed" and res["zoom"] == 256 and res["k"] == 3 and res["candidates"] == 30
        assert res["predicted"]["label"] == "banking" and res["predicted"]["level"] == "domain"
        assert [set(h) for h in res["hits"]] == [{"rank", "id", "score", "text", "labels", "payload"}] * 3
        assert all(h["labels"]["domain"] == "banking" for h in res["hits"])
        for args, msg in [
            (["--mode", "sideways"], "unknown search mode 'sideways'"),
            (["--mode", "funnel", "--candidates", "2", "-k", "5"], "candidates (2) must be an integer >= k (5)"),
        ]:
            assert main(["search", str(path), "hi", *args]) == 2
            e = capsys.readouterr().err.strip()
            assert e.startswith("error: ") and msg in e and "\n" not in e, e
        back = load_index(path, run=run)
        assert isinstance(back, QdrantIndex) and len(back) == len(qdrant)
        np.testing.assert_allclose(back.vectors[:3], v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-6)
        assert back.search(v, 5, "coarse").ids == qdrant.search(v, 5, "coarse").ids
        back.close()
    finally:
        qdrant.client  # noqa: B018 - reopen for the module's other tests


def test_qdrant_rebuild_is_idempotent(run, corpus, qdrant_dir):
    target = QdrantTarget("rebuild", path=str(qdrant_dir / "data"))
    args = {"labels": corpus["labels"][:300], "vectors": corpus["vectors"][:300], "target": target}
    ix = QdrantIndex.build(run, corpus["texts"][:300], **args)
    first = ix.search(corpus["vectors"][:20], K).ids
    ix.close()
    again = QdrantIndex.build(run, corpus["texts"][:300], **args)  # the same corpus again: the same points
    c, name = again.client, target.collection
    assert c.count(name, exact=True).count == 300 and again.search(corpus["vectors"][:20], K).ids == first
    ids = sorted(str(p.id) for p in c.scroll(name, limit=1000)[0])
    assert ids == sorted(point_id(i) for i in range(300))
    again.close()
    smaller = QdrantIndex.build(
        run, corpus["texts"][:200], labels=corpus["labels"][:200], vectors=corpus["vectors"][:200], target=target
    )  # a smaller corpus: the points of the 100 items no longer in it are deleted
    assert smaller.client.count(name, exact=True).count == 200 == len(smaller)
    assert max(h.row for hs in smaller.search(corpus["vectors"][:20], K) for h in hs) < 200
    smaller.close()


def test_qdrant_refuses_a_collection_of_another_run(run, trec_run, qdrant, corpus, qdrant_dir, tmp_path):
    target = QdrantTarget("clinc", path=str(qdrant_dir / "data"))
    with pytest.raises(ZoomIndexError) as e:  # a routed search with a run from another dataset's collection
        QdrantIndex.open(trec_run, target)
    msg = _one_line(e)
    assert "was built from run clinc150-fractal-" in msg and "not from run trec-fractal-" in msg
    assert "(dataset clinc150)" in msg and "(dataset trec)" in msg
    with pytest.raises(ZoomIndexError) as e:  # building into it: refused before anything is encoded
        QdrantIndex.build(trec_run, ["what is a cat"], target=target)
    assert "pick another collection name (--collection) or pass --overwrite" in _one_line(e)
    path = qdrant.save(tmp_path / "qix")
    qdrant.close()
    try:
        with pytest.raises(ZoomIndexError) as e:
            load_index(path, run=trec_run)
        assert "built with run clinc150-fractal-" in _one_line(e) and "not run trec-fractal-" in str(e.value)
    finally:
        qdrant.client  # noqa: B018 - reopen for the module's other tests
    # another index kind on the same collection is refused too
    with pytest.raises(ZoomIndexError) as e:
        QdrantIndex.build(run, corpus["texts"][:5], vectors=corpus["vectors"][:5], target=target, kind="hnsw")
    assert "was built with kind flat" in _one_line(e)


def test_qdrant_target_errors_are_one_line(run, tmp_path, capsys):
    from fractal_embeddings.cli import main

    (tmp_path / "file").write_text("x")
    for kwargs, msg in [
        ({}, "give a Qdrant folder (--qdrant-path DIR, embedded) or a server (--qdrant-url URL)"),
        ({"path": "a", "url": "http://localhost:6333"}, "exactly one of them"),
        ({"url": "localhost:6333"}, "must start with http:// or https://"),
        # each gave a urllib3 LocationParseError traceback from qdrant-client
        ({"url": "http://h:99999"}, "--qdrant-url 'http://h:99999' is not a valid URL (Port out of range"),
        ({"url": "http://h:0"}, "has port 0, outside 1..65535"),
        ({"url": "http://[::1"}, "is not a valid URL"),
        ({"url": "http://a b"}, "holds white space"),
        ({"url": "http://q:6333", "timeout": 0}, "timeout must be an integer >= 1"),
        ({"path": str(tmp_path / "file" / "q")}, "a file is in the way"),
        ({"path": "q", "api_key": "k"}, "--api-key applies to a server"),
    ]:
        with pytest.raises(ZoomIndexError) as e:
            QdrantTarget("c", **kwargs)
        assert msg in _one_line(e), kwargs
    with pytest.raises(ZoomIndexError) as e:
        QdrantTarget("bad/name", path="q")
    assert "collection name 'bad/name' is not valid" in _one_line(e)
    unreachable = QdrantTarget("c", url="http://127.0.0.1:9", timeout=5)
    with pytest.raises(ZoomIndexError) as e:
        QdrantIndex.open(run, unreachable)
    assert "cannot reach the server" in _one_line(e) and "127.0.0.1:9" in str(e.value)
    # the CLI: refused before the corpus is read or encoded (a dataset name that does not exist is never reached)
    run_dir = run.save(tmp_path / "run")
    for args, msg in [
        (["--backend", "qdrant", "--qdrant-url", "http://127.0.0.1:9"], "cannot reach the server"),
        (["--backend", "qdrant", "--qdrant-url", "http://h:99999"], "--qdrant-url 'http://h:99999' is not a valid URL"),
        (["--backend", "qdrant", "--qdrant-url", "http://[::1"], "--qdrant-url 'http://[::1' is not a valid URL"),
        (["--qdrant-path", str(tmp_path / "q")], "--qdrant-path applies to --backend qdrant"),
        (["--backend", "pgvector"], "unknown --backend 'pgvector'"),
    ]:
        assert main(["index", "build", str(run_dir), "no-such-dataset", "--out", str(tmp_path / "ix"), *args]) == 2
        e = capsys.readouterr().err.strip()
        assert e.startswith("error: ") and msg in e and "\n" not in e, e


def test_explorer_api_takes_the_modes(qdrant, flat):
    from fractal_embeddings.explore import BadRequest, Explorer

    for ix in (flat, qdrant):
        ex = Explorer(ix)
        res = ex.search("what is my checking balance", "fine", "5", "routed", "40")
        assert res["mode"] == "routed" and res["candidates"] == 40 and res["route"]["label"] == "banking"
        assert all(h["labels"]["domain"] == "banking" for h in res["hits"])
        assert ex.search("what is my checking balance", "fine", "5", "funnel")["candidates"] == 50
        for mode, cand, msg in [("x", None, "mode must be one of"), ("funnel", "3", "candidates (3) must be")]:
            with pytest.raises(BadRequest, match=re.escape(msg)):
                ex.search("hi", "fine", "5", mode, cand)
        assert ex.run_info()["index"]["backend"] == ix.backend


@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="set QDRANT_URL to test against a Qdrant server")
def test_qdrant_server(run, corpus, queries, flat):
    """The same build and searches on a real server (collection deleted afterwards)."""
    name = f"fractal-test-{uuid.uuid4().hex[:8]}"
    target = QdrantTarget(name, url=os.environ["QDRANT_URL"], api_key=os.environ.get("QDRANT_API_KEY"))
    ix = QdrantIndex.build(run, corpus["texts"], labels=corpus["labels"], vectors=corpus["vectors"], target=target)
    try:
        Q = queries["vectors"][:100]
        for zoom in (64, 256):
            assert ix.search(Q, K, zoom).ids == flat.search(Q, K, zoom).ids
        for kwargs in ({"mode": "funnel", "candidates": 100}, {"mode": "routed"}):
            assert ix.search(Q, K, **kwargs).ids == flat.search(Q, K, **kwargs).ids
    finally:
        ix.client.delete_collection(name)
        ix.close()


# ------------------------------------------------------------------ the experiment and its report section
def test_passages_are_cut_by_words():
    from fractal_embeddings.experiments.search import split_words

    text = " ".join(f"w{i}" for i in range(65))
    assert [len(p.split()) for p in split_words(text, 30, 8)] == [30, 35]  # a 5-word tail joins the last passage
    assert [len(p.split()) for p in split_words(text, 30, 5)] == [30, 30, 5]
    assert split_words("one two", 30, 8) == ["one two"]


def test_search_experiment_measures_and_reports(run, clinc_3k, corpus, queries, zoom_encoder, tmp_path):
    """The experiment's measurement on the CLINC150 subset (both index kinds, every mode, the embedded
    Qdrant) and the report section generated from its record and the run's record."""
    from fractal_embeddings.experiments import search as S
    from fractal_embeddings.report import write_report
    from fractal_embeddings.runs import HeadRun as Run
    from fractal_embeddings.store import RunStore

    n = 1000  # items: a quick build of both index kinds and the embedded Qdrant
    c = S.SearchCorpus(
        "clinc150",
        "clinc150",
        "the CLINC150 subset of the tests",
        corpus["texts"][:n],
        embed_split(zoom_encoder, clinc_3k.split("train"))[:n],
        corpus["labels"][:n],
        ("domain", "intent"),
        embed_split(zoom_encoder, clinc_3k.split("test"))[:200],
        queries["labels"][:200],
    )
    cfg = {**S.QUICK, "funnel": (20, 200), "routed": (30,), "single": 5, "batches": 1, "qdrant_queries": 8}
    rows = S.measure_run(run, c, cfg, log=lambda _m: None)
    assert {(r["backend"], r["kind"], r["mode"]) for r in rows} == {
        ("faiss", "flat", "zoom"),
        ("faiss", "flat", "funnel"),
        ("faiss", "flat", "routed"),
        ("faiss", "hnsw", "zoom"),
        ("faiss", "hnsw", "funnel"),
        ("faiss", "hnsw", "routed"),
        ("qdrant-embedded", "flat", "zoom"),
        ("qdrant-embedded", "flat", "funnel"),
        ("qdrant-embedded", "flat", "routed"),
    }
    exact = next(r for r in rows if r["kind"] == "flat" and r["mode"] == "zoom" and r["zoom"] == 256)
    assert exact["recall@10"] == 1.0 and exact["b1_p50_us"] > 0
    routed = [r for r in rows if r["mode"] == "routed"]
    assert routed and all(0 <= r["route_miss"] <= r["route_error"] <= 1 for r in routed)  # top-2 only lowers misses
    assert all(r["same_ids_as_faiss"] == 1.0 for r in rows if r["backend"] == "qdrant-embedded")
    funnel = {r["candidates"]: r["recall@10"] for r in rows if r["mode"] == "funnel" and r["kind"] == "flat"}
    assert funnel[20] < funnel[200]

    results = tmp_path / "results"
    store = RunStore(results / "search")
    store.put("clinc150/fractal/seed0", Run(run.record.replace(tags={"experiment": "search"}), run.head))
    record = S.search_record(rows, {"clinc150": c.summary()}, {"clinc150/fractal": run.record.run_id}, cfg, True)
    (results / "search" / "search.json").write_text(json.dumps(record))
    text = write_report(results).read_text()
    section = text[text.index("## Search modes at scale") :]
    assert "`fractal experiment search`" in section and "`fractal report results`" in section
    assert "| clinc150 | fractal | flat | funnel | 200 |" in section and "qdrant-embedded" in section
    assert (results / "figures" / "search_modes.png").is_file()
