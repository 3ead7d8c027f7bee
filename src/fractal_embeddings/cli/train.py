"""``fractal train|finetune|eval|methods``: train a head (or fine-tune the encoder), re-score a run,
list the methods."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ..errors import FractalError
from ..finetune_config import DEFAULT_RECIPE
from .common import (
    SEED_MAX,
    ConflictOpt,
    DeviceOpt,
    LevelsOpt,
    ModelOpt,
    NameArg,
    TextOpt,
    app,
    device_of,
    err,
    load,
    out,
    parse_eval_rows,
    print_json,
    writing,
)

if TYPE_CHECKING:
    from ..records import RunRecord

EvalRowsOpt = typer.Option("2000", "--eval-rows", help="Test rows scored (stratified sample) or 'all'.")
OverwriteRunOpt = typer.Option(False, "--overwrite", help="Replace a run already in --out.")
RecordJsonOpt = typer.Option(False, "--json", help="Print the run record as JSON.")


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


def steer_line(record: RunRecord) -> str:
    st, base = record.steerability, record.baseline.steerability
    parts = "  ".join(f"{k} = {'n/a' if v is None else format(v, '+.4f')}" for k, v in st.items())
    return f"{parts}   (untrained encoder: S = {base['S']:+.4f})"


def check_train_options(method: str, overrides: dict) -> None:
    """The method and the trainer options typed on the command line, checked by the trainer's own rule
    (:meth:`TrainConfig.resolve`) before the dataset is loaded; the error names the flag."""
    from ..objectives import get_objective
    from ..training import TrainConfig

    objective = get_objective(method)
    try:
        TrainConfig.resolve(objective.trainer_defaults, overrides)
    except FractalError as e:
        flag = next((f"--{k.replace('_', '-')}" for k in overrides if str(e).startswith(f"{k} ")), None)
        raise FractalError(f"{e}; fix {flag}" if flag else str(e)) from None


def check_run_dir(path: str | os.PathLike, overwrite: bool, partial: bool = True) -> Path:
    """``--out`` of a run, checked before any work (:func:`~fractal_embeddings.validation.check_output_dir`)."""
    from ..records import PARTIAL_FILES, RECORD_FILE
    from ..validation import check_output_dir

    return check_output_dir(
        path, overwrite=overwrite, marker=RECORD_FILE, what="a run", partial=PARTIAL_FILES if partial else ()
    )


def print_run(rec: RunRecord, target: Path, as_json: bool, kind: str = "", load_hint: str = "") -> None:
    """What `train` and `finetune` print: the record as JSON, or the accuracy table and S."""
    if as_json:
        print_json(rec.to_dict())
        return
    out.print(
        accuracy_table(
            rec,
            f"{rec.dataset.name} / {rec.method}{kind} / seed {rec.seed}: leave-one-out "
            f"{rec.eval.k}-NN on {rec.eval.n_rows} {rec.eval.split} rows",
        )
    )
    out.print(steer_line(rec))
    out.print(
        f"train {rec.timing['train_s']:.1f} s, eval {rec.timing['eval_s']:.1f} s; saved to {target}{load_hint}",
        soft_wrap=True,
    )


@app.command("train")
def train_cmd(
    name: str = NameArg,
    method: str = typer.Option("fractal", "--method", help="Objective; see `fractal methods`."),
    seed: int = typer.Option(42, "--seed", min=0, max=SEED_MAX, help="Training seed (0 to 2**32 - 1)."),
    out_dir: str | None = typer.Option(None, "--out", help="Run directory [default: runs/<dataset>-<method>-seed<N>]."),
    model: str = ModelOpt,
    backend: str = typer.Option("auto", "--backend", help="auto, onnx or sentence-transformers."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    dim: int = typer.Option(256, "--dim", min=1, help="Output dims of the head (a multiple of --block-dim)."),
    block_dim: int = typer.Option(64, "--block-dim", min=1, help="Dims per block; prefix j = the first j blocks."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the method's epochs."),
    lr: float | None = typer.Option(None, "--lr", help="Override the method's learning rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Override the method's batch size."),
    eval_rows: str = EvalRowsOpt,
    eval_seed: int = typer.Option(0, "--eval-seed", min=0, max=SEED_MAX, help="Seed of the test-row sample."),
    overwrite: bool = OverwriteRunOpt,
    as_json: bool = RecordJsonOpt,
    device: str = DeviceOpt,
) -> None:
    """Train a head on cached encoder vectors, score every prefix at every level, save the run."""
    device = device_of(device)
    from ..encoders import Encoder
    from ..heads import HeadConfig
    from ..runs import train

    rows = parse_eval_rows(eval_rows)
    n_blocks = HeadConfig.from_dims(dim=dim, block_dim=block_dim).n_blocks
    overrides = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)) if v is not None}
    check_train_options(method, overrides)  # before the dataset is loaded, let alone encoded
    if out_dir is not None:
        check_run_dir(out_dir, overwrite)
    ds = load(name, text, levels, on_conflict)
    target = check_run_dir(out_dir or f"runs/{ds.name}-{method}-seed{seed}", overwrite)  # before training
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
    with writing(target):
        target = run.save(target, overwrite=overwrite)
    print_run(run.record, target, as_json)


@app.command("finetune")
def finetune_cmd(
    name: str = NameArg,
    model: str = typer.Option("minilm-l6", "--model", "-m", help="Encoder to fine-tune: short name, hub id or folder."),
    method: str = typer.Option("fractal", "--method", help="Objective (any method that trains a head)."),
    seed: int = typer.Option(42, "--seed", min=0, max=SEED_MAX, help="Training seed (0 to 2**32 - 1)."),
    epochs: int = typer.Option(DEFAULT_RECIPE.epochs, "--epochs", min=1, help="Joint passes over the training rows."),
    encoder_lr: float = typer.Option(DEFAULT_RECIPE.encoder_lr, "--encoder-lr", help="Learning rate of the encoder."),
    lr: float = typer.Option(DEFAULT_RECIPE.lr, "--lr", help="Learning rate of the head in the joint stage."),
    batch_size: int = typer.Option(DEFAULT_RECIPE.batch_size, "--batch-size", min=1),
    warmup: bool = typer.Option(
        DEFAULT_RECIPE.warmup, "--warmup/--no-warmup", help="Fit the head on the frozen encoder first."
    ),
    refit: bool = typer.Option(
        DEFAULT_RECIPE.refit,
        "--refit/--no-refit",
        help="Re-fit a fresh head on the frozen fine-tuned encoder (`fractal train`'s recipe) at the end.",
    ),
    layer_decay: float = typer.Option(
        DEFAULT_RECIPE.layer_decay,
        "--layer-decay",
        help="Each encoder layer's lr is this x the one above (1: all equal).",
    ),
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
    eval_rows: str = EvalRowsOpt,
    overwrite: bool = OverwriteRunOpt,
    as_json: bool = RecordJsonOpt,
    device: str = DeviceOpt,
) -> None:
    """Fine-tune the encoder and a steerable head end to end (sentence-transformers' trainer); the run
    directory is a sentence-transformers folder plus a run record."""
    from ..finetune import finetune
    from ..heads import HeadConfig

    device = device_of(device)
    rows = parse_eval_rows(eval_rows)
    n_blocks = HeadConfig.from_dims(dim=dim, block_dim=block_dim).n_blocks
    ds = load(name, text, levels, on_conflict)
    target = check_run_dir(out_dir or f"runs/{ds.name}-{method}-finetuned-seed{seed}", overwrite, partial=False)
    run = finetune(
        ds,
        method,
        model=model,
        seed=seed,
        epochs=epochs,
        lr=lr,
        encoder_lr=encoder_lr,
        batch_size=batch_size,
        warmup=warmup,
        refit=refit,
        layer_decay=layer_decay,
        max_train_rows=max_train_rows,
        n_blocks=n_blocks,
        block_dim=block_dim,
        device=device,
        eval_rows=rows,
        show_progress=not as_json,
    )
    with writing(target):
        target = run.save(target, overwrite=overwrite)
    print_run(
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
    device = device_of(device)
    from rich.markup import escape

    from ..evaluation import compare_scores, scored_as_record
    from ..records import Scores
    from ..runs import evaluate, load_run

    run = load_run(run_dir)
    res = evaluate(run, eval_rows="record" if eval_rows is None else parse_eval_rows(eval_rows), device=device)
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
        print_json(res)
        return
    rec = run.record.replace(
        scores=Scores(res["accuracy"], res["steerability"]),
        baseline=Scores(res["baseline"]["accuracy"], res["baseline"]["steerability"]),
    )
    out.print(accuracy_table(rec, f"{rec.run_id}: {res['eval']['n_rows']} {res['eval']['split']} rows"))
    out.print(steer_line(rec))
    if same_rows:
        out.print("matches the record (same rows and k)" if not diffs else "differs from the record (see the warning)")
    else:
        out.print("scored on other rows than the record's: not compared with it")


@app.command("methods")
def methods_cmd() -> None:
    """The training methods (objectives) and what each trains."""
    from ..objectives import OBJECTIVES

    t = Table(title="methods")
    t.add_column("method")
    t.add_column("head")
    t.add_column("what it trains")
    for name, cls in OBJECTIVES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0].split(": ", 1)[-1].replace("``", "")
        t.add_row(name, str(cls.head_kind or "-"), doc)
    out.print(t)
