"""Training, scoring and run records on real data (a stratified CLINC150 subset) and the offline encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import FractalError, TaxonomyError
from fractal_embeddings.evaluation import prefix_knn_accuracy
from fractal_embeddings.records import RECORD_KEYS, RunRecordError, load_record
from fractal_embeddings.runs import evaluate, load_run, train

QUICK = {"epochs": 2}


@pytest.fixture(scope="module")
def clinc(data_home):
    return load_dataset("clinc150").subset({"train": 3000, "val": 600, "test": 600}, seed=0)


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timing"}


def test_same_seed_gives_identical_record_other_seed_differs(clinc, encoder):
    a = train(clinc, "v5-paper", seed=7, encoder=encoder, train_options=QUICK)
    b = train(clinc, "v5-paper", seed=7, encoder=encoder, train_options=QUICK)
    assert _without_timing(a.record.to_dict()) == _without_timing(b.record.to_dict())
    for (k, va), vb in zip(a.head.state_dict().items(), b.head.state_dict().values(), strict=True):
        assert np.array_equal(va.numpy(), vb.numpy()), k
    c = train(clinc, "v5-paper", seed=8, encoder=encoder, train_options=QUICK)
    assert not np.array_equal(a.head.proj.weight.detach().numpy(), c.head.proj.weight.detach().numpy())


def test_record_has_the_contract_and_matches_a_direct_evaluation(clinc, encoder, tmp_path):
    run = train(clinc, "mrl", seed=1, encoder=encoder, train_options=QUICK)
    rec = run.record.to_dict()
    assert set(RECORD_KEYS) <= set(rec) and rec["method"] == "mrl" and rec["seed"] == 1
    assert set(rec["accuracy"]) == {"64", "128", "192", "256"}
    assert set(rec["accuracy"]["64"]) == {"domain", "intent"}
    assert {"S", "S_AUC", "S_gap", "S_mono"} <= set(rec["steerability"])
    assert rec["config"]["train"]["lr"] == 1e-4 and rec["config"]["train"]["batch_size"] == 16
    assert rec["config"]["eval"]["n_rows"] == 600 and rec["encoder"]["dim"] == 384
    assert 1 <= rec["training"]["best_epoch"] <= 2 and len(rec["training"]["history"]) == 2
    # the record's numbers are the evaluator's on the stored rows, recomputed here independently
    test = clinc.split("test")
    acc = prefix_knn_accuracy(run.transform(encoder.embed(test.texts)), test.labels)
    np.testing.assert_allclose(run.accuracy_table(), acc, atol=1e-6)
    base = prefix_knn_accuracy(np.asarray(encoder.embed(test.texts))[:, :256], test.labels)
    np.testing.assert_allclose(run.accuracy_table(baseline=True), base, atol=1e-6)

    out = run.save(tmp_path / "run")
    assert json.loads((out / "record.json").read_text()) == rec | {"weights": load_record(out).to_dict()["weights"]}
    again = load_run(out)
    X = np.asarray(encoder.embed(test.texts[:50]))
    np.testing.assert_array_equal(again.transform(X), run.transform(X))
    res = evaluate(out, encoder=encoder)
    assert res["accuracy"] == rec["accuracy"] and res["steerability"] == rec["steerability"]


def test_flat_is_the_truncated_encoder(clinc, encoder, tmp_path):
    run = train(clinc, "flat", encoder=encoder)
    assert (
        run.head is None
        and run.record.to_dict()["training"] is None
        and run.record.to_dict()["config"]["train"] is None
    )
    assert run.record.to_dict()["accuracy"] == run.record.to_dict()["baseline"]["accuracy"]
    out = run.save(tmp_path / "flat")
    assert not (out / "head.safetensors").exists() and load_run(out).head is None


def test_heal_separates_from_mrl_on_real_data(clinc, encoder):
    """The HEAL-style head's 64-d prefix is a coarse-only projector: it must be far more steerable
    than the matched MRL control (a behaviour check that a broken schedule or head fails)."""
    heal = train(clinc, "heal", seed=0, encoder=encoder, train_options={"epochs": 8})
    mrl = train(clinc, "mrl", seed=0, encoder=encoder, train_options=QUICK)
    assert heal.record.to_dict()["steerability"]["S"] > mrl.record.to_dict()["steerability"]["S"] + 0.05
    acc = heal.accuracy_table()
    assert acc[0, 0] > 0.85 and acc[-1, 1] > acc[0, 1] + 0.1  # coarse at 64 dims, fine gained by zooming in


def test_three_levels_report_pairwise_steerability(data_home, encoder):
    ds = load_dataset("clinc150-3level").subset({"train": 1500, "val": 300, "test": 300})
    run = train(ds, "v5-paper", seed=0, encoder=encoder, train_options={"epochs": 1})
    assert len(run.record.to_dict()["accuracy"]["64"]) == 3
    st = run.record.to_dict()["steerability"]
    assert {"S", "S_01", "S_12", "S_02"} <= set(st) and st["S_02"] == st["S"]


def test_bad_input_fails_with_one_line_messages(clinc, encoder, tmp_path, data_home):
    with pytest.raises(FractalError, match="unknown method 'nope'"):
        train(clinc, "nope", encoder=encoder)
    with pytest.raises(FractalError, match="not a multiple|do not fit|>= one block"):
        train(clinc, "heal", encoder=encoder, n_blocks=1)
    with pytest.raises(TaxonomyError, match="nope"):
        load_dataset("clinc150", levels=("domain", "nope"))
    with pytest.raises(TaxonomyError, match="needs >= 2 levels|hierarch"):
        train(load_dataset("banking77"), "v5-paper", encoder=encoder)
    with pytest.raises(FractalError, match="unknown training option"):
        train(clinc, "mrl", encoder=encoder, train_options={"learning_rate": 1})

    out = train(clinc, "mrl", seed=0, encoder=encoder, train_options={"epochs": 1}).save(tmp_path / "r")
    # an encoder other than the run's
    from fractal_embeddings.encoders import Encoder

    with pytest.raises(RunRecordError, match="trained on encoder .* use --model minilm-l6"):
        evaluate(out, encoder=Encoder("paraphrase-minilm-l3", cache_dir=tmp_path / "c"))
    # a dataset other than the run's
    with pytest.raises(RunRecordError, match="levels"):
        evaluate(out, dataset=load_dataset("trec"), encoder=encoder)
    # weights for another encoder dim (768-d input), written with a consistent sha256
    state = load_file(str(out / "head.safetensors"))
    state["proj.weight"] = np.zeros((256, 768), dtype=np.float32)
    import torch

    save_file(
        {k: torch.as_tensor(v) for k, v in state.items()},
        str(out / "head.safetensors"),
        metadata={"head": json.dumps(load_record(out).head.to_dict(), sort_keys=True)},
    )
    with pytest.raises(RunRecordError, match="sha256"):
        load_run(out)
    rec = load_record(out).to_dict()
    from fractal_embeddings.records import file_sha256

    rec["weights"]["sha256"] = file_sha256(out / "head.safetensors")
    (out / "record.json").write_text(json.dumps(rec))
    with pytest.raises(RunRecordError, match=r"tensor shapes .*768"):
        load_run(out)
    with pytest.raises(RunRecordError, match="no record.json"):
        load_run(tmp_path)


def test_fused_adamw_is_bit_identical_to_torch_adamw():
    """The trainer calls torch's fused AdamW kernel directly (no torch.optim import cost): same weights."""
    import torch

    from fractal_embeddings.training import FlatParams, FusedAdamW

    def run(direct: bool):
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
        flat = FlatParams(module)
        opt = FusedAdamW([flat], weight_decay=0.01) if direct else None
        ref = None if direct else torch.optim.AdamW([flat.flat], lr=1e-3, weight_decay=0.01, fused=True)
        g = torch.Generator().manual_seed(1)
        for step in range(25):
            x = torch.randn(32, 8, generator=g)
            flat.grad.zero_()
            module(x).pow(2).mean().backward()
            lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * step / 25))
            if direct:
                opt.step([lr])
            else:
                ref.param_groups[0]["lr"] = lr
                ref.step()
        return flat.flat.clone()

    assert torch.equal(run(True), run(False))
