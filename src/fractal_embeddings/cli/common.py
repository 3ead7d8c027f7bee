"""What every command group shares: the Typer apps, the common options, printing, and the mapping
of flags to library parameters (``--levels`` to a tuple, ``--eval-rows`` to an integer or None).

The ranges of the values are the library's to check (:mod:`fractal_embeddings.validation`, the
functions the commands call): the CLI parses a flag's text into the parameter's type, nothing more.
"""

from __future__ import annotations

import errno
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from .. import __version__
from ..data import load_dataset
from ..errors import FractalError

if TYPE_CHECKING:
    import os

    from ..data.taxonomy import TaxonomyDataset

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Steerable (semantic zoom) text embeddings.")
datasets_app = typer.Typer(no_args_is_help=True, help="List and describe datasets.")
app.add_typer(datasets_app, name="datasets")
index_app = typer.Typer(no_args_is_help=True, help="Zoom indexes: nearest-neighbour search at a chosen prefix.")
app.add_typer(index_app, name="index")
taxonomy_app = typer.Typer(no_args_is_help=True, help="Derived taxonomies: induce a coarse level from flat labels.")
app.add_typer(taxonomy_app, name="taxonomy")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

TextOpt = typer.Option("text", "--text", help="Text column of a user file.")
LevelsOpt = typer.Option(None, "--levels", help="Levels, coarse -> fine, comma-separated (user files: column names).")
ConflictOpt = typer.Option("error", "--on-conflict", help="A class under two parents: 'error' or 'majority'.")
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps.")
NameArg = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file.")
ModelOpt = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder.")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"fractal-embeddings {__version__}")
        raise typer.Exit()


# ------------------------------------------------------------------ flags -> parameters
def parse_levels(levels: str | None) -> tuple[str, ...] | None:
    """``--levels a,b`` as the tuple ``load_dataset`` takes (``None``: not given)."""
    return tuple(x.strip() for x in levels.split(",") if x.strip()) if levels else None


def parse_eval_rows(value: str) -> int | None:
    """``--eval-rows``: ``all`` -> ``None``, a whole number -> ``int``; its range is the library's rule."""
    if value.strip().lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise FractalError(f"--eval-rows must be a number of rows or 'all', got {value!r}") from None


def load(name: str, text: str, levels: str | None, on_conflict: str, include_oos: bool = False) -> TaxonomyDataset:
    """The dataset a command reads (a built-in name or a user file), with a progress bar for a download."""
    opts: dict[str, Any] = {"include_oos": True} if include_oos else {}
    return load_dataset(name, parse_levels(levels), text=text, on_conflict=on_conflict, progress=True, **opts)


def device_of(device: str) -> str:
    """``--device`` resolved and checked before any work (one line for a device this machine lacks)."""
    from ..devices import resolve_device

    return resolve_device(device)


# ------------------------------------------------------------------ printing
def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def log(message: str) -> None:
    """Progress lines of library code: printed as-is (``[mrl]`` in a variant name is not markup)."""
    err.print(message, markup=False)


def print_error(message: str) -> None:
    """One ``error: ...`` line on stderr: newlines folded, markup in the message shown as typed."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(' '.join(str(message).split()))}", soft_wrap=True)


# ------------------------------------------------------------------ a write that fails after the work
_WRITE_ERRNOS = {
    errno.EFBIG: "file too large (the file-size limit, `ulimit -f`)",
    errno.ENOSPC: "no space left on the device",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
}
_OS_ERROR_TEXT = re.compile(r"\(os error (\d+)\)")  # how Rust writers (safetensors) report an errno


def write_failure(exc: BaseException) -> tuple[str, str | None] | None:
    """``(problem, path or None)`` when ``exc`` (or an exception it was raised from) is a write that ran
    out of room: disk full, quota exceeded, file too large; ``None`` for any other exception."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
            return _WRITE_ERRNOS[e.errno], (None if e.filename is None else str(e.filename))
        m = _OS_ERROR_TEXT.search(str(e))
        if m and int(m.group(1)) in _WRITE_ERRNOS:
            return _WRITE_ERRNOS[int(m.group(1))], None
        e = e.__cause__ or e.__context__
    return None


def write_failure_message(problem: str, path: str | os.PathLike | None, kept: bool = False) -> str:
    where = f" {path}" if path is not None else ""
    keep = "; what was there is kept (the writers replace it in one step)" if kept else ""
    return f"writing{where} failed: {problem}{keep}. Free some space (or raise the limit) and run the command again"


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Around a command's save: a disk-full / file-too-large failure becomes one ``FractalError`` naming
    ``path`` (the writers replace their target in one step, so what was there is kept)."""
    try:
        yield
    except FractalError:
        raise
    except Exception as e:
        found = write_failure(e)
        if found is None:
            raise
        raise FractalError(write_failure_message(found[0], path, kept=True)) from None
