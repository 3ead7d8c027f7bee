"""The sweep runner and run store: resumable, safe under kills and concurrent sweeps, and the same
records from the local and the Ray executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fractal_embeddings.experiments.sweep import RunSpec, run_sweep, sweep
from fractal_embeddings.records import load_record
from fractal_embeddings.runs import load_run
from fractal_embeddings.store import RunStore

TINY = {"train": 600, "val": 200, "test": 300}
GRID = [RunSpec("t", "trec", m, s, cap=TINY, train_options={"epochs": 2}) for s in (1, 2) for m in ("v5-paper", "mrl")]

SCRIPT = """
import sys
from fractal_embeddings.experiments.sweep import RunSpec, sweep
TINY = {"train": 600, "val": 200, "test": 300}
specs = [RunSpec("t", "trec", m, s, cap=TINY, train_options={"epochs": EPOCHS}) for s in (1, 2, 3)
         for m in ("v5-paper", "mrl")]
sweep(specs, sys.argv[1], progress=False)
"""


def _strip(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k != "timing"}


@pytest.fixture
def env(data_home, cache_dir, monkeypatch):
    monkeypatch.setenv("FRACTAL_CACHE", str(cache_dir))
    return {**os.environ, "FRACTAL_CACHE": str(cache_dir)}


@pytest.fixture(scope="module")
def ray_session(data_home):
    """One local Ray for this module's Ray tests: starting Ray and warming its workers costs tens of
    seconds on 2 cores, and the executors reuse a running Ray (leaving it up when they close)."""
    pytest.importorskip("ray")
    from fractal_embeddings.executors import RayExecutor

    ex = RayExecutor(num_cpus=2)
    yield ex
    ex.close()


def test_store_put_is_first_writer_wins(env, tmp_path):
    spec = GRID[0]
    out = run_sweep([spec], tmp_path, progress=False, log=lambda *_: None)
    assert out[0]["status"] == "stored"
    store = RunStore(tmp_path)
    rec = load_record(store.path(spec.key)).to_dict()
    assert rec["tags"]["experiment"] == "t" and rec["tags"]["spec"]["cap"] == TINY
    assert store.put(spec.key, load_run(store.path(spec.key))) is False  # never replaced
    assert run_sweep([spec], tmp_path, progress=False, log=lambda *_: None) == []  # nothing redone
    assert store.keys() == [spec.key]
    with pytest.raises(Exception, match="bad run key"):
        store.path("../escape")


def test_killed_sweep_resumes_without_redoing_or_losing_runs(env, tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT.replace("EPOCHS", "3"))
    store = RunStore(tmp_path / "store")
    p = subprocess.Popen(
        [sys.executable, str(script), str(store.root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not store.keys() and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)  # mid-sweep, possibly mid-write
    p.wait()
    first = store.keys()
    assert 1 <= len(first) < 6
    created = {k: load_record(store.path(k)).timing["created_at"] for k in first}
    subprocess.run([sys.executable, str(script), str(store.root)], env=env, check=True, capture_output=True)
    keys = store.keys()  # a RunStore, not a dict: keys() lists the finished runs
    assert len(keys) == 6
    for k in keys:
        run = load_run(store.path(k))  # every run complete and consistent (sha256 checked)
        if k in created:
            assert run.record.to_dict()["timing"]["created_at"] == created[k]  # not redone
    assert not [p for p in store.root.rglob("*") if ".tmp-" in p.name and p.stat().st_mtime > time.time() - 5]


def test_two_concurrent_sweeps_share_a_store(env, tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT.replace("EPOCHS", "1"))
    store = RunStore(tmp_path / "store")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(store.root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait() == 0, p.stderr.read().decode()[-2000:]
    keys = store.keys()
    assert len(keys) == 6
    for k in keys:
        load_run(store.path(k))
    assert not list(store.root.rglob("*.tmp-*"))


def test_local_and_ray_executors_write_identical_records(env, ray_session, tmp_path):
    sweep(GRID, tmp_path / "local", executor="local", workers=2, progress=False, log=lambda *_: None)
    sweep(GRID, tmp_path / "ray", executor="ray", workers=2, progress=False, log=lambda *_: None)
    local, ray_ = RunStore(tmp_path / "local"), RunStore(tmp_path / "ray")
    keys = local.keys()
    assert keys == ray_.keys() and len(keys) == 4
    for k in keys:
        a, b = load_record(local.path(k)).to_dict(), load_record(ray_.path(k)).to_dict()
        assert _strip(a) == _strip(b)  # weights' sha256 included: bit-identical heads
        assert json.loads((local.path(k) / "record.json").read_text())["weights"]["sha256"] == b["weights"]["sha256"]


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_sharded_embedding_equals_the_local_cache(data_home, tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    from fractal_embeddings.data import load_dataset
    from fractal_embeddings.encoders import Encoder, embed_sharded
    from fractal_embeddings.executors import get_executor

    texts = list(load_dataset("trec").split("test").texts[:300])
    local = Encoder(cache_dir=tmp_path / "a").embed(texts)
    enc = Encoder(cache_dir=tmp_path / "b")
    pool = get_executor(executor, workers=2)
    try:
        X = embed_sharded(enc, texts, pool, n_shards=3)
    finally:
        pool.close()
    assert np.array_equal(X, local)
    assert enc.is_cached(texts) and np.array_equal(enc.embed(texts), local)  # the cache now serves it
