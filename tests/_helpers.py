"""Plain helpers shared by several test files (fixtures live in conftest.py): the small CLINC150
user file's levels and short training, a cache entry's identity and array, the CLI in this process
with its one-line error check, and checks of what a write left on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import run_cli

LEVELS = ("domain", "intent")  # the small user file's label columns (conftest's small_csv)
QUICK = {"epochs": 1}  # the short runs trained on it
IDENT = {"name": "test-encoder", "fingerprint": "0" * 64}  # a cache entry's encoder identity ...
ARRAY = np.arange(12, dtype=np.float32).reshape(4, 3)  # ... and its array


def cli(*argv) -> tuple[int, str, str]:
    """``fractal_embeddings.cli.main(argv)`` in this process (:func:`conftest.run_cli`): (exit status, stdout,
    stderr)."""
    r = run_cli(*argv)
    return r.returncode, r.stdout, r.stderr


def assert_one_error(rc: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


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
