"""The ``fractal`` command line: argument parsing and printing only; the work is in the library.

Errors the library raises on purpose (:class:`~fractal_embeddings.errors.FractalError`) print as one
line ``error: ...`` on stderr with exit status 2; warnings print as ``warning: ...``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .data import get_data_home, list_datasets, load_dataset
from .errors import FractalError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Steerable (semantic zoom) text embeddings.")
datasets_app = typer.Typer(no_args_is_help=True, help="List and describe datasets.")
app.add_typer(datasets_app, name="datasets")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

TextOpt = typer.Option("text", "--text", help="Text column of a user file.")
LevelsOpt = typer.Option(None, "--levels", help="Levels, coarse -> fine, comma-separated (user files: column names).")
ConflictOpt = typer.Option("error", "--on-conflict", help="A class under two parents: 'error' or 'majority'.")


def _levels(levels: Optional[str]) -> Optional[tuple[str, ...]]:
    return tuple(x.strip() for x in levels.split(",") if x.strip()) if levels else None


def _load(name: str, text: str, levels: Optional[str], on_conflict: str, include_oos: bool = False):
    opts = {"include_oos": True} if include_oos else {}
    return load_dataset(name, _levels(levels), text=text, on_conflict=on_conflict, progress=True, **opts)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"fractal-embeddings {__version__}")
        raise typer.Exit()


@datasets_app.command("list")
def datasets_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The built-in datasets, their levels and whether their files are in the data home."""
    home = get_data_home()
    rows = []
    for s in list_datasets():
        present = all((home / s.folder / f.path).is_file() for f in s.files)
        rows.append({"name": s.name, "title": s.title, "levels": list(s.default_levels),
                     "all_levels": list(s.levels), "flat": s.is_flat, "online_only": s.online_only,
                     "files_present": present})
    if as_json:
        _print_json({"data_home": str(home), "datasets": rows})
        return
    t = Table(title=f"datasets (data home: {home})")
    for c in ("name", "levels", "files", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], " -> ".join(r["levels"]), "yes" if r["files_present"] else "no", r["title"])
    out.print(t)


def stats_table(st: dict) -> Table:
    t = Table(title=f"{st['name']}: {st['rows']} rows")
    t.add_column("level")
    t.add_column("classes", justify="right")
    t.add_column("entropy (bits)", justify="right")
    t.add_column("branching", justify="right")
    ent = list(st["entropy"].items())
    br = [None] + list(st["branching"].values())
    for i, lv in enumerate(st["levels"]):
        t.add_row(f"L{i} {lv['name']}", str(lv["n_classes"]), f"{ent[i][0]} = {ent[i][1]:.3f}",
                  "" if br[i] is None else f"{br[i]:.2f}")
    t.caption = "splits: " + ", ".join(f"{k}={v}" for k, v in st["splits"].items())
    return t


@datasets_app.command("stats")
def datasets_stats(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    text: str = TextOpt,
    levels: Optional[str] = LevelsOpt,
    on_conflict: str = ConflictOpt,
    include_oos: bool = typer.Option(False, "--include-oos", help="CLINC150: keep out-of-scope rows."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rows per split, classes per level, H(L0), H(Lk|Lk-1) and branching."""
    st = _load(name, text, levels, on_conflict, include_oos).stats()
    if as_json:
        _print_json(st)
    else:
        out.print(stats_table(st))


@app.command("embed")
def embed(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder."),
    backend: str = typer.Option("auto", "--backend", help="auto, onnx or sentence-transformers."),
    batch_size: int = typer.Option(32, "--batch-size"),
    text: str = TextOpt,
    levels: Optional[str] = LevelsOpt,
    on_conflict: str = ConflictOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fill the embedding cache for every split of a dataset; print sentences/s."""
    from .encoders import Encoder

    ds = _load(name, text, levels, on_conflict)
    enc = Encoder(model, backend=backend, batch_size=batch_size)
    cached = {split: enc.is_cached(sp.texts) for split, sp in ds.splits.items()}
    t0 = time.perf_counter()
    if not all(cached.values()):
        enc.load()  # model load (and the one-time ONNX export) is not part of the throughput
    report = {"dataset": ds.name, "encoder": enc.resolved.name, "backend": enc.backend,
              "load_seconds": round(time.perf_counter() - t0, 3), "splits": {}}
    if not as_json and not all(cached.values()):
        out.print(f"encoder {enc.resolved.name} ({enc.backend}) loaded in {report['load_seconds']:.1f} s")
    for split, sp in ds.splits.items():
        t0 = time.perf_counter()
        X = enc.embed(sp.texts, show_progress=not as_json)
        dt = time.perf_counter() - t0
        report["splits"][split] = {"rows": len(sp), "dim": int(X.shape[1]), "seconds": round(dt, 3), "cached": cached[split],
                                   "sentences_per_s": round(len(sp) / dt, 1) if dt > 0 else None}
        if not as_json:
            out.print(f"{split:>5}: {len(sp):>6} texts -> {X.shape[1]}-d in {dt:6.2f} s "
                      f"({'from cache' if cached[split] else f'{len(sp) / max(dt, 1e-9):,.0f} sentences/s'})")
    report["cache"] = str(enc.cache.root)
    if as_json:
        _print_json(report)


@app.command("demo")
def demo(dataset: str = typer.Option("trec", "--dataset", help="Dataset to embed.")) -> None:
    """Print the dataset table, then embed one dataset with the default encoder."""
    datasets_list(as_json=False)
    shipped = [s.name for s in list_datasets(include_online_only=False) if not s.is_flat]
    for n in shipped:
        if n == dataset:
            continue
        try:
            out.print(stats_table(load_dataset(n).stats()))
        except FractalError as e:
            err.print(f"[yellow]skip {n}: {e}[/yellow]")
    out.print(stats_table(load_dataset(dataset).stats()))
    embed(dataset, "minilm-l6", "auto", 32, "text", None, "error", False)


def _warn_one_line(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    err.print(f"[yellow]warning:[/yellow] {message}")


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: one-line errors for expected failures."""
    import click

    warnings.showwarning = _warn_one_line
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        app(args=argv, standalone_mode=False)
    except FractalError as e:
        err.print(f"[red]error:[/red] {e}", soft_wrap=True)
        return 2
    except click.exceptions.ClickException as e:
        e.show()
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("aborted")
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
