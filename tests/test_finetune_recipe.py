"""The fine-tuning recipe (finetune_recipe.py) on real TREC rows and the offline MiniLM: the head re-fit
trains exactly what `fractal train` trains on the same vectors, leaves the encoder alone and makes the
model steer; the callback runs the head stages inside SentenceTransformerTrainer; layer-wise learning
rates cover every encoder layer; bad settings are one-line errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import FractalError
from fractal_embeddings.finetune_config import FinetuneRecipe


@pytest.fixture(scope="module")
def trec(data_home):
    return load_dataset("trec").subset({"train": 400, "val": 150, "test": 300}, seed=0)


@pytest.fixture(scope="module")
def base_model():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize

    from fractal_embeddings.model_files import resolve_model

    model = SentenceTransformer(str(resolve_model("minilm-l6").folder), device="cpu")
    if not isinstance(model[-1], Normalize):
        model.append(Normalize())
    return model


def _with_head(base_model, ds, seed=7):
    from fractal_embeddings.st import FractalLoss

    model = copy.deepcopy(base_model)
    FractalLoss(model, [lv.n_classes for lv in ds.levels], seed=seed)
    return model


def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_refit_head_trains_what_fractal_train_trains_and_leaves_the_encoder(trec, base_model):
    from fractal_embeddings.evaluation import score
    from fractal_embeddings.finetune_recipe import head_inputs, refit_head
    from fractal_embeddings.heads import head_from_config
    from fractal_embeddings.objectives import get_objective
    from fractal_embeddings.training import TrainConfig, fit

    model = _with_head(base_model, trec)
    enc_before = _state(model[0])
    tr, va, te = (trec.split(s) for s in ("train", "val", "test"))
    untrained = model.encode(te.texts, convert_to_numpy=True)
    result = refit_head(model, tr.texts, tr.labels, va.texts, va.labels, seed=3)
    assert all(torch.equal(v, model[0].state_dict()[k]) for k, v in enc_before.items())  # encoder untouched

    # the same head, fitted by `fractal train`'s loop on the same vectors with the same seed
    objective = get_objective("fractal")
    torch.manual_seed(3)
    ref = head_from_config(model[-1].head.config())
    X, X_val = head_inputs(model, tr.texts), head_inputs(model, va.texts)
    ref_result = fit(
        ref, objective, X, tr.labels, X_val, va.labels, TrainConfig.resolve(objective.trainer_defaults, None), 3
    )
    assert result.best_epoch == ref_result.best_epoch
    got = model.encode(te.texts, convert_to_numpy=True)
    assert np.abs(got - ref.transform(head_inputs(model, te.texts))).max() < 1e-4

    names = trec.level_names
    before, after = (score(E, te.labels, 64, 4, 5, names) for E in (untrained, got))
    coarse = [s["accuracy"]["64"][names[0]] for s in (before, after)]
    assert coarse[1] > coarse[0] + 0.1, (before, after)  # the first block learned the coarse level
    assert after["steerability"]["S"] > before["steerability"]["S"], (before, after)


def test_refit_without_validation_keeps_the_last_epoch_and_checks_labels(trec, base_model):
    from fractal_embeddings.finetune_recipe import refit_head

    model = _with_head(base_model, trec)
    tr = trec.split("train")
    res = refit_head(model, tr.texts[:200], tr.labels[:200], train_options={"epochs": 2})
    assert res.best_epoch == 2 and len(res.history) == 2
    with pytest.raises(FractalError, match="rows for 10 texts"):
        refit_head(model, tr.texts[:10], tr.labels[:9])
    with pytest.raises(FractalError, match="level 1 holds class id"):
        refit_head(model, tr.texts[:2], [[0, 0], [0, 999]])
    with pytest.raises(FractalError, match="no FractalHead"):
        refit_head(copy.deepcopy(base_model), tr.texts[:2], tr.labels[:2])


def test_layer_lrs_cover_every_encoder_layer(trec, base_model):
    import re

    from fractal_embeddings.finetune_recipe import layer_lrs

    model = _with_head(base_model, trec)
    assert layer_lrs(model, 2e-5, 1e-3) == {r"^model\.3\.": 1e-3}  # no decay: the head's lr only
    mapping = layer_lrs(model, 2e-5, 1e-3, layer_decay=0.5)
    names = [f"model.{n}" for n, _ in model.named_parameters()]
    for i in range(6):  # MiniLM-L6: layer 5 (the top) at 2e-5, each one below at half the one above
        pattern = next(p for p in mapping if p.endswith(rf"layers?\.{i}\."))
        assert mapping[pattern] == pytest.approx(2e-5 * 0.5 ** (5 - i))
        hit = [n for n in names if re.search(pattern, n)]
        assert hit and all(f"layer.{i}." in n for n in hit)
    emb = [n for n in names if re.search(r"^model\.0\..*embeddings\.", n)]
    assert emb and mapping[r"^model\.0\..*embeddings\."] == pytest.approx(2e-5 * 0.5**6)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"encoder_lr": float("nan")}, "encoder_lr must be a finite number"),
        ({"layer_decay": 1.5}, r"layer_decay must be in \(0, 1\]"),
        ({"layer_decay": 0}, r"layer_decay must be in \(0, 1\]"),
        ({"warmup": "yes"}, "warmup must be true or false"),
    ],
)
def test_recipe_settings_are_checked(fields, match):
    with pytest.raises(FractalError, match=match):
        FinetuneRecipe(**fields)


def test_callback_runs_warmup_and_refit_inside_the_trainer(trec, base_model, tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from fractal_embeddings.finetune_recipe import RecipeCallback, layer_lrs
    from fractal_embeddings.st import FractalLoss

    model = copy.deepcopy(base_model)
    loss = FractalLoss(model, [lv.n_classes for lv in trec.levels], seed=1)
    tr, va = trec.split("train"), trec.split("val")
    rows = list(range(96))
    data = Dataset.from_dict({"text": [tr.texts[i] for i in rows], "label": tr.labels[rows].tolist()})
    cb = RecipeCallback(tr.texts, tr.labels, va.texts, va.labels, seed=1, warmup=True, train_options={"epochs": 3})
    enc_before = _state(model[0])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=32, learning_rate=2e-5,
        learning_rate_mapping=layer_lrs(model, 2e-5, 1e-3), report_to="none", save_strategy="no", use_cpu=True,
        disable_tqdm=True,
    )  # fmt: skip
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss, callbacks=[cb]).train()
    assert set(cb.results) == {"warmup", "refit"} and all(len(r.history) == 3 for r in cb.results.values())
    assert any(not torch.equal(v, model[0].state_dict()[k]) for k, v in enc_before.items())  # the encoder trained


def test_the_recipe_rule_picks_as_written():
    """docs/finetune-recipe.md's rule on made-up scores: qualification, the tie-break, the fallback."""
    from fractal_embeddings.report.finetune import choose_recipe

    frozen = {"a": (0.30, 0.90), "b": (0.20, 0.80)}
    scores = {
        "two-stage": {"a": (0.25, 0.95), "b": (0.20, 0.85)},  # S 0.05 below on a: out
        "warm-up": {"a": (0.29, 0.92), "b": (0.19, 0.83)},  # in, mean fine gain +0.025
        "warm-up, layer decay": {"a": (0.31, 0.928), "b": (0.21, 0.83)},  # in, +0.029: within 0.005 -> cheaper wins
    }
    c = choose_recipe(scores, frozen)
    assert (c.winner, sorted(c.qualified)) == ("warm-up", ["warm-up", "warm-up, layer decay"])
    scores["warm-up, layer decay"]["b"] = (0.21, 0.86)  # now +0.045: clearly best
    assert choose_recipe(scores, frozen).winner == "warm-up, layer decay"
    scores = {k: {d: (s - 0.1, f) for d, (s, f) in v.items()} for k, v in scores.items()}  # nobody keeps S
    c = choose_recipe(scores, frozen)
    assert c.qualified == [] and c.winner == "warm-up, layer decay" and "none qualifies" in c.why
    assert choose_recipe({"warm-up": {"a": (0.3, 0.9)}}, frozen).winner is None  # a dataset missing
