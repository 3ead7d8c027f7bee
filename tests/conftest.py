"""Shared fixtures: the real datasets (data home), the offline default encoder on the run's one cache,
a CLINC150 subset with one real run for the index and explorer tests, and a small user file of
CLINC150 rows with two short runs and an index on it (the kill, CLI-contract, eval, atomic-write and
training edge-case tests)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# two xdist workers, their sweep pools and CLI subprocesses share 2 cores: idle OpenMP / onnxruntime
# threads sleep instead of spinning (read when torch is first imported: set before any test imports it)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def _data_home() -> Path | None:
    env = os.environ.get("FRACTAL_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "datasets"]:
        if (cand / "clinc150" / "data_full.json").is_file():
            return cand
    return None


DATA_HOME = _data_home()
if DATA_HOME is not None:  # the library (and CLI subprocesses) read the real data in place
    os.environ["FRACTAL_DATA"] = str(DATA_HOME)
# no test may download from the internet: a missing file must fail, not fetch
os.environ["FRACTAL_DATA_URL"] = "http://127.0.0.1:9/unreachable"


@pytest.fixture(scope="session")
def data_home() -> Path:
    home = DATA_HOME
    if home is None:
        pytest.skip("the raw datasets are not here: set FRACTAL_DATA to a folder holding clinc150/, trec/, ...")
    return home


OWN_CACHE: str | None = None  # the cache this run made (and removes at its end)


def pytest_configure(config) -> None:
    """One embedding cache for the whole run: ``$FRACTAL_CACHE`` when set (CI sets a fresh one), else a
    fresh directory made here, in the controller, before pytest-xdist starts its workers, so every
    worker and every CLI subprocess reads and fills the same cache (its writes are atomic) instead of
    encoding the same texts again."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("FRACTAL_CACHE"):
        return
    import tempfile

    global OWN_CACHE
    OWN_CACHE = os.environ["FRACTAL_CACHE"] = tempfile.mkdtemp(prefix="fractal-test-cache-")


def pytest_unconfigure(config) -> None:
    if OWN_CACHE:
        import shutil

        shutil.rmtree(OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["FRACTAL_CACHE"])


@pytest.fixture(scope="session")
def encoder(cache_dir):
    from fractal_embeddings.encoders import Encoder

    return Encoder(cache_dir=cache_dir)


@pytest.fixture(scope="session")
def zoom_encoder(encoder):
    """The encoder of the zoom index and explorer tests: the suite's encoder (one cache for the run)."""
    return encoder


@pytest.fixture(scope="session")
def clinc_3k(data_home):
    """A CLINC150 subset for the zoom index and the explorer: 3,000 train / 600 val / 600 test rows."""
    from fractal_embeddings import load_dataset

    return load_dataset("clinc150").subset({"train": 3000, "val": 600, "test": 600}, seed=0)


@pytest.fixture(scope="session")
def clinc_3k_run(clinc_3k, zoom_encoder):
    """One short real `fractal` run on that subset (5 epochs), shared by the index and explorer tests."""
    from fractal_embeddings.runs import train

    return train(clinc_3k, "fractal", seed=0, encoder=zoom_encoder, train_options={"epochs": 5}, eval_rows=600)


@pytest.fixture(scope="session")
def clinc_3k_corpus(clinc_3k, zoom_encoder, clinc_3k_run):
    """The training split of that subset as an index corpus: texts, label names, label codes and the
    run's head vectors (shared by the zoom index and search-mode tests)."""
    from fractal_embeddings.encoders import embed_split

    sp = clinc_3k.split("train")
    return {
        "texts": list(sp.texts),
        "labels": clinc_3k.label_names("train"),
        "codes": sp.labels,
        "vectors": clinc_3k_run.transform(embed_split(zoom_encoder, sp)),
    }


# ---------------------------------------------------------------- a small user file and its runs
@pytest.fixture(scope="session")
def small_csv(data_home, tmp_path_factory, encoder):
    """A user file of real CLINC150 rows (300 train / 100 val / 100 test) whose split vectors are in the
    session cache (so CLI subprocesses start training at once)."""
    import pandas as pd

    from _helpers import LEVELS
    from fractal_embeddings import load_dataset

    ds = load_dataset("clinc150").subset({"train": 300, "val": 100, "test": 100}, seed=0)
    rows = [
        {"text": t, "domain": ds.levels[0].classes[a], "intent": ds.levels[1].classes[b], "split": s}
        for s in ("train", "val", "test")
        for t, (a, b) in zip(ds.split(s).texts, ds.split(s).labels, strict=True)
    ]
    path = tmp_path_factory.mktemp("small-csv") / "small.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    user = load_dataset(str(path), LEVELS)
    for s in user.splits:
        encoder.embed(user.split(s).texts)
    return path


@pytest.fixture(scope="session")
def corpus_csv(small_csv, encoder):
    """The file's test rows as a corpus for `fractal index build` (already encoded: its texts are the
    test split's)."""
    import pandas as pd

    from _helpers import LEVELS
    from fractal_embeddings.index import read_corpus

    df = pd.read_csv(small_csv)
    path = small_csv.with_name("corpus.csv")
    df[df.split == "test"].drop(columns="split").to_csv(path, index=False)
    encoder.embed(read_corpus(str(path), text="text", levels=LEVELS).texts)
    return path


@pytest.fixture(scope="session")
def user_ds(small_csv):
    """The small user file as a dataset."""
    from _helpers import LEVELS
    from fractal_embeddings import load_dataset

    return load_dataset(str(small_csv), LEVELS)


@pytest.fixture(scope="session")
def two_runs(user_ds, encoder):
    """Two short real ``mrl`` runs (seeds 1 and 2) on the small file."""
    from _helpers import QUICK
    from fractal_embeddings.runs import train

    return [train(user_ds, "mrl", seed=s, encoder=encoder, train_options=QUICK) for s in (1, 2)]


@pytest.fixture(scope="session")
def user_run_dir(two_runs, tmp_path_factory):
    """The first of those runs, saved."""
    return two_runs[0].save(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="session")
def index_dir(user_run_dir, user_ds, encoder, tmp_path_factory):
    """A zoom index of the small file's test rows on that run, saved."""
    from fractal_embeddings.index import ZoomIndex

    sp = user_ds.split("test")
    labels = [[user_ds.levels[lv].classes[c] for lv, c in enumerate(row)] for row in sp.labels]
    return ZoomIndex.build(user_run_dir, list(sp.texts), labels=labels, encoder=encoder).save(
        tmp_path_factory.mktemp("index") / "ix"
    )


@pytest.fixture
def cache_env(monkeypatch, cache_dir):
    """``$FRACTAL_CACHE`` set to the session cache while the test runs (for the CLI in this process)."""
    monkeypatch.setenv("FRACTAL_CACHE", str(cache_dir))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``fractal ARGS`` in this process: the console script's ``main(argv)``, with ``env`` added to the
    environment meanwhile; returns the exit status, stdout and stderr as ``subprocess.run`` would,
    without a fresh interpreter's seconds of imports (tests that need a real process -- the entry
    point, a kill -- start one)."""
    from fractal_embeddings.cli import main

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in args])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["fractal", *args], rc, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def explore_server(run_dir, cache_root, *extra: str):
    """`fractal explore RUN_DIR --port P [extra]` in a subprocess; yields ``(process, base URL)`` once
    it prints its address, and stops it afterwards."""
    import subprocess
    import sys
    import time

    env = {**os.environ, "FRACTAL_CACHE": str(cache_root), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fractal_embeddings.cli", "explore", str(run_dir), "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < 240:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if f"open http://127.0.0.1:{port}/" in line:
                break
        assert any(f"open http://127.0.0.1:{port}/" in x for x in lines), "".join(lines)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
