"""End-to-end CLI tests: the JSON output is a contract other checks read."""

import json
import math
import subprocess
import sys

import pandas as pd

from conftest import run_cli


def fractal(*args, env_extra=None):
    """The CLI in this process (:func:`conftest.run_cli`); ``test_version`` runs the real entry point."""
    return run_cli(*args, env=env_extra)


def test_version():
    """The installed entry point in a fresh interpreter (``python -m fractal_embeddings.cli``)."""
    from fractal_embeddings import __version__

    r = subprocess.run(
        [sys.executable, "-m", "fractal_embeddings.cli", "--version"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"fractal-embeddings {__version__}"
    assert __version__ != "0.0.0"  # read from the installed package's metadata


def test_stats_json_contract(data_home):
    r = fractal("datasets", "stats", "clinc150", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["name"] == "clinc150"
    assert st["levels"] == [{"name": "domain", "n_classes": 10}, {"name": "intent", "n_classes": 150}]
    assert st["splits"] == {"train": 15000, "val": 3000, "test": 4500}
    assert abs(st["entropy"]["H_L1|L0"] - math.log2(15)) < 0.01
    assert set(st["entropy"]) == {"H_L0", "H_L1|L0"}


def test_list_json(data_home):
    r = fractal("datasets", "list", "--json")
    assert r.returncode == 0, r.stderr
    names = {d["name"]: d for d in json.loads(r.stdout)["datasets"]}
    assert {"clinc150", "trec", "newsgroups20", "goemotions", "hwu64", "banking77"} <= set(names)
    assert names["banking77"]["flat"] and names["wos"]["online_only"] and names["clinc150"]["files_present"]


def test_errors_are_one_line_with_exit_status_2(data_home, tmp_path):
    r = fractal("datasets", "stats", "nope")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith("error: unknown dataset 'nope'") and r.stderr.strip().count("\n") == 0
    path = tmp_path / "u.csv"
    pd.DataFrame({"text": ["a", "b"], "x": ["1", "2"]}).to_csv(path, index=False)
    r = fractal("datasets", "stats", str(path), "--levels", "domain,intent")
    assert r.returncode == 2 and "no column 'domain', 'intent'" in r.stderr and "Traceback" not in r.stderr


def test_user_file_stats_and_embed(data_home, tmp_path, cache_dir):
    from fractal_embeddings import load_dataset

    ds = load_dataset("trec")
    sp = ds.split("test")
    df = pd.DataFrame(
        {
            "q": sp.texts,
            "c": [ds.levels[0].classes[i] for i in sp.labels[:, 0]],
            "f": [ds.levels[1].classes[i] for i in sp.labels[:, 1]],
        }
    )
    path = tmp_path / "mine.csv"
    df.to_csv(path, index=False)
    r = fractal("datasets", "stats", str(path), "--text", "q", "--levels", "c,f", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert sum(st["splits"].values()) == 500 and st["levels"][0]["n_classes"] == 6
    r = fractal(
        "embed", str(path), "--text", "q", "--levels", "c,f", "--json", env_extra={"FRACTAL_CACHE": str(cache_dir)}
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["backend"] == "onnx" and sum(v["rows"] for v in rep["splits"].values()) == 500
    assert all(v["dim"] == 384 and v["sentences_per_s"] > 0 for v in rep["splits"].values())


def test_banking77_stats_work_but_it_is_flat(data_home):
    r = fractal("datasets", "stats", "banking77", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["levels"] == [{"name": "intent", "n_classes": 77}] and st["branching"] == {}


def test_train_json_record_then_eval_reproduces_it(data_home, cache_dir, tmp_path):
    from fractal_embeddings import load_dataset

    # a user file made of real TREC rows (a stratified 1,500 of the training rows and the whole test
    # split): the same path a user with their own taxonomy takes
    trec = load_dataset("trec").subset({"train": 1_500}, seed=0)
    rows = [
        {"question": t, "kind": trec.levels[0].classes[a], "detail": trec.levels[1].classes[b], "split": s}
        for s in ("train", "test")
        for t, (a, b) in zip(trec.split(s).texts, trec.split(s).labels, strict=True)
    ]
    path = tmp_path / "questions.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    env = {"FRACTAL_CACHE": str(cache_dir)}
    r = fractal(
        "train",
        str(path),
        "--text",
        "question",
        "--levels",
        "kind,detail",
        "--method",
        "mrl",
        "--seed",
        "3",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--json",
        env_extra=env,
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert {"method", "seed", "dataset", "accuracy", "steerability"} <= set(rec)
    assert rec["method"] == "mrl" and rec["seed"] == 3 and rec["dataset"]["name"] == "questions"
    assert set(rec["accuracy"]) == {"64", "128", "192", "256"}
    assert set(rec["accuracy"]["64"]) == {"kind", "detail"} and isinstance(rec["steerability"]["S"], float)
    assert (tmp_path / "run" / "head.safetensors").is_file()

    r = fractal("eval", str(tmp_path / "run"), "--json", env_extra=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["accuracy"] == rec["accuracy"] and res["steerability"] == rec["steerability"]

    r = fractal("eval", str(tmp_path / "run"), env_extra=env)
    assert r.returncode == 0 and "S = " in r.stdout and "256" in r.stdout

    # a finished run is never replaced by accident
    r = fractal(
        "train",
        str(path),
        "--text",
        "question",
        "--levels",
        "kind,detail",
        "--out",
        str(tmp_path / "run"),
        env_extra=env,
    )
    assert r.returncode == 2 and "already holds a run" in r.stderr and "--overwrite" in r.stderr


def test_train_bad_input_is_one_line(data_home, tmp_path):
    for args, msg in [
        (("train", "trec", "--method", "v6"), "error: unknown method 'v6'"),
        (("train", "trec", "--eval-rows", "some"), "error: --eval-rows must be"),
        (("train", "banking77"), "error: "),
        (("train", "trec", "--method", "heal", "--dim", "64"), "error: the heal head needs"),
        (("train", "trec", "--dim", "250"), "error: output dim 250 is not a multiple of block dim 64"),
        (("eval", str(tmp_path)), "error: "),
    ]:
        r = fractal(*args, "--out", str(tmp_path / "x")) if args[0] == "train" else fractal(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip().startswith(msg) and r.stderr.strip().count("\n") == 0, r.stderr


def test_experiment_list_names_every_experiment_and_unknown_is_one_line(data_home):
    from fractal_embeddings.experiments import EXPERIMENTS

    r = fractal("experiment", "list")
    assert r.returncode == 0
    names = [line.split(":")[0] for line in r.stdout.splitlines() if ":" in line]
    assert names == list(EXPERIMENTS)
    bad = fractal("experiment", "mian")
    assert (
        bad.returncode == 2 and "unknown experiment 'mian'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    )


def test_predict_json_and_errors(data_home, cache_dir):
    from fractal_embeddings.predictor import FIT_FILE

    r = fractal("predict", "trec", "--json", env_extra={"FRACTAL_CACHE": str(cache_dir)})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    lo, hi = res["interval"]
    assert lo < res["predicted_S"] < hi and res["method"] == "fractal"
    assert res["fit"]["loo_mae"] > 0 and "trec" in res["fit"]["datasets"]
    # whether the fit beat the held-out taxonomies' mean out of sample is stated, from the fit file
    fit = json.loads(FIT_FILE.read_text())
    assert res["fit"]["beats_mean"] == (fit["nested_loo"]["mae"] < fit["nested_loo"]["mean_only_mae"])
    text = fractal("predict", "trec", env_extra={"FRACTAL_CACHE": str(cache_dir)})
    assert text.returncode == 0 and "predicted S for `fractal`" in text.stdout
    assert ("worse than their mean" in text.stderr) == (not res["fit"]["beats_mean"])
    flat = fractal("predict", "banking77")
    assert flat.returncode == 2 and "flat" in flat.stderr and len(flat.stderr.strip().splitlines()) == 1
    none = fractal("predict")
    assert none.returncode == 2 and "give a dataset" in none.stderr


def _limited(max_bytes: int):
    """A child's preexec: writes past ``max_bytes`` fail with EFBIG (SIGXFSZ ignored, as `ulimit -f` would do)."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return limit


def test_a_write_that_runs_out_of_room_is_one_line_and_keeps_the_old_run(data_home, cache_dir, tmp_path):
    """`fractal train --overwrite` under a file-size limit used to end in a traceback with exit status 1."""
    import hashlib
    import os

    from fractal_embeddings import load_dataset

    trec = load_dataset("trec").subset({"train": 300, "test": 100}, seed=0)
    rows = [
        {"q": t, "c": trec.levels[0].classes[a], "f": trec.levels[1].classes[b], "split": s}
        for s in ("train", "test")
        for t, (a, b) in zip(trec.split(s).texts, trec.split(s).labels, strict=True)
    ]
    path = tmp_path / "q.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    args = ["train", str(path), "--text", "q", "--levels", "c,f", "--method", "mrl", "--epochs", "1"]
    args += ["--out", str(tmp_path / "run")]
    env = {"FRACTAL_CACHE": str(cache_dir)}
    r = fractal(*args, env_extra=env)  # the run to keep, and the cached vectors
    assert r.returncode == 0, r.stderr
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "run").iterdir()}
    r = subprocess.run(
        [sys.executable, "-m", "fractal_embeddings.cli", *args, "--overwrite", "--json"],  # --json: no progress
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
        preexec_fn=_limited(100_000),  # the head's weights are ~450 kB
    )
    assert r.returncode == 2 and r.stdout == "", r.stderr
    err = r.stderr.strip()
    assert err.startswith("error: writing ") and err.count("\n") == 0 and "Traceback" not in err, err
    assert "file too large" in err and str(tmp_path / "run") in err, err
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "run").iterdir()}
    assert after == before  # the old run is kept

    # `fractal index build --overwrite` under the same limit (each prefix's FAISS file is > 100 kB)
    build = ["index", "build", str(tmp_path / "run"), str(path), "--text", "q", "--levels", "c,f"]
    build += ["--out", str(tmp_path / "ix"), "--overwrite", "--json"]
    r = fractal(*build, env_extra=env)
    assert r.returncode == 0, r.stderr
    before = sorted(p.name for p in (tmp_path / "ix").iterdir())
    r = subprocess.run(
        [sys.executable, "-m", "fractal_embeddings.cli", *build],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
        preexec_fn=_limited(100_000),
    )
    err = r.stderr.strip()
    assert r.returncode == 2 and err.startswith("error: writing ") and err.count("\n") == 0, err
    assert "file too large" in err and str(tmp_path / "ix") in err, err
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == before


def test_write_failures_are_recognised_through_wrappers():
    """A disk-full error is found as an OSError, as the cause of another error, or in a Rust writer's text."""
    import errno

    from fractal_embeddings.cli.common import write_failure

    assert write_failure(OSError(errno.ENOSPC, "No space left on device", "/x/y"))[1] == "/x/y"
    try:
        try:
            raise OSError(errno.EFBIG, "File too large")
        except OSError as e:
            raise RuntimeError("saving failed") from e
    except RuntimeError as wrapped:
        assert write_failure(wrapped)[0].startswith("file too large")
    assert write_failure(Exception("I/O error: File too large (os error 27)")) is not None
    assert write_failure(OSError(errno.ENOENT, "No such file")) is None
    assert write_failure(ValueError("os error 2")) is None


def test_data_mistakes_a_new_user_makes_are_one_line(data_home, tmp_path):
    """Each of these used to get through (a text column that is a level trained on the label itself) or
    name the wrong problem (pandas' renamed `intent.1`; "no full main records" for a missing folder)."""
    path = tmp_path / "f.csv"
    rows = [(f"text number {i}", f"d{i % 2}", f"i{i % 4}") for i in range(40)]
    pd.DataFrame(rows, columns=["text", "domain", "intent"]).to_csv(path, index=False)
    dup = tmp_path / "dup.csv"
    dup.write_text("text,intent,intent\n" + "".join(f"t{i},a{i % 2},b{i % 2}\n" for i in range(10)))
    for args, msg in [
        (("datasets", "stats", path, "--text", "intent", "--levels", "domain,intent"), "column 'intent' is both"),
        (("train", path, "--text", "intent", "--levels", "domain,intent"), "column 'intent' is both"),
        (("datasets", "stats", dup, "--levels", "domain,intent"), "column 'intent' appears twice"),
        (("predict", "--refit", tmp_path / "nonexistent"), "nonexistent: no such folder"),
    ]:
        r = fractal(*args)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        err = r.stderr.strip()
        assert err.startswith("error: ") and msg in err and err.count("\n") == 0, (args, err)
