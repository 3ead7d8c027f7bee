"""Arguments of the model layer checked before any work: a run's embed / transform, the
sentence-transformers loss and evaluator, objective options, the cache folder. Each case raised a
torch / numpy exception, or gave a silent wrong result, before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import FractalError


@pytest.fixture(scope="module")
def tiny(data_home):
    return load_dataset("clinc150").subset({"train": 300, "val": 100, "test": 100}, seed=0)


@pytest.fixture(scope="module")
def saved_run(tiny, encoder, tmp_path_factory):
    from fractal_embeddings.runs import train

    out = tmp_path_factory.mktemp("run") / "r"
    train(tiny, "fractal", seed=0, encoder=encoder, train_options={"epochs": 1}, eval_rows=None).save(out)
    return out


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    from fractal_embeddings.model_files import resolve_model

    return SentenceTransformer(str(resolve_model("minilm-l6").folder), device="cpu")


def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_embed_refuses_one_string(saved_run):
    """``embed("hello")`` embedded the 5 characters as 5 texts."""
    from fractal_embeddings.runs import load_run

    run = load_run(saved_run)
    with pytest.raises(FractalError) as e:
        run.embed("hello")
    _one_line(e, "list of strings", "['hello']")
    with pytest.raises(FractalError):
        run.embed(["ok", 3])


def test_transform_checks_the_array(saved_run):
    """A wrong width or a 1-D vector raised a torch shape error."""
    from fractal_embeddings.runs import load_run

    run = load_run(saved_run)
    with pytest.raises(FractalError) as e:
        run.transform(np.zeros((2, 100), dtype=np.float32))
    _one_line(e, "100 columns", "384")
    with pytest.raises(FractalError) as e:
        run.transform(np.zeros(384, dtype=np.float32))
    _one_line(e, "2-D")
    with pytest.raises(FractalError):
        run.transform(np.full((1, 384), np.nan))
    assert run.transform(np.zeros((2, 384), dtype=np.float64)).shape == (2, 256)


def test_evaluator_refuses_one_string_and_bad_labels():
    from fractal_embeddings.st import SteerabilityEvaluator

    texts = [f"text {i}" for i in range(7)]
    good = [[i % 2, i] for i in range(7)]
    with pytest.raises(FractalError) as e:  # scored 7 one-letter texts
        SteerabilityEvaluator("abcdefg", good)
    _one_line(e, "list of strings")
    cases = [
        ([[0, -1]] + good[1:], "negative"),  # a torch / numpy index error later, or a wrong score
        ([[0.5, 0]] + good[1:], "whole-number"),  # truncated to 0 silently
        ([[0, 0], [1, 0]] + good[2:], "one parent"),  # fine class 0 under coarse 0 and 1: accepted silently
    ]
    for labels, word in cases:
        with pytest.raises(FractalError) as e:
            SteerabilityEvaluator(texts, labels)
        _one_line(e, word)
    with pytest.raises(FractalError):
        SteerabilityEvaluator(texts, good, k=0)
    assert SteerabilityEvaluator(texts, np.asarray(good, dtype=float)).labels.dtype == np.int64


def test_fractal_loss_checks_labels_and_options(st_model):
    import copy

    from fractal_embeddings.st import FractalLoss

    model = copy.deepcopy(st_model)
    loss = FractalLoss(model, [2, 4], seed=0)
    feats = [model.tokenize(["a", "b", "c", "d"])]
    good = torch.tensor([[0, 0], [0, 1], [1, 2], [1, 3]])
    assert set(loss(feats, good)) <= {"L0", "L1", "loss"}
    cases = [
        (torch.tensor([[0, 0], [0, 1], [1, 2], [1, 9]]), "4 classes"),  # IndexError / CUDA assert before
        (torch.tensor([[0, 0], [0, 1], [1, 2], [-1, 3]]), "negative"),
        (good.float() + 0.5, "whole-number"),  # silently truncated before
        (torch.tensor([[0, 0], [1, 0], [1, 2], [1, 3]]), "one parent"),  # accepted silently before
    ]
    for labels, word in cases:
        with pytest.raises(FractalError) as e:
            loss(feats, labels)
        _one_line(e, word)
    for options in ({"temperature": "x"}, {"temperature": float("nan")}, {"prefix_weight": None}):
        with pytest.raises(FractalError) as e:  # accepted, then failed (or NaN) in the first step
            FractalLoss(copy.deepcopy(st_model), [2, 4], **options)
        _one_line(e, "option", next(iter(options)))
    with pytest.raises(FractalError):
        FractalLoss(copy.deepcopy(st_model), [2, 4], seed=-1)
    with pytest.raises(FractalError):
        FractalLoss(copy.deepcopy(st_model), [2, 0])


def test_train_checks_objective_options_before_work(tiny, encoder):
    from fractal_embeddings.runs import train

    with pytest.raises(FractalError) as e:
        train(tiny, "fractal", encoder="no-such-encoder", objective_options={"temperature": float("inf")})
    _one_line(e, "temperature", "finite")


def test_cache_env_pointing_at_a_file(tmp_path, monkeypatch):
    """``FRACTAL_CACHE`` naming a file gave a NotADirectoryError traceback at the first write."""
    from fractal_embeddings.encoders import Encoder

    f = tmp_path / "cache.txt"
    f.write_text("not a folder")
    monkeypatch.setenv("FRACTAL_CACHE", str(f))
    with pytest.raises(FractalError) as e:
        Encoder().embed(["hello"])
    _one_line(e, "FRACTAL_CACHE", "a file", "folder")
    monkeypatch.setenv("FRACTAL_CACHE", str(f / "sub"))
    with pytest.raises(FractalError) as e:
        Encoder().embed(["hello"])
    _one_line(e, "FRACTAL_CACHE", "a file")
