"""SIGKILL at several points of the commands that write `export` and `experiment` (train, index build
and finetune have theirs in test_hardening_runs.py / test_finetune.py): what is on disk afterwards is
the previous state or the complete new one, and a plain re-run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fractal_embeddings import load_dataset

DELAYS = (0.5, 2.0, 4.0, 7.0)  # seconds after the start: imports, loading, the work, the final swap


def _kill_after(cmd: list[str], env: dict, delay: float) -> int:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return p.wait(timeout=delay)  # finished before the kill: fine too
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        return p.wait()


@pytest.fixture(scope="module")
def two_runs(data_home, encoder, tmp_path_factory):
    from fractal_embeddings.runs import train

    ds = load_dataset("clinc150").subset({"train": 600, "val": 150, "test": 150}, seed=0)
    root = tmp_path_factory.mktemp("kill-runs")
    return [
        train(ds, "v5-paper", seed=s, encoder=encoder, train_options={"epochs": 1}).save(root / f"s{s}") for s in (0, 1)
    ]


def test_killed_export_leaves_the_old_or_the_new_model(two_runs, cache_dir, tmp_path):
    from fractal_embeddings.export import EXPORT_FILE, export_sentence_transformers

    old_run, new_run = two_runs
    out = tmp_path / "model"
    export_sentence_transformers(old_run, out)
    ids = {json.loads((r / "record.json").read_text())["run_id"] for r in (old_run, new_run)}
    env = {**os.environ, "FRACTAL_CACHE": str(cache_dir)}
    cmd = [sys.executable, "-m", "fractal_embeddings.cli", "export", str(new_run), str(out), "--overwrite"]
    for delay in DELAYS:
        _kill_after(cmd, env, delay)
        info = json.loads((out / EXPORT_FILE).read_text())  # always a complete export...
        assert info["run_id"] in ids, delay  # ...the old one or the new one
        assert (out / "modules.json").is_file() and (out / "README.md").is_file()
    assert subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    assert (
        json.loads((out / EXPORT_FILE).read_text())["run_id"]
        == json.loads((new_run / "record.json").read_text())["run_id"]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary sibling left


def test_killed_experiment_keeps_only_complete_runs_and_resumes(data_home, cache_dir, tmp_path):
    from fractal_embeddings.records import load_record

    env = {**os.environ, "FRACTAL_CACHE": str(cache_dir)}
    cmd = [
        sys.executable,
        "-m",
        "fractal_embeddings.cli",
        "experiment",
        "main",
        "--quick",
        "--datasets",
        "trec",
        "--seeds",
        "42",
        "--out",
        str(tmp_path / "results"),
    ]
    store = tmp_path / "results" / "main-quick"
    for delay in DELAYS:
        _kill_after(cmd, env, delay)
        if store.exists():
            for d in store.glob("*/*/seed*"):
                if ".tmp-" not in d.name:  # a key directory is a complete run or absent
                    load_record(d)
                    assert (d / "head.safetensors").is_file() or load_record(d).weights is None
    time.sleep(0.5)
    assert subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    keys = sorted(p.parent.relative_to(store).as_posix() for p in store.glob("*/*/seed*/record.json"))
    assert keys == ["trec/fractal/seed42", "trec/mrl/seed42", "trec/v5-paper/seed42"], keys
