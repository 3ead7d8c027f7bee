"""Training's edge cases: a one-block head (defined metrics, saved, evaluated), non-finite or
wrongly typed options, divergence, and sizes and seeds checked before any encoding or training (too
few rows, eval rows, a block wider than the encoder). Real short runs on the small CLINC150 user file
(conftest), through the library and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _helpers import LEVELS, QUICK, assert_one_error, cli, no_leftovers, whole_run
from fractal_embeddings.errors import FractalError


# ------------------------------------------- one-block heads and divergence
def test_one_block_head_has_defined_metrics_and_saves(user_ds, encoder, tmp_path):
    """Defect 2: with one block, S_mono was NaN, the record could not be written and only the weights
    were left. One prefix means no zoom: S = 0, S_AUC = S_gap = coarse - fine accuracy, S_mono null."""
    from fractal_embeddings.evaluation import steerability_metrics
    from fractal_embeddings.runs import load_run, train

    m = steerability_metrics(np.array([[0.9, 0.6]]))
    assert m == {"S": 0.0, "S_AUC": 0.3, "S_gap": 0.3, "S_mono": None}
    m3 = steerability_metrics(np.array([[0.9, 0.7, 0.6]]))
    assert m3["S_mono"] is None and m3["S_01"] == m3["S_12"] == m3["S_02"] == 0.0
    run = train(user_ds, "mrl", seed=0, encoder=encoder, n_blocks=1, train_options=QUICK)
    out = run.save(tmp_path / "one")
    rec = whole_run(out)
    assert rec["steerability"]["S"] == 0.0 and rec["steerability"]["S_mono"] is None
    assert set(rec["accuracy"]) == {"64"} and load_run(out).transform(np.zeros((1, 384))).shape == (1, 64)


def test_cli_one_block_train_then_eval(small_csv, tmp_path, cache_env):
    rc, out, err = cli(
        "train",
        small_csv,
        "--levels",
        "domain,intent",
        "--method",
        "mrl",
        "--epochs",
        "1",
        "--dim",
        "64",
        "--out",
        tmp_path / "one",
        "--json",
    )
    assert rc == 0, err
    assert json.loads(out)["steerability"]["S_mono"] is None
    rc, out, err = cli("eval", tmp_path / "one")
    assert rc == 0 and "S_mono = n/a" in out and "warning" not in err, (out, err)


@pytest.mark.parametrize(
    "opt,value",
    [
        ("lr", math.inf),
        ("lr", math.nan),
        ("weight_decay", math.inf),
        ("weight_decay", -0.1),
        ("grad_clip", math.nan),
        ("grad_clip", -1.0),
        ("encoder_lr", math.inf),
        ("epochs", 2.5),
        ("batch_size", True),
        ("val_rows", 0),
        ("k", 0),
        ("threads", 0),
        ("epochs", "3"),
    ],
)
def test_train_config_refuses_non_finite_and_wrong_typed_values(opt, value):
    """Defect 2: `--lr inf` passed validation (so did weight_decay / grad_clip = nan or inf)."""
    from fractal_embeddings.training import TrainConfig

    with pytest.raises(FractalError, match=opt) as e:
        TrainConfig.resolve({}, {opt: value})
    assert "\n" not in str(e.value)


def test_diverging_training_stops_with_one_line_and_writes_nothing(user_ds, encoder, small_csv, tmp_path, cache_env):
    """Defect 2: `--method v5-paper --lr 1e6` diverged to NaN, training went on and the record could not
    be written. Now fit stops at the first epoch whose loss or weights are not finite."""
    from fractal_embeddings.runs import train

    with pytest.raises(FractalError, match=r"training diverged at epoch 1 .*lower the learning rate"):
        train(user_ds, "v5-paper", seed=0, encoder=encoder, train_options={"lr": 1e6, "epochs": 3})
    rc, _, err = cli(
        "train",
        small_csv,
        "--levels",
        "domain,intent",
        "--method",
        "v5-paper",
        "--lr",
        "1e6",
        "--epochs",
        "2",
        "--out",
        tmp_path / "r",
        "--json",
    )
    assert_one_error(rc, err, "diverged", "--lr")
    assert not (tmp_path / "r").exists()
    no_leftovers(tmp_path, set())
    rc, _, err = cli("train", small_csv, "--levels", "domain,intent", "--lr", "inf", "--out", tmp_path / "r")
    assert_one_error(rc, err, "lr must be a finite number > 0")
    assert "epoch" not in err


# ------------------------------------------- sizes and seeds checked before the work
def _write(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def test_too_small_files_fail_before_encoding(small_csv, tmp_path):
    """Defect 3: <= 5 rows per class gave an empty val split, a 5-row test split or eval_rows=5 failed
    the k-NN only after training. Checked first now: a fresh cache stays empty (nothing encoded)."""
    from fractal_embeddings import load_dataset
    from fractal_embeddings.encoders import Encoder
    from fractal_embeddings.runs import train

    df = pd.read_csv(small_csv)
    fresh = Encoder(cache_dir=tmp_path / "cache")
    # no split column, 2 rows per class: the 10 % val split is empty
    five = _write(tmp_path / "five.csv", df[df.split == "train"].drop(columns="split"))
    with pytest.raises(FractalError, match=r"'val' split .* 0 rows.*needs at least 6") as e:
        train(load_dataset(str(five), LEVELS), "mrl", encoder=fresh)
    assert "\n" not in str(e.value)
    test5 = _write(tmp_path / "test5.csv", pd.concat([df[df.split != "test"], df[df.split == "test"].head(5)]))
    with pytest.raises(FractalError, match=r"'test' split .* 5 rows.*leave-one-out 5-NN needs at least 6"):
        train(load_dataset(str(test5), LEVELS), "mrl", encoder=fresh)
    ds = load_dataset(str(small_csv), LEVELS)
    for rows in (5, 0, -1):
        with pytest.raises(FractalError, match=r"eval_rows.*at least 6"):
            train(ds, "mrl", encoder=fresh, eval_rows=rows)
    with pytest.raises(FractalError, match=r"val_rows.*at least 6"):
        train(ds, "mrl", encoder=fresh, train_options={"val_rows": 3})
    with pytest.raises(FractalError, match=r"k must be an integer >= 1"):
        train(ds, "mrl", encoder=fresh, k=0)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_cli_eval_rows_5_fails_before_training(small_csv, tmp_path, cache_env):
    rc, _, err = cli("train", small_csv, "--levels", "domain,intent", "--eval-rows", "5", "--out", tmp_path / "r")
    assert_one_error(rc, err, "--eval-rows", "at least 6")
    assert "epoch" not in err


def test_block_wider_than_the_encoder_fails_before_training(user_ds, encoder):
    """Found on the way: --block-dim 512 (> the encoder's 384 dims) trained, then failed scoring the
    untrained baseline (no prefix of the raw vectors fits)."""
    from fractal_embeddings.runs import train

    with pytest.raises(FractalError, match=r"block dim 512 is wider than the encoder's 384 dims"):
        train(user_ds, "mrl", encoder=encoder, n_blocks=1, block_dim=512, train_options=QUICK)


def test_library_refuses_bad_seeds(user_ds, encoder):
    from fractal_embeddings.runs import train

    for seed in (2**70, -1, 1.5, True):
        with pytest.raises(FractalError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
            train(user_ds, "mrl", seed=seed, encoder=encoder, train_options=QUICK)
