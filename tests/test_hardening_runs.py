"""Hardening: run and index directories that change in one step, checks made before the work, and a
command line whose every usage error is one line with exit status 2.

Real data throughout: a small user CSV made of CLINC150 rows (its vectors put in the session cache
first, so CLI subprocesses start training at once) and the offline default encoder. The kill tests run
``fractal`` as a subprocess (or fork a process that saves runs in a loop) and SIGKILL it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from fractal_embeddings.errors import FractalError

LEVELS = ("domain", "intent")
QUICK = {"epochs": 1}
PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


# ---------------------------------------------------------------- helpers
def cli(*argv) -> tuple[int, str, str]:
    """``fractal_embeddings.cli.main(argv)`` in this process (:func:`conftest.run_cli`): (exit status, stdout,
    stderr)."""
    r = run_cli(*argv)
    return r.returncode, r.stdout, r.stderr


@contextlib.contextmanager
def inside(folder: Path):
    """Run with ``folder`` as the working directory: a relative path a command might write to (a default
    `runs/...`, `--out .`) lands there, never in the repository, even if a check regresses."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


def assert_one_error(rc: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def fractal_proc(*args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "fractal_embeddings.cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def whole_run(path: Path) -> dict:
    """The record of the complete run at ``path`` (record + weights whose sha256 matches), checked."""
    from fractal_embeddings.records import file_sha256
    from fractal_embeddings.runs import load_run

    assert path.is_dir(), f"{path} is missing"
    assert sorted(p.name for p in path.iterdir()) == ["head.safetensors", "record.json"], list(path.iterdir())
    rec = json.loads((path / "record.json").read_text())
    assert file_sha256(path / "head.safetensors") == rec["weights"]["sha256"]
    load_run(path)  # every check the library makes
    return rec


def no_leftovers(parent: Path, keep: set[str]) -> None:
    assert {p.name for p in parent.iterdir()} == keep, sorted(p.name for p in parent.iterdir())


def untouched(scratch: Path) -> None:
    no_leftovers(scratch, {"notes.txt", "mine"})
    no_leftovers(scratch / "mine", {"keep.txt"})


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def small_csv(data_home, tmp_path_factory, encoder):
    """A user file of real CLINC150 rows (300 train / 100 val / 100 test) whose split vectors are in the
    session cache."""
    from fractal_embeddings import load_dataset

    ds = load_dataset("clinc150").subset({"train": 300, "val": 100, "test": 100}, seed=0)
    rows = [
        {"text": t, "domain": ds.levels[0].classes[a], "intent": ds.levels[1].classes[b], "split": s}
        for s in ("train", "val", "test")
        for t, (a, b) in zip(ds.split(s).texts, ds.split(s).labels, strict=True)
    ]
    path = tmp_path_factory.mktemp("hardening") / "small.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    user = load_dataset(str(path), LEVELS)
    for s in user.splits:
        encoder.embed(user.split(s).texts)
    return path


@pytest.fixture(scope="module")
def corpus_csv(small_csv, encoder):
    """The file's test rows as a corpus for `fractal index build` (already encoded: its texts are the
    test split's)."""
    from fractal_embeddings.index import read_corpus

    df = pd.read_csv(small_csv)
    path = small_csv.with_name("corpus.csv")
    df[df.split == "test"].drop(columns="split").to_csv(path, index=False)
    encoder.embed(read_corpus(str(path), text="text", levels=LEVELS).texts)
    return path


@pytest.fixture(scope="module")
def user_ds(small_csv):
    from fractal_embeddings import load_dataset

    return load_dataset(str(small_csv), LEVELS)


@pytest.fixture(scope="module")
def env(cache_dir):
    return {**os.environ, "FRACTAL_CACHE": str(cache_dir)}


@pytest.fixture(scope="module")
def two_runs(user_ds, encoder):
    """Two short real ``mrl`` runs (seeds 1 and 2) on the small file."""
    from fractal_embeddings.runs import train

    return [train(user_ds, "mrl", seed=s, encoder=encoder, train_options=QUICK) for s in (1, 2)]


@pytest.fixture(scope="module")
def run_dir(two_runs, tmp_path_factory):
    return two_runs[0].save(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="module")
def index_dir(run_dir, user_ds, encoder, tmp_path_factory):
    from fractal_embeddings.index import ZoomIndex

    sp = user_ds.split("test")
    labels = [[user_ds.levels[lv].classes[c] for lv, c in enumerate(row)] for row in sp.labels]
    return ZoomIndex.build(run_dir, list(sp.texts), labels=labels, encoder=encoder).save(
        tmp_path_factory.mktemp("index") / "ix"
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A working directory for commands given bad paths: holds a file and a folder that is not a run."""
    d = tmp_path_factory.mktemp("scratch")
    (d / "notes.txt").write_text("mine")
    (d / "mine").mkdir()
    (d / "mine" / "keep.txt").write_text("mine")
    return d


@pytest.fixture
def cache_env(monkeypatch, cache_dir):
    monkeypatch.setenv("FRACTAL_CACHE", str(cache_dir))


# ------------------------------------------- 1. run directories change in one step
def test_overwrite_that_fails_keeps_the_old_run_whole(two_runs, tmp_path):
    """Defect 1: new weights replaced the old ones before the record was written; a failure between the
    two left the old record with the new weights. Here the new record can't be written (a NaN)."""
    from fractal_embeddings.records import RunRecordError
    from fractal_embeddings.weights import save_run

    old, new = two_runs
    target = old.save(tmp_path / "run")
    before = whole_run(target)
    bad = json.loads(json.dumps(new.record.to_dict()))
    bad["steerability"]["S"] = float("nan")
    with pytest.raises(RunRecordError, match=r"steerability\.S .*not a finite number"):
        save_run(target, bad, new.head, overwrite=True)
    assert whole_run(target) == before
    no_leftovers(tmp_path, {"run"})
    # a successful overwrite: the new run, whole, and nothing left beside it
    new.save(target, overwrite=True)
    assert whole_run(target)["run_id"] == new.record.to_dict()["run_id"] != old.record.to_dict()["run_id"]
    no_leftovers(tmp_path, {"run"})


SAVE_LOOP = r"""
import json, os, select, signal, sys, time
from fractal_embeddings.records import file_sha256
from fractal_embeddings.runs import load_run
target, a, b = sys.argv[1:4]
for line in sys.stdin:  # one kill per line: the delay after the first save, in seconds
    r, w = os.pipe()
    pid = os.fork()  # this process runs no torch op (fork-safe); each child loads the runs itself
    if pid == 0:
        os.close(r)
        runs, n = [load_run(b), load_run(a)], 0
        while True:
            runs[n % 2].save(target, overwrite=True)
            if n == 0:
                os.write(w, b"x")
            n += 1
    os.close(w)
    ready = select.select([r], [], [], 60)[0] and os.read(r, 1) == b"x"
    os.close(r)
    if ready:
        time.sleep(float(line))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert ready, "the saving child never finished its first save"
    names = sorted(os.listdir(target))
    rec = json.load(open(os.path.join(target, "record.json")))
    sha_ok = file_sha256(os.path.join(target, "head.safetensors")) == rec["weights"]["sha256"]
    print(json.dumps({"names": names, "sha_ok": sha_ok, "run_id": rec["run_id"]}), flush=True)
"""


def test_save_run_killed_mid_write_leaves_a_whole_run(two_runs, tmp_path, env):
    """Defect 1, killed for real: a process overwrites the run in a loop (alternating two runs) and is
    SIGKILLed at 8 moments; the directory always holds one of the two runs, whole."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    a, b = (r.save(tmp_path / name) for r, name in zip(two_runs, ("a", "b"), strict=True))
    target = two_runs[0].save(tmp_path / "run")
    delays = "".join(f"{d}\n" for d in (0, 0.003, 0.007, 0.012, 0.018, 0.026, 0.037, 0.05))
    p = subprocess.run(
        [sys.executable, "-c", SAVE_LOOP, str(target), str(a), str(b)],
        input=delays,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    seen = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(seen) == 8
    ids = {r.record.to_dict()["run_id"] for r in two_runs}
    for s in seen:
        assert s["names"] == ["head.safetensors", "record.json"] and s["sha_ok"] and s["run_id"] in ids, s
    assert whole_run(target)["run_id"] in ids
    # the next writer clears what the killed ones left beside it
    two_runs[1].save(target, overwrite=True)
    no_leftovers(tmp_path, {"a", "b", "run"})


def test_fractal_train_killed_leaves_the_old_or_the_new_run(small_csv, env, two_runs, tmp_path):
    """Defect 1 through the CLI: `fractal train --overwrite` SIGKILLed at several moments (mid-way, then
    near the save, timed from a complete run) leaves the previous run or the new one, whole."""
    target = two_runs[0].save(tmp_path / "run")
    args = [
        "train",
        small_csv,
        "--levels",
        "domain,intent",
        "--method",
        "mrl",
        "--epochs",
        "2",
        "--out",
        target,
        "--overwrite",
        "--json",
    ]
    t0 = time.perf_counter()
    p = fractal_proc(*args, "--seed", 7, env=env)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    full = time.perf_counter() - t0
    assert whole_run(target)["seed"] == 7
    prev = 7
    for i, frac in enumerate((0.5, 0.93, 1.0)):
        seed = 8 + i
        p = fractal_proc(*args, "--seed", seed, env=env)
        time.sleep(frac * full)
        p.kill()
        p.wait()
        got = whole_run(target)["seed"]
        assert got in (prev, seed)
        prev = got
    # the next writer clears what the killed ones left beside it
    two_runs[1].save(target, overwrite=True)
    assert whole_run(target)["seed"] == 2
    no_leftovers(tmp_path, {"run"})


def test_fractal_index_build_killed_leaves_the_old_or_the_new_index(corpus_csv, env, run_dir, tmp_path):
    """Defect 1 for `fractal index build --overwrite`: killed at several moments, the folder holds the
    previous index or the new one (every file checked against index.json by ZoomIndex.load)."""
    from fractal_embeddings.index import ZoomIndex

    target = tmp_path / "ix"
    args = [
        "index",
        "build",
        run_dir,
        corpus_csv,
        "--text",
        "text",
        "--levels",
        "domain,intent",
        "--out",
        target,
        "--overwrite",
        "--json",
    ]
    t0 = time.perf_counter()
    p = fractal_proc(*args, "--kind", "flat", env=env)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    full = time.perf_counter() - t0
    prev = "flat"
    for i, frac in enumerate((0.6, 0.95, 1.0)):
        kind = ("hnsw", "flat")[i % 2]
        p = fractal_proc(*args, "--kind", kind, env=env)
        time.sleep(frac * full)
        p.kill()
        p.wait()
        got = ZoomIndex.load(target).kind
        assert got in (prev, kind)
        prev = got
    # the next writer clears what the killed ones left beside it
    ix = ZoomIndex.load(target)
    ix.save(target, overwrite=True)
    assert len(ZoomIndex.load(target)) == 100
    no_leftovers(tmp_path, {"ix"})


def test_atomic_dir_replaces_only_what_it_may(tmp_path):
    """The shared helper: a new folder appears whole; a failure inside leaves nothing; a folder without
    the marker is never replaced; with a marker it is replaced only with overwrite."""
    from fractal_embeddings.atomic import atomic_dir
    from fractal_embeddings.errors import OutputPathError

    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(target, marker="done.json", what="a result") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("boom")
    no_leftovers(tmp_path, set())
    with atomic_dir(target, marker="done.json", what="a result") as tmp:
        (tmp / "done.json").write_text("1")
    assert (target / "done.json").read_text() == "1"
    with (
        pytest.raises(OutputPathError, match="already holds a result; .*--overwrite"),
        atomic_dir(target, marker="done.json", what="a result"),
    ):
        pass
    with atomic_dir(target, overwrite=True, marker="done.json", what="a result") as tmp:
        (tmp / "done.json").write_text("2")
    assert (target / "done.json").read_text() == "2"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with (
        pytest.raises(OutputPathError, match="not empty and holds no result"),
        atomic_dir(tmp_path / "mine", overwrite=True, marker="done.json", what="a result"),
    ):
        pass
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    no_leftovers(tmp_path, {"out", "mine"})


# ------------------------------------- 4. bad --out paths are refused before any work
def test_check_output_dir_names_the_problem(tmp_path):
    from fractal_embeddings.errors import OutputPathError
    from fractal_embeddings.validation import check_output_dir

    f = tmp_path / "file.txt"
    f.write_text("x")
    for path, msg in [
        (f, "is a file, not a directory"),
        (f / "x", "is a file, not a directory"),
        (f / "x" / "y", "is a file, not a directory"),
    ]:
        with pytest.raises(OutputPathError, match=msg) as e:
            check_output_dir(path, marker="record.json", what="a run")
        assert "choose another --out" in str(e.value) and "\n" not in str(e.value)
    assert check_output_dir(tmp_path / "new" / "deeper", marker="record.json") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check creates nothing
    if not os.access("/proc/self", os.W_OK):
        with pytest.raises(OutputPathError, match="can't write in /proc/self"):
            check_output_dir("/proc/self/run", marker="record.json")


@pytest.mark.parametrize("case", ["file", "under-file", "not-a-run", "unwritable"])
def test_train_refuses_a_bad_out_before_training(small_csv, tmp_path, cache_env, case):
    """Defects 1 and 4: `train --out` at a file, under a file, in a non-empty folder that is not a run,
    or where nothing can be written fails at once (no epoch runs), in one line naming the fix."""
    f = tmp_path / "file.txt"
    f.write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    out, msg = {
        "file": (f, "is a file"),
        "under-file": (f / "x", "is a file"),
        "not-a-run": (tmp_path / "mine", "not empty and holds no run"),
        "unwritable": ("/proc/self/run", "can't write"),
    }[case]
    if case == "unwritable" and os.access("/proc/self", os.W_OK):
        pytest.skip("/proc/self is writable here")
    rc, _, err = cli(
        "train", small_csv, "--levels", "domain,intent", "--method", "mrl", "--epochs", "1", "--out", out, "--overwrite"
    )
    assert_one_error(rc, err, msg, "--out")
    assert "epoch" not in err
    assert f.read_text() == "x" and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("case", ["file", "under-file"])
def test_index_build_refuses_a_bad_out_before_encoding(corpus_csv, run_dir, tmp_path, case):
    f = tmp_path / "file.txt"
    f.write_text("x")
    out = f if case == "file" else f / "x"
    rc, _, err = cli("index", "build", run_dir, corpus_csv, "--levels", "domain,intent", "--out", out)
    assert_one_error(rc, err, "is a file", "--out")


# ----------------------------------------------- 2. one-block heads and divergence
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


# ---------------------------------------------------- 3. sizes checked before the work
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


# ------------------------------------------------------- 8. usage errors: one line, 2
@pytest.mark.parametrize(
    "argv,needles",
    [
        (["train", "clinc150", "--epochs", "abc"], ["--epochs", "fractal train --help"]),
        (["train", "clinc150", "--bogus"], ["No such option: --bogus", "fractal train --help"]),
        (["train"], ["Missing argument", "fractal train --help"]),
        (["train", "clinc150", "--seed", str(2**70)], ["--seed", "4294967295"]),
        (["train", "clinc150", "--seed", "-1"], ["--seed"]),
        (["train", "clinc150", "--eval-seed", str(2**32)], ["--eval-seed"]),
        (["index", "build"], ["Missing argument", "fractal index build --help"]),
        (["search", "ix", "q", "-k", "x"], ["-k"]),
        (["nope"], ["No such command", "fractal --help"]),
        (["experiment", "main", "--quick", "--datasets", "trec", "--seeds", "1,x"], ["--seeds", "comma-separated"]),
        (["experiment", "main", "--quick", "--datasets", "trec", "--seeds", f"1,{2**40}"], ["--seeds", "4294967295"]),
    ],
)
def test_usage_errors_are_one_line_with_status_2(scratch, argv, needles):
    """Defect 8: click's usage errors printed a traceback (typer's own click classes escaped main) with
    exit status 1; an oversized seed crashed inside numpy."""
    with inside(scratch):
        rc, out, err = cli(*argv)
    untouched(scratch)
    assert_one_error(rc, err, *needles)
    assert out == ""


def test_library_refuses_bad_seeds(user_ds, encoder):
    from fractal_embeddings.runs import train

    for seed in (2**70, -1, 1.5, True):
        with pytest.raises(FractalError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
            train(user_ds, "mrl", seed=seed, encoder=encoder, train_options=QUICK)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("k", "abc", "config.eval.k"),
        ("k", 0, "config.eval.k"),
        ("k", True, "config.eval.k"),
        ("k", 10**6, "config.eval.k"),
        ("max_rows", -3, "config.eval.max_rows"),
        ("max_rows", "all", "config.eval.max_rows"),
        ("sample_seed", 2**70, "config.eval.sample_seed"),
        ("split", 5, "config.eval.split"),
        ("split", "nope", "config.eval.split"),
    ],
)
def test_eval_refuses_an_edited_record_field(run_dir, tmp_path, cache_env, field, value, needle):
    """Defect 8: an edited `eval.k` (a string, 0) in record.json crashed `fractal eval` with a traceback."""
    import shutil

    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    rec = json.loads((d / "record.json").read_text())
    rec["config"]["eval"][field] = value
    (d / "record.json").write_text(json.dumps(rec))
    rc, _, err = cli("eval", d)
    assert_one_error(rc, err, needle, "record.json")


# --------------------------------------------- 9, 10. eval compares; eval names the path
def test_eval_compares_with_the_record(run_dir, two_runs, tmp_path, cache_env):
    """Defect 9: `fractal eval` re-scored the run but never said whether it matched the record."""
    import shutil

    from fractal_embeddings.evaluation import compare_scores
    from fractal_embeddings.records import RunRecord
    from fractal_embeddings.runs import evaluate

    rc, out, err = cli("eval", run_dir, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["matches_record"] is True and res["differences"] == [] and "warning" not in err
    rec = two_runs[0].record
    assert compare_scores(rec, evaluate(run_dir)) == []

    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    edited = json.loads((d / "record.json").read_text())
    edited["accuracy"]["64"]["domain"] = round(edited["accuracy"]["64"]["domain"] - 0.25, 6)
    edited["steerability"]["S"] = 0.5
    (d / "record.json").write_text(json.dumps(edited))
    diffs = compare_scores(RunRecord.from_dict(edited), evaluate(d))
    assert len(diffs) == 2 and any(x.startswith("accuracy 64 domain:") for x in diffs)
    assert any(x.startswith("steerability S:") for x in diffs)
    rc, out, err = cli("eval", d, "--json")
    assert rc == 0 and json.loads(out)["matches_record"] is False and len(json.loads(out)["differences"]) == 2
    warn = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1 and "differs from its record" in warn[0], err
    rc, out, err = cli("eval", d)
    assert rc == 0 and "differs from its record" in err
    # other rows than the record's: nothing to compare, and it says so
    rc, out, err = cli("eval", run_dir, "--eval-rows", "50", "--json")
    assert rc == 0 and json.loads(out)["matches_record"] is None


def test_search_zoom_that_is_a_unicode_digit_is_one_line(index_dir):
    """Found by the property test's alphabet: '²'.isdigit() is True but int('²') raised ValueError."""
    rc, out, err = cli("search", index_dir, "book a flight", "--zoom", "²")
    assert_one_error(rc, err, "zoom '²' is not one of this index's zooms")


def test_eval_of_a_missing_directory_names_it(tmp_path):
    """Defect 10: `fractal eval runs/nope` said `runs: no record.json here`."""
    rc, _, err = cli("eval", tmp_path / "runs" / "nope")
    line = assert_one_error(rc, err, str(tmp_path / "runs" / "nope"), "does not exist")
    assert f"{tmp_path / 'runs'}:" not in line
    rc, _, err = cli("eval", tmp_path)
    assert_one_error(rc, err, "no record.json")


# ------------------------------------------------- property tests of option parsing
NOT_INT = st.sampled_from(["abc", "", " ", "1.5", "nan", "inf", "-inf", "1e3", "0x10", "--", "2**8", "one"])
NON_POSITIVE = st.integers(max_value=0).map(str)
BAD_FLOAT = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "0", "-0", "abc", "", " "]),
    st.floats(max_value=0, allow_nan=False).map(repr),
)
HUGE = st.integers(min_value=2**32, max_value=2**200).map(str)
NEGATIVE = st.integers(max_value=-1).map(str)
OPTION_NAME = st.from_regex(r"--[a-z][a-z-]{1,14}", fullmatch=True)


def _unknown(command_path: list[str]):
    from typer.main import get_command

    from fractal_embeddings.cli import app

    cmd = get_command(app)
    for name in command_path:
        cmd = cmd.commands[name]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    return OPTION_NAME.filter(lambda o: o not in known)


def _bad_train_option():
    from fractal_embeddings.objectives import OBJECTIVES

    return st.one_of(
        st.tuples(st.just("--epochs"), st.one_of(NOT_INT, NON_POSITIVE)),
        st.tuples(st.just("--batch-size"), st.one_of(NOT_INT, NON_POSITIVE)),
        st.tuples(st.just("--lr"), BAD_FLOAT),
        st.tuples(st.sampled_from(["--seed", "--eval-seed"]), st.one_of(NOT_INT, HUGE, NEGATIVE)),
        st.tuples(
            st.just("--dim"), st.one_of(NOT_INT, NON_POSITIVE, st.integers(1, 10**6).filter(lambda d: d % 64).map(str))
        ),
        st.tuples(st.just("--block-dim"), st.one_of(NOT_INT, NON_POSITIVE)),
        st.tuples(
            st.just("--eval-rows"), st.one_of(st.sampled_from(["abc", "", "1", "0", "-5", "nan", "1.5"]), NEGATIVE)
        ),
        st.tuples(st.just("--method"), st.text("abcxyz-_ ", max_size=8).filter(lambda m: m not in OBJECTIVES)),
        st.tuples(st.just("--out"), st.sampled_from(["", ".", "mine", "notes.txt", "notes.txt/x"])),
        st.tuples(_unknown(["train"]), st.just("1")),
    )


@PROPS
@given(data=st.data())
def test_train_options_property(small_csv, scratch, data):
    """Any bad value of a `fractal train` option (or an unknown option) ends in one `error:` line and
    exit status 2, before anything is encoded or trained."""
    opt, value = data.draw(_bad_train_option())
    out = str(scratch / "prop-train-out")
    extra = [] if opt == "--out" else ["--out", out]
    t0 = time.perf_counter()
    with inside(scratch):
        rc, _, err = cli("train", small_csv, "--levels", "domain,intent", "--method", "mrl", *extra, opt, value)
    assert_one_error(rc, err)
    assert time.perf_counter() - t0 < 5
    untouched(scratch)


@PROPS
@given(data=st.data())
def test_index_build_options_property(corpus_csv, run_dir, scratch, data):
    opt, value = data.draw(
        st.one_of(
            st.tuples(
                st.just("--kind"), st.text("abcdefhnsw ", max_size=8).filter(lambda k: k not in ("flat", "hnsw"))
            ),
            st.tuples(st.just("--m"), st.one_of(NOT_INT, st.integers(max_value=1).map(str))),
            st.tuples(st.sampled_from(["--ef-construction", "--ef-search"]), st.one_of(NOT_INT, NON_POSITIVE)),
            st.tuples(st.just("--split"), st.sampled_from(["", "nope", "TEST!"])),
            st.tuples(st.just("--out"), st.sampled_from(["", ".", "mine", "notes.txt", "notes.txt/x"])),
            st.tuples(_unknown(["index", "build"]), st.just("1")),
        )
    )
    out = str(scratch / "prop-index-out")
    extra = [] if opt == "--out" else ["--out", out]
    t0 = time.perf_counter()
    with inside(scratch):
        rc, _, err = cli("index", "build", run_dir, corpus_csv, "--levels", "domain,intent", *extra, opt, value)
    assert_one_error(rc, err)
    assert time.perf_counter() - t0 < 5
    untouched(scratch)


@PROPS
@given(data=st.data())
def test_search_options_property(index_dir, data):
    opt, value = data.draw(
        st.one_of(
            st.tuples(st.sampled_from(["-k", "--top-k"]), st.one_of(NOT_INT, NON_POSITIVE)),
            st.tuples(
                st.just("--zoom"),
                st.one_of(
                    st.text(max_size=6).filter(
                        lambda z: z.strip().lower() not in ("coarse", "fine", "64", "128", "192", "256")
                    ),
                    st.integers().filter(lambda d: d not in (64, 128, 192, 256)).map(str),
                ),
            ),
            st.tuples(st.just("--ef-search"), st.one_of(NOT_INT, NON_POSITIVE)),
            st.tuples(_unknown(["search"]), st.just("1")),
        )
    )
    t0 = time.perf_counter()
    rc, out, err = cli("search", index_dir, "book a flight", opt, value)
    assert_one_error(rc, err)
    assert out == "" and time.perf_counter() - t0 < 5


@PROPS
@given(data=st.data())
def test_export_options_property(run_dir, scratch, data):
    opt, value = data.draw(
        st.one_of(
            st.tuples(
                st.just("--dims"),
                st.one_of(
                    NOT_INT,
                    NON_POSITIVE,
                    HUGE,
                    st.integers(1, 10**6).filter(lambda d: d not in (64, 128, 192, 256)).map(str),
                ),
            ),
            st.tuples(_unknown(["export"]), st.just("1")),
        )
    )
    out = scratch / "prop-export-out"
    t0 = time.perf_counter()
    with inside(scratch):
        rc, _, err = cli("export", run_dir, out, opt, value)
    assert_one_error(rc, err)
    assert time.perf_counter() - t0 < 5
    untouched(scratch)
