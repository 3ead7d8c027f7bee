"""SIGKILL at several points of the commands that write: `save_run` in a loop, `fractal train`,
`fractal index build`, `export` and `experiment` (finetune has its own in test_finetune.py, a sweep in
test_sweep.py): what is on disk afterwards is the previous state or the complete new one, and the next
writer (a plain re-run) completes and clears what the killed one left. Real short runs: the small
CLINC150 user file (conftest) and a CLINC150 subset; ``fractal`` runs as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from _helpers import no_leftovers, whole_run
from fractal_embeddings import load_dataset

DELAYS = (0.5, 2.0, 4.0, 7.0)  # seconds after the start: imports, loading, the work, the final swap


def _kill_after(cmd: list[str], env: dict, delay: float) -> int:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return p.wait(timeout=delay)  # finished before the kill: fine too
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        return p.wait()


def fractal_proc(*args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "fractal_embeddings.cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def env(cache_dir):
    return {**os.environ, "FRACTAL_CACHE": str(cache_dir)}


@pytest.fixture(scope="module")
def saved_runs(data_home, encoder, tmp_path_factory):
    """Two short ``v5-paper`` runs (seeds 0 and 1) on a CLINC150 subset, saved."""
    from fractal_embeddings.runs import train

    ds = load_dataset("clinc150").subset({"train": 600, "val": 150, "test": 150}, seed=0)
    root = tmp_path_factory.mktemp("kill-runs")
    return [
        train(ds, "v5-paper", seed=s, encoder=encoder, train_options={"epochs": 1}).save(root / f"s{s}") for s in (0, 1)
    ]


def test_killed_export_leaves_the_old_or_the_new_model(saved_runs, cache_dir, tmp_path):
    from fractal_embeddings.export import EXPORT_FILE, export_sentence_transformers

    old_run, new_run = saved_runs
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


# ------------------------------------------- run and index directories
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


def test_fractal_index_build_killed_leaves_the_old_or_the_new_index(corpus_csv, env, user_run_dir, tmp_path):
    """Defect 1 for `fractal index build --overwrite`: killed at several moments, the folder holds the
    previous index or the new one (every file checked against index.json by ZoomIndex.load)."""
    from fractal_embeddings.index import ZoomIndex

    target = tmp_path / "ix"
    args = [
        "index",
        "build",
        user_run_dir,
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
