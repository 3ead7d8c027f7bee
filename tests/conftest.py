"""Shared fixtures: the real datasets (data home) and the offline default encoder on the run's one cache."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
    from fractal_embeddings.runs import embed_split

    sp = clinc_3k.split("train")
    return {
        "texts": list(sp.texts),
        "labels": clinc_3k.label_names("train"),
        "codes": sp.labels,
        "vectors": clinc_3k_run.transform(embed_split(zoom_encoder, sp)),
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
