"""`fractal finetune` end to end on the CPU: a user file of real CLINC150 rows, the run accepted by
eval / index build / search / export, one-line errors, and a killed run that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fractal_embeddings import load_dataset

ARGS = [
    "--text",
    "text",
    "--levels",
    "domain,intent",
    "--max-train-rows",
    "160",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--eval-rows",
    "all",
]


@pytest.fixture(scope="module")
def csv_file(data_home, tmp_path_factory):
    """Real CLINC150 rows (4 domains) as a user file with a split column."""
    ds = load_dataset("clinc150")
    keep = set(ds.levels[0].classes[:4])
    frames = []
    for split, n in (("train", 320), ("val", 80), ("test", 160)):
        sp = ds.split(split)
        rows = [i for i, lab in enumerate(sp.labels) if ds.levels[0].classes[lab[0]] in keep][:n]
        frames.append(
            pd.DataFrame(
                {
                    "text": [sp.texts[i] for i in rows],
                    "domain": [ds.levels[0].classes[sp.labels[i][0]] for i in rows],
                    "intent": [ds.levels[1].classes[sp.labels[i][1]] for i in rows],
                    "split": split,
                }
            )
        )
    path = tmp_path_factory.mktemp("ft-data") / "clinc-4.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ft_run(csv_file, cache_dir, tmp_path_factory):
    from fractal_embeddings.cli import main

    out = tmp_path_factory.mktemp("ft") / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("FRACTAL_CACHE", str(cache_dir))
    assert main(["finetune", str(csv_file), *ARGS, "--out", str(out), "--json"]) == 0
    yield out
    mp.undo()


def test_finetune_writes_a_sentence_transformers_folder_and_a_record(ft_run):
    from sentence_transformers import SentenceTransformer

    from fractal_embeddings.evaluation import unit_rows
    from fractal_embeddings.runs import load_run

    rec = json.loads((ft_run / "record.json").read_text())
    assert rec["encoder"]["model"] == "." and rec["encoder"]["base"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert rec["config"]["train"]["finetune"] == "full" and rec["config"]["train"]["train_rows"] == 160
    assert set(rec["accuracy"]) == {"64", "128", "192", "256"} and "S" in rec["steerability"]
    assert rec["baseline"]["accuracy"]["64"] != rec["accuracy"]["64"]  # the untrained encoder, scored too
    assert any("domain" in h for h in rec["training"]["history"])  # the trainer logged the loss per level
    run = load_run(ft_run)
    texts = ["what's my balance", "transfer money to savings", "book a table for two"]
    Z = run.embed(texts)
    coarse = SentenceTransformer(str(ft_run), trust_remote_code=True, truncate_dim=64)
    assert np.abs(coarse.encode(texts, normalize_embeddings=True) - unit_rows(Z[:, :64])).max() <= 1e-5


def test_finetuned_run_is_accepted_everywhere(ft_run, csv_file, cache_dir, tmp_path, capsys, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from fractal_embeddings.cli import main
    from fractal_embeddings.evaluation import unit_rows
    from fractal_embeddings.runs import load_run

    monkeypatch.setenv("FRACTAL_CACHE", str(cache_dir))
    rec = json.loads((ft_run / "record.json").read_text())
    assert main(["eval", str(ft_run), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy"] == rec["accuracy"] and res["baseline"] == rec["baseline"]

    idx = tmp_path / "idx"
    assert (
        main(
            [
                "index",
                "build",
                str(ft_run),
                str(csv_file),
                "--text",
                "text",
                "--levels",
                "domain,intent",
                "--split",
                "test",
                "--out",
                str(idx),
                "--json",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["search", str(idx), "what is my checking balance", "--zoom", "coarse", "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 3 and all(set(h["labels"]) == {"domain", "intent"} for h in hits)

    exp = tmp_path / "exported"
    assert main(["export", str(ft_run), str(exp)]) == 0
    capsys.readouterr()
    texts = ["freeze my card", "what's the weather like"]
    Z = load_run(ft_run).embed(texts)
    for p in (64, 256):
        got = SentenceTransformer(str(exp), trust_remote_code=True, truncate_dim=p).encode(
            texts, normalize_embeddings=True
        )
        assert np.abs(got - unit_rows(Z[:, :p])).max() <= 1e-5
    assert "fine-tuned end to end" in (exp / "README.md").read_text()
    assert main(["export", str(ft_run), str(tmp_path / "p"), "--portable"]) == 2
    assert "has no built-in-modules form" in capsys.readouterr().err

    # saving an index copies the run into it without re-pointing the caller's run at that copy
    from fractal_embeddings.index import ZoomIndex

    run = load_run(ft_run)
    ZoomIndex.build(run, texts).save(tmp_path / "idx2")
    assert run.path == ft_run and run.embed(texts).shape == (2, 256)

    # the explorer: a flat index over the run's own test rows (the run's dataset is the user file)
    from fractal_embeddings.explore import Explorer, open_index

    ix, source = open_index(ft_run, cache_dir=tmp_path / "explore")
    assert source["kind"] == "run" and len(ix) == rec["dataset"]["rows"]["test"]
    res = Explorer(ix, source).search("what is my checking balance", zoom=64, k=5)
    assert len(res["hits"]) == 5


def test_finetune_errors_are_one_line_before_work(ft_run, csv_file, tmp_path, capsys):
    from fractal_embeddings.cli import main

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    cases = [
        (["finetune", str(csv_file), *ARGS, "--out", str(ft_run)], "already holds a run"),
        (["finetune", str(csv_file), *ARGS, "--out", str(busy)], "not empty and holds no run"),
        (["finetune", str(csv_file), *ARGS, "--method", "flat", "--out", str(tmp_path / "f")], "trains no head"),
        (
            ["finetune", str(csv_file), *ARGS, "--model", "minilm-l6-int8", "--out", str(tmp_path / "o")],
            "ships as ONNX only",
        ),
        (["finetune", str(csv_file), *ARGS, "--encoder-lr", "0", "--out", str(tmp_path / "z")], "encoder_lr must be"),
    ]
    for args, msg in cases:
        assert main(args) == 2, args
        e = capsys.readouterr().err.strip()
        assert e.startswith("error: ") and msg in e and "\n" not in e, e
    assert (busy / "notes.txt").read_text() == "mine" and not (tmp_path / "f").exists()


def test_killed_finetune_leaves_nothing(csv_file, cache_dir, tmp_path):
    """SIGKILL while the trainer runs (and once while the model is written): the target directory is
    absent; a later run cleans the dead run's temporary sibling and completes."""
    out = tmp_path / "killed"
    env = {**os.environ, "FRACTAL_CACHE": str(cache_dir)}
    cmd = [
        sys.executable,
        "-m",
        "fractal_embeddings.cli",
        "finetune",
        str(csv_file),
        *ARGS,
        "--out",
        str(out),
        "--json",
    ]
    for delay in (6.0, 12.0):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert not out.exists() or (out / "record.json").is_file(), delay  # never half-written
    if out.exists():  # a complete run got in first: replace it
        cmd.append("--overwrite")
    assert subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    assert (out / "record.json").is_file() and (out / "3_FractalHead" / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporary siblings cleaned


def test_finetuned_run_folder_is_self_contained_and_checked(ft_run, csv_file, cache_dir, tmp_path, capsys, monkeypatch):
    """A fine-tuned run folder carries fractal_head.py at its root (it loads with sentence-transformers
    alone). A copy whose head code was swapped (fingerprint rewritten to match), or that holds a link
    (to a private file, or dangling), is refused in one line by eval, export and index build before
    any work: the code never runs, nothing is copied, no output folder appears."""
    import shutil

    from fractal_embeddings import fractal_head
    from fractal_embeddings.cli import main
    from fractal_embeddings.model_files import folder_fingerprint

    monkeypatch.setenv("FRACTAL_CACHE", str(cache_dir))
    modules = json.loads((ft_run / "modules.json").read_text())
    assert modules[-1]["type"] == "fractal_head.FractalHead"
    assert (ft_run / "fractal_head.py").read_bytes() == Path(fractal_head.__file__).read_bytes()

    marker = tmp_path / "ran.txt"
    swapped = shutil.copytree(ft_run, tmp_path / "swapped")
    code = (swapped / "fractal_head.py").read_text()
    (swapped / "fractal_head.py").write_text(
        code + f"\nimport pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
    )
    private = tmp_path / "private.txt"
    private.write_text("secret")
    linked = shutil.copytree(ft_run, tmp_path / "linked")
    (linked / "notes.txt").symlink_to(private)
    dangling = shutil.copytree(ft_run, tmp_path / "dangling")
    (dangling / "gone.txt").symlink_to(tmp_path / "no-such-file")
    for folder in (swapped, linked, dangling):
        rec = json.loads((folder / "record.json").read_text())
        rec["encoder"]["fingerprint"] = folder_fingerprint(folder)  # the tamperer makes the record agree
        (folder / "record.json").write_text(json.dumps(rec))

    cases = [(swapped, "runs no code from a model folder"), (linked, "symbolic link"), (dangling, "symbolic link")]
    for folder, msg in cases:
        for args in (
            ["eval", str(folder)],
            ["export", str(folder), str(tmp_path / "exp")],
            ["index", "build", str(folder), str(csv_file), "--levels", "domain,intent", "--out", str(tmp_path / "ix")],
        ):
            assert main(args) == 2, (folder.name, args[0])
            e = capsys.readouterr().err.strip()
            assert e.startswith("error: ") and "\n" not in e and msg in e, (folder.name, args[0], e)
            assert not (tmp_path / "exp").exists() and not (tmp_path / "ix").exists()
    assert not marker.exists()


def test_finetune_refuses_a_run_folder_as_the_encoder(ft_run, csv_file, tmp_path, capsys):
    """A run folder given as --model is named as such (not "ships as ONNX only"), before any work."""
    from fractal_embeddings.cli import main

    for model in (ft_run, tmp_path / "head-run"):
        if model != ft_run:  # a head run: record.json + head.safetensors, no modules.json
            model.mkdir()
            (model / "record.json").write_text((ft_run / "record.json").read_text())
        assert main(["finetune", str(csv_file), *ARGS, "--model", str(model), "--out", str(tmp_path / "o")]) == 2
        e = capsys.readouterr().err.strip()
        assert "is a run folder, not an encoder" in e and "minilm-l6" in e and "ONNX" not in e, e
        assert "\n" not in e and not (tmp_path / "o").exists()


def test_eval_of_a_damaged_finetuned_run_names_the_files(ft_run, tmp_path, capsys):
    """`fractal eval` of a fine-tuned run whose model files are missing or changed names the cause
    (never "use --model .", an option eval does not have)."""
    import shutil

    from fractal_embeddings.cli import main

    gone, changed = tmp_path / "gone", tmp_path / "changed"
    shutil.copytree(ft_run, gone)
    shutil.copytree(ft_run, changed)
    (gone / "model.safetensors").unlink()
    head = next(p for p in changed.glob("*FractalHead*/model.safetensors"))
    data = bytearray(head.read_bytes())
    data[-1] ^= 1
    head.write_bytes(bytes(data))
    for run, msg in ((gone, "files missing: model.safetensors"), (changed, "its files changed")):
        assert main(["eval", str(run), "--json"]) == 2
        e = capsys.readouterr().err.strip()
        assert msg in e and "--model ." not in e and "restore the whole run folder" in e and "\n" not in e, e
