"""The shared layout of a FAISS zoom index (each item stored once) against the per-prefix layout it
replaces as the default: the same answers, the size per item, int8 quantisation, batch-by-batch builds
and the bad options. Real data: the CLINC150 subset run of the index tests and its corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fractal_embeddings.index import ZoomIndex, ZoomIndexError, prepare_build
from fractal_embeddings.index import zoom as zoom_module

pytestmark = pytest.mark.slow
HNSW = {"m": 16, "ef_construction": 64, "ef_search": 64}
MODES = [("zoom", z) for z in (64, 128, 192, 256)] + [(m, z) for m in ("funnel", "routed") for z in (128, 192, 256)]
VECTOR_FILES = {"shared": ("full.faiss", "prefix-64.faiss", "norms.npy")}


@pytest.fixture(scope="module")
def queries(clinc_3k, zoom_encoder, clinc_3k_run):
    from fractal_embeddings.encoders import embed_split

    return clinc_3k_run.transform(embed_split(zoom_encoder, clinc_3k.split("test")))


def _build(run, corpus, enc, vectors=None, **options):
    V = corpus["vectors"] if vectors is None else vectors
    return ZoomIndex.build(run, corpus["texts"], labels=corpus["labels"], vectors=V, encoder=enc, **options)


def assert_same_answers(a, b, tie=1e-6):
    """The same rows in the same order, except that rows whose scores differ by less than ``tie`` (equal
    cosines, computed in another order of float operations) may swap."""
    np.testing.assert_allclose(a.scores, b.scores, atol=tie)
    for ra, rb, sa in zip(a.rows, b.rows, a.scores, strict=True):
        if not np.array_equal(ra, rb):
            for i in np.flatnonzero(ra != rb):  # each mismatch sits inside a run of tied scores
                tied = np.abs(sa - sa[i]) < tie
                assert set(ra[tied]) == set(rb[tied]), (ra, rb, sa)


def test_shared_layout_answers_as_the_per_prefix_layout(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries):
    """Every zoom and mode of a flat index: the default shared layout gives the per-prefix layout's rows,
    in its order (up to equal scores), and its scores to float rounding; the vectors come back as added."""
    run, corpus, Q = clinc_3k_run, clinc_3k_corpus, queries
    shared = _build(run, corpus, zoom_encoder)
    old = _build(run, corpus, zoom_encoder, layout="per-prefix")
    assert (shared.layout, shared.quantize, old.layout) == ("shared", "none", "per-prefix")
    for mode, zoom in MODES:
        assert_same_answers(old.search(Q, k=10, zoom=zoom, mode=mode), shared.search(Q, k=10, zoom=zoom, mode=mode))
    # the coarse and full zooms are the same FAISS search of the same vectors: identical to the bit
    for zoom in ("coarse", "fine"):
        a, b = old.search(Q, k=10, zoom=zoom), shared.search(Q, k=10, zoom=zoom)
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_allclose(shared.vectors, corpus["vectors"], rtol=1e-6, atol=1e-7)


def test_shared_layout_is_exact_for_heads_without_block_norms(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries):
    """The stored prefix norms make every zoom's cosine exact when blocks have any norm (another head than
    fractal's): blocks rescaled at random per row, a zero first block, against brute force."""
    rng = np.random.default_rng(0)
    V = clinc_3k_corpus["vectors"] * np.repeat(rng.uniform(0.05, 20, (len(clinc_3k_corpus["vectors"]), 4)), 64, axis=1)
    V[3, :64] = 0.0
    V = V.astype(np.float32)
    shared = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder, vectors=V)
    old = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder, vectors=V, layout="per-prefix")
    Q = queries[:200] * rng.uniform(0.5, 2, (200, 256)).astype(np.float32)
    for d in (64, 128, 192, 256):
        Vd, Qd = V[:, :d].astype(np.float64), Q[:, :d].astype(np.float64)
        sims = (Qd / np.linalg.norm(Qd, axis=1, keepdims=True)) @ (
            Vd / np.maximum(np.linalg.norm(Vd, axis=1, keepdims=True), 1e-12)
        ).T
        res = shared.search(Q, k=10, zoom=d)
        np.testing.assert_allclose(res.scores, -np.sort(-sims, axis=1)[:, :10], atol=1e-5)
        np.testing.assert_allclose(np.take_along_axis(sims, res.rows, axis=1), res.scores, atol=1e-5)
        assert_same_answers(old.search(Q, k=10, zoom=d), res)
    for mode in ("funnel", "routed"):
        assert_same_answers(old.search(Q, k=10, zoom=192, mode=mode), shared.search(Q, k=10, zoom=192, mode=mode))


def test_bytes_per_item_and_round_trip(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries, tmp_path):
    """Saved, the default index stores <= 1.3 KB of vectors per item (the per-prefix layout 3.5 KB), int8
    about a quarter of that; each loads back to the same answers and the same index.json."""
    n = len(clinc_3k_corpus["texts"])
    sizes = {}
    for layout, quantize in (("shared", "none"), ("shared", "int8"), ("per-prefix", "none")):
        ix = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder, layout=layout, quantize=quantize)
        path = ix.save(tmp_path / f"{layout}-{quantize}")
        meta = json.loads((path / "index.json").read_text())
        files = [f for f in meta["files"]]
        sizes[(layout, quantize)] = sum((path / f).stat().st_size for f in files) / n
        back = ZoomIndex.load(path, run=clinc_3k_run)
        assert (back.layout, back.quantize, back.faiss_type) == (layout, quantize, ix.faiss_type)
        for mode, zoom in MODES:
            a, b = ix.search(queries, k=10, zoom=zoom, mode=mode), back.search(queries, k=10, zoom=zoom, mode=mode)
            np.testing.assert_array_equal(a.rows, b.rows)
            np.testing.assert_array_equal(a.scores, b.scores)
        again = back.save(tmp_path / f"{layout}-{quantize}-again")
        first, second = (json.loads((p / "index.json").read_text()) for p in (path, again))
        assert first.pop("created_at") and second.pop("created_at") and first == second
    assert sizes[("shared", "none")] <= 1300 < 3500 < sizes[("per-prefix", "none")]
    assert sizes[("shared", "int8")] <= 400
    old_meta = json.loads((tmp_path / "per-prefix-none" / "index.json").read_text())
    assert old_meta["schema"] == "fractal-embeddings/zoom-index/1"  # what earlier versions wrote and read


def test_int8_keeps_recall(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries):
    exact = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder)
    for kind in ("flat", "hnsw"):
        q8 = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder, kind=kind, quantize="int8", **HNSW)
        assert q8.faiss_type == {"flat": "IndexScalarQuantizer", "hnsw": "IndexHNSWSQ"}[kind]
        for mode, zoom in MODES:
            a, b = exact.search(queries, k=10, zoom=zoom, mode=mode), q8.search(queries, k=10, zoom=zoom, mode=mode)
            recall = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.rows, b.rows, strict=True)])
            assert recall > 0.9, (kind, mode, zoom, recall)


def test_hnsw_shared_searches_the_middle_zooms_exactly(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries):
    flat = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder)
    hnsw = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder, kind="hnsw", **HNSW)
    assert sorted(hnsw.indexes) == [64, 256]  # graphs for the first block and the full vector only
    for zoom in (128, 192):
        assert_same_answers(flat.search(queries, k=10, zoom=zoom), hnsw.search(queries, k=10, zoom=zoom))


def test_a_build_in_batches_equals_one_batch(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries, monkeypatch):
    whole = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder)
    monkeypatch.setattr(zoom_module, "ADD_BATCH", 700)  # 3,000 texts in 5 batches
    parts = _build(clinc_3k_run, clinc_3k_corpus, zoom_encoder)
    texts = clinc_3k_corpus["texts"][:1500]
    by_text = ZoomIndex.build(clinc_3k_run, texts, encoder=zoom_encoder)  # encoded batch by batch
    np.testing.assert_allclose(by_text.vectors, clinc_3k_corpus["vectors"][:1500], atol=1e-5)
    for mode, zoom in MODES:
        a, b = whole.search(queries, k=10, zoom=zoom, mode=mode), parts.search(queries, k=10, zoom=zoom, mode=mode)
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_bad_layout_or_quantizer_is_one_line_naming_the_fix(clinc_3k_run, clinc_3k_corpus, zoom_encoder, tmp_path):
    cases = [
        ({"layout": "flat"}, "unknown index layout 'flat'; use shared"),
        ({"quantize": "int4"}, "unknown quantize 'int4'; use none"),
        ({"layout": "per-prefix", "quantize": "int8"}, "quantize=int8 needs layout='shared'"),
    ]
    for options, message in cases:
        with pytest.raises(ZoomIndexError, match=message) as e:
            ZoomIndex(clinc_3k_run, **options)
        assert "\n" not in str(e.value)
    with pytest.raises(ZoomIndexError, match="quantize=int8 learns .* first 50 vectors added; add at least 1000"):
        ZoomIndex.build(
            clinc_3k_run,
            clinc_3k_corpus["texts"][:50],
            vectors=clinc_3k_corpus["vectors"][:50],
            quantize="int8",
            encoder=zoom_encoder,
        )
    out = tmp_path / "ix"
    for options, message in [
        ({"layout": "one"}, "unknown --layout 'one'; use shared"),
        ({"quantize": "pq"}, "unknown --quantize 'pq'; use none"),
        ({"layout": "per-prefix", "quantize": "int8"}, "--quantize int8 needs --layout shared"),
        ({"backend": "qdrant", "layout": "per-prefix"}, "--layout per-prefix applies to --backend faiss"),
    ]:
        with pytest.raises(ZoomIndexError, match=message):
            prepare_build(clinc_3k_run, out, **options)
    assert not out.exists()


def test_qdrant_int8_is_recorded_checked_and_searchable(clinc_3k_run, clinc_3k_corpus, zoom_encoder, queries, tmp_path):
    """An embedded collection built with Qdrant's int8 scalar quantisation records it (collection metadata and
    index.json), answers like the float collection (the embedded mode searches the originals), and a build
    with another quantiser into it is refused, naming both."""
    from fractal_embeddings.index import QdrantIndex, QdrantTarget, load_index

    n = 300
    items = {"labels": clinc_3k_corpus["labels"][:n], "vectors": clinc_3k_corpus["vectors"][:n]}
    target = QdrantTarget("q8", path=str(tmp_path / "qdrant"))
    texts = clinc_3k_corpus["texts"][:n]
    with QdrantIndex.build(clinc_3k_run, texts, **items, target=target, quantize="int8", encoder=zoom_encoder) as qx:
        assert qx.quantize == "int8" and qx.stored_meta()["quantize"] == "int8"
        assert qx.info()["index"]["quantize"] == "int8"
        qx.save(tmp_path / "idx")
        exact = ZoomIndex.build(clinc_3k_run, texts, **items, encoder=zoom_encoder)
        for zoom in (64, 192, 256):
            assert_same_answers(exact.search(queries[:50], k=5, zoom=zoom), qx.search(queries[:50], k=5, zoom=zoom))
    back = load_index(tmp_path / "idx")
    assert back.quantize == "int8"
    back.close()
    with pytest.raises(ZoomIndexError, match="quantize int8 .* not kind flat .*quantize none; pick another collection"):
        QdrantIndex.build(clinc_3k_run, texts, **items, target=target, encoder=zoom_encoder).close()
    with pytest.raises(ZoomIndexError, match="unknown quantize 'int4'"):
        QdrantIndex(clinc_3k_run, target, quantize="int4")
