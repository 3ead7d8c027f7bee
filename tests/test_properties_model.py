"""Property tests of the model layer's arguments: whatever texts, labels or arrays a caller passes,
``Run.embed``, ``Run.transform``, ``SteerabilityEvaluator`` and ``FractalLoss`` return a result or
raise a one-line :class:`FractalError`, never another exception."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import FractalError

QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.binary(max_size=4),
)
texts = st.one_of(scalars, st.lists(st.one_of(st.text(max_size=12), scalars), max_size=4), st.text(max_size=12))
label_values = st.one_of(st.integers(-3, 12), st.floats(-3, 12), st.just(float("nan")), st.none(), st.text(max_size=2))
labels = st.one_of(
    scalars,
    st.lists(st.lists(label_values, min_size=0, max_size=3), max_size=9),
    hnp.arrays(
        st.sampled_from([np.int64, np.float32, np.bool_]),
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
    ),
)


def _result_or_fractal_error(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except FractalError as e:
        assert "\n" not in str(e), str(e)
        return None


@pytest.fixture(scope="module")
def run(data_home, encoder, tmp_path_factory):
    from fractal_embeddings.runs import load_run, train

    ds = load_dataset("clinc150").subset({"train": 300, "val": 100, "test": 100}, seed=0)
    out = tmp_path_factory.mktemp("prop") / "r"
    train(ds, "fractal", seed=0, encoder=encoder, train_options={"epochs": 1}, eval_rows=None).save(out)
    return load_run(out)


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    from fractal_embeddings.model_files import resolve_model

    return SentenceTransformer(str(resolve_model("minilm-l6").folder), device="cpu")


@QUICK
@given(texts)
def test_embed_any_texts(run, encoder, value):
    out = _result_or_fractal_error(run.embed, value, encoder=encoder)
    if out is not None:
        assert out.shape == (len(value), run.dim) and np.isfinite(out).all()


@QUICK
@given(
    st.one_of(
        scalars,
        hnp.arrays(
            st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=400),
        ),
        st.lists(st.lists(st.floats(), max_size=3), max_size=3),
    )
)
def test_transform_any_array(run, value):
    out = _result_or_fractal_error(run.transform, value)
    if out is not None:
        assert out.shape == (np.shape(value)[0], run.dim)


@QUICK
@given(texts, labels, st.one_of(st.integers(-2, 8), scalars))
def test_evaluator_any_arguments(value, lab, k):
    from fractal_embeddings.st import SteerabilityEvaluator

    ev = _result_or_fractal_error(SteerabilityEvaluator, value, lab, k=k)
    if ev is not None:
        assert ev.labels.dtype == np.int64 and len(ev.labels) == len(ev.texts) > ev.k >= 1


@QUICK
@given(labels)
def test_fractal_loss_any_labels(st_model, lab):
    from fractal_embeddings.st import FractalLoss

    loss = FractalLoss(st_model, [3, 9], seed=0)
    try:
        y = torch.as_tensor(np.asarray(lab))
    except (TypeError, ValueError, RuntimeError):
        return  # not a tensor: the trainer always hands the loss one
    n = y.shape[0] if y.ndim else 1
    feats = [st_model.tokenize(["some text"] * max(n, 1))]
    with torch.no_grad():
        parts = _result_or_fractal_error(loss, feats, y)
    if parts is not None:
        assert all(torch.isfinite(v) for v in parts.values())
