"""The offline default encoder (both backends) and the embedding cache's failure modes: a corrupt,
malformed (property tests over the metadata) or damaged entry is reported, deleted and rebuilt; an
interrupted write leaves no entry."""

import contextlib
import io
import json
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _helpers import ARRAY, IDENT
from fractal_embeddings import load_dataset
from fractal_embeddings.cache import EmbeddingCache
from fractal_embeddings.encoders import Encoder
from fractal_embeddings.errors import EncoderError
from fractal_embeddings.model_files import default_prompts


@pytest.fixture(scope="module")
def texts(data_home):
    return list(load_dataset("trec").split("test").texts[:96])


def test_onnx_backend_matches_sentence_transformers(encoder, texts, cache_dir):
    assert encoder.backend == "onnx"
    a = encoder.encode(texts)
    b = Encoder(backend="sentence-transformers", cache_dir=cache_dir).encode(texts)
    assert a.shape == (96, 384) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-5
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # order-independent: length sorting must not leak into the output order
    assert np.abs(encoder.encode(texts[::-1])[::-1] - a).max() < 1e-5


def test_embedding_separates_classes(encoder, data_home):
    """A sanity check on real data: same-intent pairs are closer than different-domain pairs."""
    ds = load_dataset("clinc150")
    sp = ds.split("test")
    idx = np.arange(0, 600)
    X = encoder.embed([sp.texts[i] for i in idx])
    lab = sp.labels[idx]
    sim = X @ X.T
    same = lab[:, None, 1] == lab[None, :, 1]
    other_domain = lab[:, None, 0] != lab[None, :, 0]
    np.fill_diagonal(same, False)
    assert sim[same].mean() > sim[other_domain].mean() + 0.2


def test_cache_hit_is_identical_and_memory_mapped(encoder, texts):
    first = np.array(encoder.embed(texts))
    again = encoder.embed(texts)
    assert isinstance(again, np.memmap)
    assert np.array_equal(first, np.asarray(again))


def _entry(encoder, texts):
    from fractal_embeddings.cache import texts_sha256

    ident = encoder.identity().as_dict()
    key = encoder.cache.key(ident, texts_sha256(texts))
    return key, encoder.cache.paths(key)


@pytest.fixture
def own_encoder(tmp_path):
    """The default encoder on a cache of its own: these tests corrupt entries, which the run's shared
    cache (read by other tests, maybe at the same moment in another worker) must not see."""
    return Encoder(cache_dir=tmp_path / "cache")


def test_corrupt_entry_is_reported_and_rebuilt(own_encoder, texts):
    encoder = own_encoder
    good = np.array(encoder.embed(texts))
    key, (npy, meta) = _entry(encoder, texts)
    raw = bytearray(npy.read_bytes())
    raw[-5] ^= 0xFF
    npy.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="do not match their sha256"):
        rebuilt = np.asarray(encoder.embed(texts))
    assert np.abs(rebuilt - good).max() < 1e-6
    meta.write_text("{not json")
    with pytest.warns(UserWarning, match="not valid JSON"):
        encoder.embed(texts)
    m = json.loads(meta.read_text())
    m["n_rows"] = 3
    meta.write_text(json.dumps(m))
    with pytest.warns(UserWarning, match="does not match the request"):
        encoder.embed(texts)


def test_interrupted_write_leaves_no_entry(own_encoder, texts, monkeypatch):
    import fractal_embeddings.cache as cache_mod

    encoder = own_encoder
    sub = texts[:10]
    key, (npy, meta) = _entry(encoder, sub)
    real = cache_mod.atomic_write_bytes

    def crash_on_metadata(path, data):
        if path.suffix == ".json":
            raise KeyboardInterrupt  # killed between the array and its commit marker
        real(path, data)

    monkeypatch.setattr(cache_mod, "atomic_write_bytes", crash_on_metadata)
    with pytest.raises(KeyboardInterrupt):
        encoder.embed(sub)
    monkeypatch.setattr(cache_mod, "atomic_write_bytes", real)
    assert npy.exists() and not meta.exists()
    assert not [p for p in npy.parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.warns(UserWarning, match="incomplete write"):
        out = encoder.embed(sub)
    assert out.shape == (10, 384) and meta.exists()


def test_atomic_write_cleans_up_on_crash(tmp_path, monkeypatch):
    import os

    from fractal_embeddings.atomic import atomic_write_bytes

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "x.npy", b"123")
    assert list(tmp_path.iterdir()) == []


def test_cache_key_depends_on_identity_and_text(encoder):
    c = EmbeddingCache("/nonexistent")
    ident = encoder.identity().as_dict()
    assert c.key(ident, "a") != c.key(ident, "b")
    assert c.key(ident, "a") != c.key({**ident, "max_seq_length": 128}, "a")
    assert c.key(ident, "a") != c.key(encoder.identity("passage").as_dict() | {"prompt": "x"}, "a")


def test_prompts_for_known_families():
    assert default_prompts("intfloat/e5-small-v2", None) == {"query": "query: ", "passage": "passage: "}
    assert default_prompts("intfloat/multilingual-e5-small", None)["passage"] == "passage: "
    assert default_prompts("BAAI/bge-small-en-v1.5", None) == {"query": "", "passage": ""}


def test_packaged_int8_model_agrees_with_fp32(encoder, texts, cache_dir):
    int8 = Encoder("minilm-l6-int8", cache_dir=cache_dir)
    cos = (int8.encode(texts) * encoder.encode(texts)).sum(1)
    assert cos.min() > 0.98


def test_bad_encoder_inputs(encoder):
    with pytest.raises(EncoderError, match="unknown encoder"):
        Encoder("not-a-model")
    with pytest.raises(EncoderError, match="Hugging Face hub"):
        Encoder("no-such-org/no-such-model-xyz")
    with pytest.raises(EncoderError, match="list of texts"):
        encoder.encode("a single string")
    with pytest.raises(EncoderError, match="backend"):
        Encoder(backend="tensorrt")


# ================================================================== malformed cache entries
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@contextlib.contextmanager
def _fresh_cache():
    with tempfile.TemporaryDirectory() as d:
        cache = EmbeddingCache(d)
        key = cache.key(IDENT, "texts-hash")
        cache.put(key, ARRAY, IDENT, len(ARRAY))
        yield cache, key


def _rejected_then_rebuilt(cache: EmbeddingCache, key: str) -> None:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert cache.get(key, IDENT, len(ARRAY)) is None
    assert any("unusable" in str(x.message) and "rebuilding" in str(x.message) for x in w), [str(x.message) for x in w]
    assert not any(p.exists() for p in cache.paths(key))  # deleted
    cache.put(key, ARRAY, IDENT, len(ARRAY))  # rebuilt by the caller
    np.testing.assert_array_equal(cache.get(key, IDENT, len(ARRAY)), ARRAY)


@FAST
@given(meta=JSON_VALUES)
def test_cache_entry_with_any_malformed_metadata_is_reported_deleted_and_rebuilt(meta):
    with _fresh_cache() as (cache, key):
        cache.paths(key)[1].write_text(json.dumps(meta))
        _rejected_then_rebuilt(cache, key)


@FAST
@given(data=st.data())
def test_cache_entry_with_one_wrong_metadata_field_is_rebuilt(data):
    with _fresh_cache() as (cache, key):
        meta_path = cache.paths(key)[1]
        meta = json.loads(meta_path.read_text())
        field = data.draw(st.sampled_from(["format", "encoder", "n_rows", "dim", "dtype", "sha256"]))
        value = data.draw(JSON_VALUES)
        assume(value != meta[field] and not (field == "dtype" and value == "float32"))
        meta[field] = value
        meta_path.write_text(json.dumps(meta))
        _rejected_then_rebuilt(cache, key)


def test_cache_entry_with_a_damaged_array_is_rebuilt(tmp_path):
    import hashlib

    cache = EmbeddingCache(tmp_path)
    key = cache.key(IDENT, "texts-hash")

    def entry(npy_bytes: bytes, **meta_changes):
        cache.put(key, ARRAY, IDENT, len(ARRAY))
        npy, meta_path = cache.paths(key)
        npy.write_bytes(npy_bytes)
        meta = json.loads(meta_path.read_text())
        meta.update({"sha256": hashlib.sha256(npy_bytes).hexdigest(), **meta_changes})  # the bytes "match"
        meta_path.write_text(json.dumps(meta))

    good = cache.paths(key)[0]
    cache.put(key, ARRAY, IDENT, len(ARRAY))
    full = good.read_bytes()
    buf = io.BytesIO()
    np.save(buf, ARRAY.astype(np.float64))
    wrong_dtype = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, ARRAY.reshape(3, 4))
    wrong_shape = buf.getvalue()
    for damaged in (full[: len(full) - 5], full[:70], full[:10], b"", wrong_dtype, wrong_shape, b"\x93NUMPY garbage"):
        entry(damaged)
        _rejected_then_rebuilt(cache, key)
    # an array file that is a directory, a metadata file that is a directory
    for which in (0, 1):
        cache.put(key, ARRAY, IDENT, len(ARRAY))
        p = cache.paths(key)[which]
        p.unlink()
        p.mkdir()
        _rejected_then_rebuilt(cache, key)
