"""Fine-tuning the encoder's last layers (backbone.py) on real CLINC150 text and the offline MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fractal_embeddings import load_dataset
from fractal_embeddings.backbone import EncoderTop, token_states
from fractal_embeddings.encoders import Encoder
from fractal_embeddings.errors import FractalError
from fractal_embeddings.runs import train


@pytest.fixture(scope="module")
def small(data_home):
    return load_dataset("clinc150").subset({"train": 320, "val": 160, "test": 200}, seed=0)


def test_untrained_top_reproduces_the_encoder(small, encoder):
    texts = small.split("test").texts[:64]
    states = token_states(encoder, texts, 2)
    assert states.shape[0] == 64 and states.shape[2] == 384
    again = token_states(encoder, texts, 2)  # a cache hit: the same array, read back
    assert isinstance(again, np.memmap) or again.base is not None
    np.testing.assert_array_equal(np.asarray(again), states)
    with torch.no_grad():
        v = EncoderTop(encoder, 2).eval()(torch.from_numpy(np.array(states))).numpy()
    assert np.abs(v - encoder.embed(texts)).max() < 1e-5


@pytest.fixture(scope="module")
def finetuned(small, encoder):
    """One short real run that fine-tunes the encoder's last layer with an mrl head."""
    return train(small, "mrl", seed=0, encoder=encoder, finetune_layers=1, train_options={"epochs": 1})


def test_finetuned_run_trains_the_encoder_layers(small, encoder, finetuned):
    run = finetuned
    rec = run.record.to_dict()
    assert rec["config"]["head"]["finetuned_encoder_layers"] == 1
    assert rec["config"]["train"]["encoder_lr"] == 2e-5
    assert rec["training"]["n_params"] > 1_000_000  # a transformer layer, not just the head
    base = EncoderTop(encoder, 1)
    moved = [not torch.equal(p, q) for p, q in zip(run.head.top.parameters(), base.parameters(), strict=True)]
    assert any(moved)
    # scoring the untrained encoder is unchanged by fine-tuning
    head_only = train(small, "mrl", seed=0, encoder=encoder, train_options={"epochs": 1})
    assert rec["baseline"] == head_only.record.to_dict()["baseline"]
    assert "encoder_lr" not in head_only.record.to_dict()["config"]["train"]


def test_finetuned_run_saves_and_refuses_reload_with_one_line(finetuned, tmp_path):
    from fractal_embeddings.records import RunRecordError
    from fractal_embeddings.runs import load_run

    finetuned.save(tmp_path / "ft")
    with pytest.raises(RunRecordError, match="fine-tuned the encoder's last 1 layers"):
        load_run(tmp_path / "ft")


def test_finetune_errors(small, encoder, cache_dir):
    with pytest.raises(FractalError, match="encoder_lr applies only"):
        train(small, "mrl", encoder=encoder, train_options={"encoder_lr": 1e-5})
    with pytest.raises(FractalError, match="adds prompts"):
        train(small, "mrl", encoder=Encoder(prompts={"query": "query: "}, cache_dir=cache_dir), finetune_layers=1)
    with pytest.raises(FractalError, match="trains no head"):
        train(small, "flat", encoder=encoder, finetune_layers=1)
    with pytest.raises(FractalError, match="between 1 and 6"):
        train(small, "mrl", encoder=encoder, finetune_layers=7, train_options={"epochs": 1})
    with pytest.raises(FractalError, match="ONNX only"):
        train(small, "mrl", encoder=Encoder("minilm-l6-int8", cache_dir=cache_dir), finetune_layers=1)
