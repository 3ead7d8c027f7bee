"""What only a CUDA GPU can check (skipped elsewhere; `bench/gpu_check.sh` runs them on a GPU machine):
the encoder on the GPU gives the CPU's vectors, a head trained on the GPU scores like the CPU's,
and fine-tuning runs there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fractal_embeddings import load_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")


@pytest.fixture(scope="module")
def clinc(data_home):
    return load_dataset("clinc150").subset({"train": 3000, "val": 600, "test": 600}, seed=0)


def test_gpu_encoder_matches_cpu(clinc, cache_dir):
    from fractal_embeddings.encoders import Encoder

    texts = list(clinc.split("test").texts[:256])
    gpu = Encoder(device="cuda", cache_dir=cache_dir)
    assert gpu.backend == "sentence-transformers" and gpu.device == "cuda"
    cpu = Encoder(device="cpu", cache_dir=cache_dir).encode(texts)
    assert np.abs(gpu.encode(texts) - cpu).max() < 1e-4


def test_gpu_training_scores_like_cpu(clinc, encoder):
    from fractal_embeddings.runs import train

    cpu = train(clinc, "fractal", seed=0, encoder=encoder, device="cpu", eval_rows=None)
    gpu = train(clinc, "fractal", seed=0, encoder=encoder, device="cuda", eval_rows=None)
    assert gpu.record.to_dict()["timing"]["device"] == "cuda"
    assert abs(gpu.record.to_dict()["steerability"]["S"] - cpu.record.to_dict()["steerability"]["S"]) < 0.05
    for dims in ("64", "256"):
        for level, acc in cpu.record.to_dict()["accuracy"][dims].items():
            assert abs(gpu.record.to_dict()["accuracy"][dims][level] - acc) < 0.05


def test_finetune_on_gpu(clinc, tmp_path):
    from fractal_embeddings.finetune import finetune
    from fractal_embeddings.runs import load_run

    run = finetune(clinc, "fractal", epochs=1, max_train_rows=1000, device="cuda", eval_rows=None, show_progress=False)
    assert run.record.to_dict()["timing"]["device"] == "cuda"
    run.save(tmp_path / "ft")
    again = load_run(tmp_path / "ft").embed(["what's my balance"])
    assert again.shape == (1, 256)
