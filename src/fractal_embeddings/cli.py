"""The ``fractal`` command line: argument parsing and printing only; the work is in the library.

Errors the library raises on purpose (:class:`~fractal_embeddings.errors.FractalError`) print as one
line ``error: ...`` on stderr with exit status 2; warnings print as ``warning: ...``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .data import get_data_home, list_datasets, load_dataset
from .errors import FractalError
from .extras import extra_of, require

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset
    from .records import RunRecord

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


def _levels(levels: str | None) -> tuple[str, ...] | None:
    return tuple(x.strip() for x in levels.split(",") if x.strip()) if levels else None


def _load(name: str, text: str, levels: str | None, on_conflict: str, include_oos: bool = False) -> TaxonomyDataset:
    opts: dict[str, Any] = {"include_oos": True} if include_oos else {}
    return load_dataset(name, _levels(levels), text=text, on_conflict=on_conflict, progress=True, **opts)


def _device(device: str) -> str:
    """``--device`` resolved and checked before any work (one line for a device this machine lacks)."""
    from .devices import resolve_device

    return resolve_device(device)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(f"fractal-embeddings {__version__}")
        raise typer.Exit()


@datasets_app.command("list")
def datasets_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The built-in datasets, their levels, their data's license and whether their files are in the data home."""
    home = get_data_home()
    rows: list[dict[str, Any]] = []
    for s in list_datasets():
        present = all((home / s.folder / f.path).is_file() for f in s.files)
        rows.append(
            {
                "name": s.name,
                "title": s.title,
                "levels": list(s.default_levels),
                "all_levels": list(s.levels),
                "flat": s.is_flat,
                "online_only": s.online_only,
                "license": s.license or None,
                "files_present": present,
            }
        )
    if as_json:
        _print_json({"data_home": str(home), "datasets": rows})
        return
    t = Table(title=f"datasets (data home: {home})")
    for c in ("name", "levels", "files", "license", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["name"],
            " -> ".join(r["levels"]),
            "yes" if r["files_present"] else "no",
            r["license"] or ("see its source" if r["online_only"] else "none stated"),
            r["title"],
        )
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
        t.add_row(
            f"L{i} {lv['name']}",
            str(lv["n_classes"]),
            f"{ent[i][0]} = {ent[i][1]:.3f}",
            "" if br[i] is None else f"{br[i]:.2f}",
        )
    t.caption = "splits: " + ", ".join(f"{k}={v}" for k, v in st["splits"].items())
    return t


@datasets_app.command("stats")
def datasets_stats(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
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


@taxonomy_app.command("induce")
def taxonomy_induce(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    out_path: str = typer.Option(..., "--out", help="The .csv file to write (text, split, every level)."),
    k: str = typer.Option(..., "--k", help="Number of groups, or 'auto' (the stated silhouette rule)."),
    level: str | None = typer.Option(None, "--level", help="The level to group [default: the finest]."),
    method: str = typer.Option("ward", "--method", help="ward (on normalised centroids) or average (cosine)."),
    column: str | None = typer.Option(None, "--name", help="Name of the new column [default: LEVEL_groupK]."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = DeviceOpt,
) -> None:
    """Group the classes of a level into K coarse groups by clustering their train-split centroids
    under the frozen encoder; write the dataset with the induced level as a new column."""
    device = _device(device)
    require("data", "fractal taxonomy induce (it writes a CSV table)", ("pandas",))
    from .data.induce import (
        METHODS,
        induce_level,
        induced_columns,
        with_induced_level,
        write_induced_csv,
    )
    from .encoders import Encoder
    from .validation import check_output_file

    k_value: int | str = k.strip().lower()
    if k_value != "auto":
        try:
            k_value = int(k)
        except ValueError:
            raise FractalError(f"--k must be a number of groups or 'auto', got {k!r}") from None
    if method not in METHODS:
        raise FractalError(f"unknown --method {method!r}; use one of {', '.join(METHODS)}")
    if Path(name).exists() and Path(out_path).resolve() == Path(name).resolve():
        raise FractalError(f"--out {out_path} is the input file; write the induced file under another name")
    check_output_file(out_path, overwrite)  # before the encoding
    ds = _load(name, text, levels, on_conflict)
    enc = Encoder(model, device=device)
    induced = induce_level(ds, level=level, k=k_value, method=method, encoder=enc, name=column)
    info = with_induced_level(ds, induced).info["variant"]
    path = write_induced_csv(ds, induced, out_path, overwrite=overwrite)
    report = {
        "dataset": ds.name,
        "out": str(path),
        "rows": {s: len(sp) for s, sp in ds.splits.items()},
        "columns": induced_columns(ds, induced),
        **info,
    }
    if as_json:
        _print_json(report)
        return
    auto = f" (auto: best mean silhouette {max(induced.auto['silhouette'].values()):.3f})" if induced.auto else ""
    out.print(
        f"{ds.name}: {induced.level} ({len(induced.fine_classes)} classes, {induced.train_rows:,} train rows) -> "
        f"{induced.name}: k = {induced.k}{auto}, {method} linkage; group sizes {induced.sizes()}",
        soft_wrap=True,
        markup=False,
    )
    for up, a in info["agreement"].items():
        out.print(f"  agreement with the published level {up}: ARI {a['ari']:.3f}, NMI {a['nmi']:.3f}", markup=False)
    for g, members in list(info["groups"].items())[:5]:
        more = f", ... (+{len(members) - 6})" if len(members) > 6 else ""
        out.print(f"  {g}: {', '.join(members[:6])}{more}", soft_wrap=True, markup=False)
    out.print(
        f"wrote {path} ({sum(report['rows'].values()):,} rows); train on it with `fractal train {path} "
        f"--levels {induced.name},{induced.level}`",
        soft_wrap=True,
        markup=False,
    )


@app.command("embed")
def embed(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder."),
    backend: str = typer.Option("auto", "--backend", help="auto, onnx or sentence-transformers."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    executor: str | None = typer.Option(
        None, "--executor", help="Spread the encoding over workers: local (processes) or ray."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="With --executor: worker processes / CPUs of a local Ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="With --executor ray: an existing cluster."),
    device: str = DeviceOpt,
) -> None:
    """Fill the embedding cache for every split of a dataset; print sentences/s."""
    device = _device(device)
    from .encoders import Encoder, embed_sharded
    from .executors import get_executor

    ds = _load(name, text, levels, on_conflict)
    enc = Encoder(model, backend=backend, batch_size=batch_size, device=device)
    pool = get_executor(executor, workers=workers, ray_address=ray_address) if executor else None
    cached = {split: enc.is_cached(sp.texts) for split, sp in ds.splits.items()}
    t0 = time.perf_counter()
    if not all(cached.values()) and pool is None:
        enc.load()  # model load (and the one-time ONNX export) is not part of the throughput
    report: dict[str, Any] = {
        "dataset": ds.name,
        "encoder": enc.resolved.name,
        "backend": enc.backend,
        "device": enc.device,
        "load_seconds": round(time.perf_counter() - t0, 3),
        "splits": {},
    }
    if not as_json and not all(cached.values()):
        out.print(f"encoder {enc.resolved.name} ({enc.backend}) loaded in {report['load_seconds']:.1f} s")
    for split, sp in ds.splits.items():
        t0 = time.perf_counter()
        if pool is not None:
            X = embed_sharded(enc, sp.texts, pool, n_shards=4 * workers)
        else:
            X = enc.embed(sp.texts, show_progress=not as_json)
        dt = time.perf_counter() - t0
        report["splits"][split] = {
            "rows": len(sp),
            "dim": int(X.shape[1]),
            "seconds": round(dt, 3),
            "cached": cached[split],
            "sentences_per_s": round(len(sp) / dt, 1) if dt > 0 else None,
        }
        if not as_json:
            out.print(
                f"{split:>5}: {len(sp):>6} texts -> {X.shape[1]}-d in {dt:6.2f} s "
                f"({'from cache' if cached[split] else f'{len(sp) / max(dt, 1e-9):,.0f} sentences/s'})"
            )
    report["cache"] = str(enc.cache.root)
    if pool is not None:
        pool.close()
        report["executor"] = pool.name
    if as_json:
        _print_json(report)


def _eval_rows(value: str) -> int | None:
    if value.strip().lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise FractalError(f"--eval-rows must be a number of rows or 'all', got {value!r}") from None
    if n < 2:
        raise FractalError(f"--eval-rows must be >= 2 (leave-one-out k-NN needs neighbours), got {n}")
    return n


def accuracy_table(record: RunRecord, title: str) -> Table:
    """Prefix x level accuracy of a run (a :class:`~fractal_embeddings.records.RunRecord`), with the
    untrained encoder's beside it."""
    levels = record.level_names
    t = Table(title=title)
    t.add_column("dims", justify="right")
    for name in levels:
        t.add_column(name, justify="right")
    for name in levels:
        t.add_column(f"{name} (untrained)", justify="right", style="dim")
    base = record.baseline.accuracy
    for dims, row in sorted(record.accuracy.items(), key=lambda kv: int(kv[0])):
        b = base.get(dims, {})
        t.add_row(dims, *(f"{row[n]:.4f}" for n in levels), *(f"{b[n]:.4f}" if n in b else "-" for n in levels))
    return t


def _steer_line(record: RunRecord) -> str:
    st, base = record.steerability, record.baseline.steerability
    parts = "  ".join(f"{k} = {'n/a' if v is None else format(v, '+.4f')}" for k, v in st.items())
    return f"{parts}   (untrained encoder: S = {base['S']:+.4f})"


def _check_train_options(method: str, overrides: dict) -> None:
    """The method and the trainer options typed on the command line, checked (one line naming the flag)."""
    from .objectives import get_objective
    from .training import TrainConfig

    objective = get_objective(method)
    try:
        TrainConfig.resolve(objective.trainer_defaults, overrides)
    except FractalError as e:
        flag = next((f"--{k.replace('_', '-')}" for k in overrides if str(e).startswith(f"{k} ")), None)
        raise FractalError(f"{e}; fix {flag}" if flag else str(e)) from None


def _check_run_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """``--out`` of a run, checked before any work (:func:`~fractal_embeddings.atomic.check_output_dir`)."""
    from .records import PARTIAL_FILES, RECORD_FILE
    from .validation import check_output_dir

    return check_output_dir(path, overwrite=overwrite, marker=RECORD_FILE, what="a run", partial=PARTIAL_FILES)


@app.command("train")
def train_cmd(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    method: str = typer.Option("fractal", "--method", help="Objective; see `fractal methods`."),
    seed: int = typer.Option(42, "--seed", min=0, max=SEED_MAX, help="Training seed (0 to 2**32 - 1)."),
    out_dir: str | None = typer.Option(None, "--out", help="Run directory [default: runs/<dataset>-<method>-seed<N>]."),
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder."),
    backend: str = typer.Option("auto", "--backend", help="auto, onnx or sentence-transformers."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    dim: int = typer.Option(256, "--dim", min=1, help="Output dims of the head (a multiple of --block-dim)."),
    block_dim: int = typer.Option(64, "--block-dim", min=1, help="Dims per block; prefix j = the first j blocks."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the method's epochs."),
    lr: float | None = typer.Option(None, "--lr", help="Override the method's learning rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Override the method's batch size."),
    eval_rows: str = typer.Option("2000", "--eval-rows", help="Test rows scored (stratified sample) or 'all'."),
    eval_seed: int = typer.Option(0, "--eval-seed", min=0, max=SEED_MAX, help="Seed of the test-row sample."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    device: str = DeviceOpt,
) -> None:
    """Train a head on cached encoder vectors, score every prefix at every level, save the run."""
    device = _device(device)
    from .encoders import Encoder
    from .heads import HeadConfig
    from .runs import train

    rows = _eval_rows(eval_rows)
    n_blocks = HeadConfig.from_dims(dim=dim, block_dim=block_dim).n_blocks
    overrides = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)) if v is not None}
    _check_train_options(method, overrides)  # before the dataset is loaded, let alone encoded
    if out_dir is not None:
        _check_run_dir(out_dir, overwrite)
    ds = _load(name, text, levels, on_conflict)
    target = _check_run_dir(out_dir or f"runs/{ds.name}-{method}-seed{seed}", overwrite)  # before training
    enc = Encoder(model, backend=backend, device=device)

    def progress(entry: dict) -> None:
        if not as_json:
            val = f"  val k-NN {entry['val_knn']:.4f}" if "val_knn" in entry else ""
            err.print(f"epoch {entry['epoch']}: loss {entry['train_loss']:.4f}{val}")

    run = train(
        ds,
        method,
        seed=seed,
        encoder=enc,
        n_blocks=n_blocks,
        block_dim=block_dim,
        train_options=overrides,
        eval_rows=rows,
        eval_seed=eval_seed,
        progress=progress,
        device=enc.device,
    )
    target = run.save(target, overwrite=overwrite)
    _print_run(run.record, target, as_json)


def _print_run(rec: RunRecord, target: Path, as_json: bool, kind: str = "", load_hint: str = "") -> None:
    """What `train` and `finetune` print: the record as JSON, or the accuracy table and S."""
    if as_json:
        _print_json(rec.to_dict())
        return
    out.print(
        accuracy_table(
            rec,
            f"{rec.dataset.name} / {rec.method}{kind} / seed {rec.seed}: leave-one-out "
            f"{rec.eval.k}-NN on {rec.eval.n_rows} {rec.eval.split} rows",
        )
    )
    out.print(_steer_line(rec))
    out.print(
        f"train {rec.timing['train_s']:.1f} s, eval {rec.timing['eval_s']:.1f} s; saved to {target}{load_hint}",
        soft_wrap=True,
    )


@app.command("finetune")
def finetune_cmd(
    name: str = typer.Argument(..., help="Built-in name or a .csv/.jsonl/.parquet file."),
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder to fine-tune: short name, hub id or folder."),
    method: str = typer.Option("fractal", "--method", help="Objective (any method that trains a head)."),
    seed: int = typer.Option(42, "--seed", min=0, max=SEED_MAX, help="Training seed (0 to 2**32 - 1)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Passes over the training rows."),
    encoder_lr: float = typer.Option(2e-5, "--encoder-lr", help="Learning rate of the encoder."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate of the head."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    max_train_rows: int | None = typer.Option(
        None, "--max-train-rows", min=2, help="Cap the training rows (stratified)."
    ),
    out_dir: str | None = typer.Option(
        None, "--out", help="Run directory [default: runs/<dataset>-<method>-finetuned-seed<N>]."
    ),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    dim: int = typer.Option(256, "--dim", help="Output dims of the head (a multiple of --block-dim)."),
    block_dim: int = typer.Option(64, "--block-dim", help="Dims per block; prefix j = the first j blocks."),
    eval_rows: str = typer.Option("2000", "--eval-rows", help="Test rows scored (stratified sample) or 'all'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    device: str = DeviceOpt,
) -> None:
    """Fine-tune the encoder and a steerable head end to end (sentence-transformers' trainer); the run
    directory is a sentence-transformers folder plus a run record."""
    from .finetune import finetune
    from .heads import HeadConfig
    from .records import RECORD_FILE
    from .validation import check_output_dir, check_seed

    device = _device(device)
    check_seed(seed)
    rows = _eval_rows(eval_rows)
    n_blocks = HeadConfig.from_dims(dim=dim, block_dim=block_dim).n_blocks
    ds = _load(name, text, levels, on_conflict)
    target = check_output_dir(
        out_dir or f"runs/{ds.name}-{method}-finetuned-seed{seed}",
        overwrite=overwrite,
        marker=RECORD_FILE,
        what="a run",
    )
    run = finetune(
        ds,
        method,
        model=model,
        seed=seed,
        epochs=epochs,
        lr=lr,
        encoder_lr=encoder_lr,
        batch_size=batch_size,
        max_train_rows=max_train_rows,
        n_blocks=n_blocks,
        block_dim=block_dim,
        device=device,
        eval_rows=rows,
        show_progress=not as_json,
    )
    target = run.save(target, overwrite=overwrite)
    _print_run(
        run.record,
        target,
        as_json,
        " fine-tuned",
        f" (SentenceTransformer({str(target)!r}, trust_remote_code=True, truncate_dim=...))",
    )


@app.command("eval")
def eval_cmd(
    run_dir: str = typer.Argument(..., help="A run directory written by `fractal train`."),
    eval_rows: str | None = typer.Option(None, "--eval-rows", help="Test rows or 'all' [default: as in the record]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = DeviceOpt,
) -> None:
    """Re-score saved weights on the run's dataset and encoder (checked against the record)."""
    device = _device(device)
    from rich.markup import escape

    from .evaluation import compare_scores, scored_as_record
    from .runs import evaluate, load_run

    run = load_run(run_dir)
    res = evaluate(run, eval_rows="record" if eval_rows is None else _eval_rows(eval_rows), device=device)
    same_rows = scored_as_record(run.record, res)
    diffs = compare_scores(run.record, res) if same_rows else []
    res["matches_record"] = (not diffs) if same_rows else None  # None: other rows than the record's, not compared
    res["differences"] = diffs
    if diffs:
        more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
        err.print(
            f"[yellow]warning:[/yellow] the re-score of {escape(run_dir)} differs from its record in {len(diffs)} "
            f"value(s): {escape('; '.join(diffs[:3]))}{more}; the weights, data or encoder changed since it was "
            "trained (or the record was edited)",
            soft_wrap=True,
        )
    if as_json:
        _print_json(res)
        return
    from .records import Scores

    rec = run.record.replace(
        scores=Scores(res["accuracy"], res["steerability"]),
        baseline=Scores(res["baseline"]["accuracy"], res["baseline"]["steerability"]),
    )
    out.print(accuracy_table(rec, f"{rec.run_id}: {res['eval']['n_rows']} {res['eval']['split']} rows"))
    out.print(_steer_line(rec))
    if same_rows:
        out.print("matches the record (same rows and k)" if not diffs else "differs from the record (see the warning)")
    else:
        out.print("scored on other rows than the record's: not compared with it")


@app.command("export")
def export_cmd(
    run_dir: str = typer.Argument(..., help="A run directory written by `fractal train`."),
    out_dir: str = typer.Argument(..., help="The sentence-transformers model folder to write."),
    dims: int | None = typer.Option(
        None,
        "--dims",
        help="Export the first DIMS dims only, a multiple of the block "
        "dim (default: all; a block-normed head exports exactly only "
        "at its first block: --dims 64).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model exported to OUT_DIR before."),
    portable: bool = typer.Option(
        False,
        "--portable",
        help="Built-in sentence-transformers modules only (no "
        "trust_remote_code); exact only where Dense layers can be.",
    ),
) -> None:
    """Write a run as a sentence-transformers model folder (encoder + head, model card from the record),
    exact at every prefix (load with trust_remote_code=True), checked against the run before it is
    moved into place."""
    from .export import EXPORT_FILE, export_sentence_transformers

    path = export_sentence_transformers(run_dir, out_dir, overwrite=overwrite, dims=dims, portable=portable)
    info = json.loads((path / EXPORT_FILE).read_text())
    worst = max(v for k, v in info["check"].items() if k != "raw")
    load = "" if portable else ", trust_remote_code=True"
    out.print(
        f"exported {info['run_id']} to {path}: {info['dims']}-d (truncate_dim = a multiple of "
        f"{info['block_dim']}); matches the run to {worst:.1e} (normalised prefixes); load with "
        f"SentenceTransformer({str(path)!r}{load}); model card in {path / 'README.md'}",
        soft_wrap=True,
    )


def _log(message: str) -> None:
    """Progress lines of library code: printed as-is (``[mrl]`` in a variant name is not markup)."""
    err.print(message, markup=False)


def _seed_list(text: str) -> tuple[int, ...]:
    from .validation import check_seed

    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise FractalError(f"--seeds must be comma-separated integers, e.g. 42,123; got {text!r}") from None
    return tuple(check_seed(v, "each of --seeds") for v in values)


@app.command("experiment")
def experiment_cmd(
    name: str = typer.Argument(..., help="main, ablation, objective-study, ... or all (`fractal experiment list`)."),
    out_dir: str = typer.Option("results", "--out", help="Results directory; runs go to OUT/NAME (OUT/NAME-quick)."),
    quick: bool = typer.Option(False, "--quick", help="A small grid on subsets (minutes): a smoke run."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (local) or CPUs of a local Ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="An existing Ray cluster (e.g. auto)."),
    datasets: str | None = typer.Option(None, "--datasets", help="Comma-separated subset of the datasets."),
    seeds: str | None = typer.Option(None, "--seeds", help="Comma-separated seeds."),
) -> None:
    """Run an experiment's grid into a resumable run store (a killed run resumes where it stopped)."""
    from .experiments import EXPERIMENTS, get_experiment, run_experiment

    if name == "list":
        for n in EXPERIMENTS:
            doc = (get_experiment(n).__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            doc = doc.replace(f"``{n}``: ", "").replace("``", "")
            out.print(f"[bold]{n}[/bold]: {doc}", soft_wrap=True)
        return
    # the programme's grids encode with the offline encoders; the search-side ones search with FAISS
    require("encoders", f"fractal experiment {name}")
    if name in ("all", "retrieval", "pareto", "search", "latency"):
        require("index", f"fractal experiment {name}")
    ds = tuple(x.strip() for x in datasets.split(",")) if datasets else None
    sd = _seed_list(seeds) if seeds else None
    run_experiment(
        name,
        out_dir,
        quick=quick,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
        datasets=ds,
        seeds=sd,
        log=_log,
    )


@app.command("report")
def report_cmd(
    target: str = typer.Argument("results", help="A results directory, or objective-study."),
    out_path: str | None = typer.Option(None, "--out", help="Where to write (default: TARGET/REPORT.md)."),
    results: str = typer.Option(
        "results/objective-study", "--results", help="objective-study only: the study's results directory."
    ),
    fmt: str = typer.Option("md", "--format", help="md, or latex: also every table as LaTeX (booktabs) in tables/."),
) -> None:
    """Write a report (tables + figures) generated from run records only."""
    require("report", "fractal report")
    if target == "objective-study":
        from .report.objective_study import write_report

        path = write_report(results, out_path or "docs/objective-study.md")
        err.print(f"wrote {path} (and {path.with_suffix('.png').name})")
        return
    from .report import write_report as write_main_report

    if fmt not in ("md", "latex"):
        raise FractalError(f"--format must be md or latex, got {fmt!r}")
    path = write_main_report(target, out_path, formats=("md", "latex") if fmt == "latex" else ("md",))
    err.print(f"wrote {path} (figures in {path.parent / 'figures'})")


@app.command("methods")
def methods_cmd() -> None:
    """The training methods (objectives) and what each trains."""
    from .objectives import OBJECTIVES

    t = Table(title="methods")
    t.add_column("method")
    t.add_column("head")
    t.add_column("what it trains")
    for name, cls in OBJECTIVES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0].split(": ", 1)[-1].replace("``", "")
        t.add_row(name, str(cls.head_kind or "-"), doc)
    out.print(t)


@app.command("demo")
def demo(
    out_dir: str = typer.Option("runs/demo", "--out", help="Where the runs, REPORT.md and figures go."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes."),
) -> None:
    """A quick main benchmark: CLINC150 and TREC, 2 seeds, fractal / v5-paper vs mrl; prints the table
    and writes a report with figures (a few minutes on a laptop CPU, encoding included)."""
    from .experiments import run_experiment
    from .report import write_report
    from .report.frame import load_frame
    from .report.tables import pm

    datasets_list(as_json=False)
    t0 = time.perf_counter()
    run_experiment("main", out_dir, quick=True, workers=workers, log=_log)
    path = write_report(out_dir)
    df = load_frame(out_dir, experiments=("main-quick",))
    nb = int(df["n_blocks"].max())
    t = Table(title="quick main benchmark: steerability S and k-NN accuracy (mean ± SD over seeds)")
    for c in ("dataset", "method", "seeds", "S", "L0@j1", f"L1@j{nb}"):
        t.add_column(c, justify="left" if c in ("dataset", "method") else "right", no_wrap=True)
    rank = {"fractal": 0, "v5-paper": 1, "mrl": 2}
    df = df.assign(_r=df["method"].map(rank).fillna(9)).sort_values(["dataset", "_r"])
    for (d, m), g in df.groupby(["dataset", "method"], sort=False):
        t.add_row(d, m, str(len(g)), pm(g["S"]), pm(g["L0@j1"], signed=False), pm(g[f"L1@j{nb}"], signed=False))
    out.print(t)
    out.print(f"L0@j1: coarse k-NN accuracy of the first block; L1@j{nb}: fine accuracy of the full vector.")
    out.print(f"report: {path} (figures in {path.parent / 'figures'}); {time.perf_counter() - t0:.0f} s")


@index_app.command("build")
def index_build(
    run_dir: str = typer.Argument(..., help="A run directory written by `fractal train`."),
    corpus: str = typer.Argument(
        ..., help="A built-in dataset name, or a .txt (one text per line) / .csv / .tsv / .jsonl / .parquet file."
    ),
    out_dir: str = typer.Option(..., "--out", help="Index directory to write."),
    kind: str = typer.Option("flat", "--kind", help="flat (exact) or hnsw (approximate)."),
    m: int = typer.Option(32, "--m", min=2, help="hnsw: graph degree M."),
    ef_construction: int = typer.Option(200, "--ef-construction", min=1, help="hnsw: efConstruction."),
    ef_search: int = typer.Option(64, "--ef-search", min=1, help="hnsw: efSearch (default search breadth)."),
    split: str | None = typer.Option(
        None, "--split", help="Dataset split to index [default: train]; files: rows of this 'split' value."
    ),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    id_column: str | None = typer.Option(None, "--id", help="Files: the id column [default: row number]."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an index already in --out (qdrant: and rebuild a collection of another run).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the index metadata as JSON."),
    device: str = DeviceOpt,
    backend: str = typer.Option("faiss", "--backend", help="faiss (files in --out) or qdrant (a Qdrant collection)."),
    qdrant_path: str | None = typer.Option(
        None, "--qdrant-path", help="qdrant: the folder of an embedded Qdrant (local mode, no server)."
    ),
    qdrant_url: str | None = typer.Option(
        None, "--qdrant-url", help="qdrant: a Qdrant server or cluster, e.g. http://localhost:6333."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", help="qdrant: the server's api key (default: $QDRANT_API_KEY); never written to --out."
    ),
    collection: str | None = typer.Option(
        None, "--collection", help="qdrant: the collection name (default: the name of --out)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="qdrant: points per upsert request."),
) -> None:
    """Encode a corpus with a trained run and write a zoom index (one FAISS index per prefix, or a
    Qdrant collection with a named vector per prefix: --backend qdrant)."""
    device = _device(device)
    from .index import BACKENDS, KINDS, build_from_source, check_target

    check_target(out_dir, overwrite)  # before the encoding, not after
    if backend not in BACKENDS:
        raise FractalError(f"unknown --backend {backend!r}; use faiss (the default) or qdrant")
    require(*(("qdrant", "--backend qdrant") if backend == "qdrant" else ("index", "a FAISS zoom index")))
    if kind not in KINDS:
        raise FractalError(f"unknown --kind {kind!r}; use flat (exact) or hnsw (approximate)")
    if split is not None and not split.strip():
        raise FractalError("--split is empty; give a split name (train, val, test) or leave it out")
    qdrant_opts = {
        "--qdrant-path": qdrant_path,
        "--qdrant-url": qdrant_url,
        "--api-key": api_key,
        "--collection": collection,
    }
    options: dict = {}
    if backend == "qdrant":
        options = _qdrant_build_options(
            run_dir,
            out_dir,
            qdrant_path,
            qdrant_url,
            api_key,
            collection,
            kind,
            m,
            ef_construction,
            ef_search,
            overwrite,
        )
        options |= {"overwrite": overwrite, "batch_size": batch_size}
    elif any(v is not None for v in qdrant_opts.values()):
        given = ", ".join(k for k, v in qdrant_opts.items() if v is not None)
        raise FractalError(f"{given} applies to --backend qdrant; add --backend qdrant or drop it")
    t0 = time.perf_counter()
    ix = build_from_source(
        run_dir,
        corpus,
        split=split,
        text=text,
        levels=_levels(levels),
        id_column=id_column,
        kind=kind,
        m=m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        show_progress=not as_json,
        device=device,
        backend=backend,
        **options,
    )
    try:
        path = ix.save(out_dir, overwrite=overwrite)  # after the collection is complete
        info = {**ix.info(), "path": str(path), "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        ix.close()
    if as_json:
        _print_json(info)
        return
    params = ", ".join(f"{k}={v}" for k, v in ix.params.items())
    where = getattr(ix, "target", None)
    store = f"{where.describe()}" if where is not None else getattr(ix, "faiss_type", "")
    out.print(
        f"indexed {len(ix)} texts with run {info['run']['run_id']}: {ix.kind} ({store}"
        f"{', ' + params if params else ''}) at {'/'.join(map(str, ix.dims))} dims; saved to {path} "
        f"({info['seconds']:.1f} s)",
        markup=False,
    )


def _qdrant_build_options(
    run_dir: str,
    out_dir: str,
    path: str | None,
    url: str | None,
    api_key: str | None,
    collection: str | None,
    kind: str,
    m: int,
    ef_construction: int,
    ef_search: int,
    overwrite: bool,
) -> dict:
    """``--backend qdrant``: the target, checked with the run before any work (the server answers, the
    collection is absent or was built by this run with these settings, or ``--overwrite``)."""
    from .index import API_KEY_ENV, QdrantIndex, QdrantTarget

    if url is not None and api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    name = collection if collection is not None else (Path(out_dir).resolve().name or "fractal")
    target = QdrantTarget(name, path=path, url=url, api_key=api_key)
    probe = QdrantIndex(run_dir, target, kind=kind, m=m, ef_construction=ef_construction, ef_search=ef_search)
    try:
        probe.check_collection(overwrite)
    finally:
        probe.close()
    return {"target": target}


@app.command("search")
def search_cmd(
    index_dir: str = typer.Argument(..., help="An index directory written by `fractal index build`."),
    query: str = typer.Argument(..., help="The query text."),
    zoom: str = typer.Option("fine", "--zoom", help="coarse (first block), fine (all dims) or a prefix length."),
    k: int = typer.Option(10, "-k", "--top-k", help="Hits to return."),
    mode: str = typer.Option(
        "zoom", "--mode", help="zoom (k-NN at --zoom), funnel (first block, re-ranked at --zoom) or routed."
    ),
    candidates: int | None = typer.Option(
        None, "--candidates", help="funnel: items re-ranked; routed: neighbours voting the class (default: 10 x k)."
    ),
    route_classes: int = typer.Option(
        1, "--route-classes", help="routed: 2 also searches the runner-up class when the vote is close."
    ),
    ef_search: int | None = typer.Option(None, "--ef-search", min=1, help="hnsw: search breadth for this query."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="A Qdrant index on a server: its api key (default: $QDRANT_API_KEY)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = DeviceOpt,
) -> None:
    """The nearest items of a query at a zoom level, with their labels (modes: zoom, funnel, routed)."""
    device = _device(device)
    from rich.markup import escape

    from .index import check_mode, load_index

    check_mode(mode)  # an unknown mode before the index is opened
    ix = load_index(index_dir, device=device, api_key=api_key)
    try:
        res = ix.search(
            query, k=k, zoom=zoom, mode=mode, candidates=candidates, route_classes=route_classes, ef_search=ef_search
        )
    finally:
        ix.close()
    route = res.routes[0] if res.routes else None
    if as_json:
        doc = {"index": index_dir, "query": query, "mode": res.mode, "zoom": res.zoom, "k": k}
        if res.candidates is not None:
            doc["candidates"] = res.candidates
        if route is not None:
            doc["predicted"] = route.as_dict()
        _print_json({**doc, "hits": [h.as_dict() for h in res[0]]})
        return
    how = "" if res.mode == "zoom" else f", {res.mode} over {res.candidates} candidates"
    t = Table(title=escape(f"{query!r} at {res.zoom} dims ({ix.kind}, {len(ix)} items{how})"))
    if route is not None:
        t.caption = escape(
            f"routed to {' + '.join(route.classes)} ({route.level}; {route.votes} of {route.voters} votes"
            + (f", runner-up {route.runner_up}: {route.runner_up_votes})" if route.runner_up else ")")
        )
    for c in ("rank", "id", "score"):
        t.add_column(c, justify="right")
    t.add_column("text")
    for name in ix.level_names:
        t.add_column(escape(name))
    for h in res[0]:
        labels = [escape(str((h.labels or {}).get(n, ""))) for n in ix.level_names]
        t.add_row(str(h.rank), escape(str(h.id)), f"{h.score:.4f}", escape(h.text), *labels)
    out.print(t)


@app.command("explore")
def explore_cmd(
    path: str = typer.Argument(
        ..., help="A run directory (`fractal train --out`) or an index directory (`fractal index build --out`)."
    ),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."),
    corpus: str | None = typer.Option(
        None,
        "--corpus",
        help="Run directory only: a built-in dataset name or a .txt / .csv / .tsv / .jsonl / .parquet file "
        "(default: the run's dataset).",
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Dataset split (default: test); files: the rows of this 'split' value (default: all rows).",
    ),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    run_dir: str | None = typer.Option(
        None, "--run", help="Index directory only: refuse it unless it was built with this run."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Run directory: encode the corpus again instead of reusing the cached index."
    ),
    device: str = DeviceOpt,
    allow_host: list[str] | None = typer.Option(
        None,
        "--allow-host",
        metavar="NAME",
        help="Also answer requests for this host name (repeatable; '*': any). "
        "By default only 127.0.0.1, localhost, ::1 and --host.",
    ),
) -> None:
    """Serve a local web page over a trained run and its corpus: search at every zoom, a corpus map, accuracy per
    prefix."""
    device = _device(device)
    from .explore import Explorer, bind, check_installed, create_app, open_index, serve, url_of

    check_installed()
    sock = bind(host, port)  # before any encoding: a port in use fails at once
    try:
        ix, source = open_index(
            path,
            corpus=corpus,
            split=split,
            text=text,
            levels=_levels(levels),
            run=run_dir,
            use_cache=not no_cache,
            show_progress=True,
            log_fn=_log,
            device=device,
        )
        explorer = Explorer(ix, source)
        explorer.warm()
        web = create_app(explorer, allowed_hosts=[host, *(allow_host or [])])
        if host not in ("127.0.0.1", "localhost", "::1"):
            err.print(
                f"[yellow]warning:[/yellow] listening on {host}: the explorer has no authentication, anyone who "
                "can reach this address can query it"
            )
        err.print(
            f"fractal explore: {len(ix)} items, run {ix.run.record.run_id}; open {url_of(sock)} (Ctrl+C to stop)",
            markup=False,
            soft_wrap=True,
        )
        serve(web, sock)
    finally:
        sock.close()


@app.command("predict")
def predict_cmd(
    name: str | None = typer.Argument(None, help="Built-in dataset name or a CSV/TSV/JSONL/Parquet file."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder: short name, hub id or folder."),
    fit_file: str | None = typer.Option(None, "--fit", help="A predictor fit file (default: the shipped one)."),
    refit: str | None = typer.Option(
        None, "--refit", help="Fit (and choose) the predictor on RESULTS/main and write --out."
    ),
    out_path: str | None = typer.Option(
        None, "--out", help="--refit: where to write the fit (default: the shipped file)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Estimate, before training, the S the default method will reach on a taxonomy."""
    require("report", "fractal predict (its fit is a statsmodels regression)", ("statsmodels",))
    from .encoders import Encoder
    from .predictor import FIT_FILE, fit_predictor, predict

    if refit:
        fit = fit_predictor(refit, out_path or FIT_FILE)
        nl = fit["nested_loo"]
        out.print(
            f"fitted on {len(fit['points'])} taxonomies ({fit['provenance']['records']} records): {fit['model']}, "
            f"coef {', '.join(f'{c:+.4f}' for c in fit['coef'])}; leave-one-taxonomy-out MAE {fit['loo']['mae']:.3f}, "
            f"nested (selection redone each time) {nl['mae']:.3f}, worst {nl['max_error']:.3f} ({nl['worst']}), "
            f"95% interval coverage {nl['coverage']:.0%} -> {out_path or FIT_FILE}",
            soft_wrap=True,
        )
        return
    if not name:
        raise FractalError("give a dataset name or file to predict for (or --refit RESULTS to refit the predictor)")
    res = predict(_load(name, text, levels, on_conflict), Encoder(model), fit_file)
    if as_json:
        _print_json(res)
        return
    f, x = res["fit"], res["features"]
    out.print(
        f"{res['dataset']}: predicted S for `{res['method']}` = {res['predicted_S']:+.3f} "
        f"(95% interval [{res['interval'][0]:+.3f}, {res['interval'][1]:+.3f}])",
        soft_wrap=True,
    )
    out.print(
        f"  from {', '.join(f'{k} = {x[k]:.3f}' for k in f['features'])} "
        f"({x['scored_rows']} {x['scored_split']} rows scored)"
        + (
            f"  [outside the fitted range of {', '.join(res['outside_fitted_range'])}: extrapolating]"
            if res["extrapolating"]
            else ""
        ),
        soft_wrap=True,
    )
    if not res["encoder_matches_fit"]:
        err.print(
            f"[yellow]warning:[/yellow] the predictor was fitted on {', '.join(f['encoder'])} records, not "
            f"{x['encoder']}: treat the estimate as a rough guide"
        )
    if not f["beats_mean"]:
        err.print(
            "[yellow]warning:[/yellow] out of sample (nested leave-one-taxonomy-out), this model predicted the "
            "held-out taxonomies worse than their mean did: treat the estimate as a rough guide"
        )
    out.print(
        f"  model {f['model']}, fit on {len(f['datasets'])} taxonomies; leave-one-taxonomy-out MAE "
        f"{f['nested_loo_mae']:.3f} with the model choice redone each time (worst {f['nested_loo_max_error']:.3f}, "
        f"interval coverage {f['nested_loo_coverage']:.0%}; predicting the mean: {f['mean_only_mae']:.3f})",
        soft_wrap=True,
    )


def _warn_one_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:  # the warnings.showwarning signature
    err.print(f"[yellow]warning:[/yellow] {message}")


def _click_classes(name: str) -> tuple[Any, ...]:  # exception classes from two copies of click
    """``name`` (ClickException, Abort, Exit, NoArgsIsHelpError) from click and from typer's own copy of
    click (typer >= 0.2x parses with it, so click's classes alone miss its usage errors)."""
    import click

    found = [getattr(click.exceptions, name, None)]
    try:
        from typer._click import exceptions as typer_click

        found.append(getattr(typer_click, name, None))
    except ImportError:  # pragma: no cover - a typer that uses click itself
        pass
    if name in ("Abort", "Exit"):
        found.append(getattr(typer, name, None))
    return tuple(c for c in found if isinstance(c, type))


def _error(message: str) -> None:
    """One ``error: ...`` line on stderr: newlines folded, markup in the message shown as typed."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(' '.join(str(message).split()))}", soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: every expected failure (a :class:`FractalError`, a usage error: an unknown
    option, a missing argument, a value of the wrong type) is one line ``error: ...`` naming the fix,
    with exit status 2, and no traceback."""
    warnings.showwarning = _warn_one_line
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        code = app(args=argv, prog_name="fractal", standalone_mode=False)
    except FractalError as e:
        _error(str(e))
        return 2
    except ModuleNotFoundError as e:  # an optional dependency no check above caught: name its extra
        extra = extra_of(e.name or "")
        if extra is None:
            raise
        _error(
            f'this command needs {e.name}, which the core install leaves out: pip install "fractal-embeddings[{extra}]"'
        )
        return 2
    except _click_classes("NoArgsIsHelpError") as e:  # `fractal` or `fractal index` alone: the help
        err.print(e.format_message(), markup=False, highlight=False)
        return 2
    except _click_classes("ClickException") as e:
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "fractal"
        _error(f"{e.format_message().rstrip().rstrip('.')}; see `{where} --help`")
        return 2
    except (*_click_classes("Abort"), KeyboardInterrupt):
        err.print("aborted")
        return 130
    except _click_classes("Exit") as e:
        return e.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
