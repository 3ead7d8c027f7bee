"""One run end to end: dataset + encoder + method + seed -> trained head + run record.

>>> from fractal_embeddings import load_dataset, train
>>> run = train(load_dataset("clinc150"), method="fractal", seed=42)
>>> run.record.steerability["S"], run.accuracy_table()
>>> run.save("runs/clinc150-fractal")       # record.json + head.safetensors
>>> evaluate("runs/clinc150-fractal")           # re-score the saved head on the same rows

Scoring (see :mod:`fractal_embeddings.evaluation`): leave-one-out prefix k-NN on a stratified sample
(finest level) of ``eval_rows`` test rows drawn with ``eval_seed`` (the same rows for every method
and training seed), for the trained head and for the untrained encoder truncated to the same dims.
A run is a :class:`~fractal_embeddings.run.Run` (:mod:`~fractal_embeddings.run`); :func:`load_run`
returns a head on a frozen encoder or a fine-tuned model (:mod:`~fractal_embeddings.finetune`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .backbone import EncoderTop, TunedHead, split_states
from .data import load_dataset
from .devices import resolve_device
from .encoders import Encoder, as_encoder, embed_split
from .errors import FractalError
from .evaluation import blocks_that_fit, eval_block, score, score_untrained
from .extras import require
from .finetune import FinetunedRun, model_encoder
from .heads import Head, HeadConfig, build_head
from .objectives import Objective, get_objective
from .recording import build_record, check_sizes, eval_row_sample
from .records import RunRecord, check_compatible, load_record
from .retrieval import prefix_retrieval
from .run import HeadRun, Run, apply_head, encoder_of
from .training import FitResult, TrainConfig, fit
from .trust import check_model_folder, check_no_links
from .validation import check_fields, check_seed
from .weights import load_head

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset

__all__ = ["HeadRun", "Run", "base_encoder_for_record", "dataset_for_record", "encoder_for_record"]
__all__ += ["evaluate", "load_run", "train"]


def encoder_for_record(
    record: RunRecord, run_dir: str | os.PathLike | None = None, *, device: str | None = "auto"
) -> Encoder:
    """The encoder a run record was made with: its model, backend, length, normalisation and the
    query prompt the run was encoded with (a custom one included). For a ``fractal finetune`` run
    (encoder ``model`` ``"."``) the encoder is the run directory ``run_dir`` itself."""
    if record.encoder.in_run:
        return model_encoder(record, run_dir, device=device)
    return encoder_of(record.encoder, device)


def base_encoder_for_record(record: RunRecord, *, device: str | None = "auto") -> Encoder:
    """The untrained encoder a run's baseline scores come from (a fine-tuned run: the one it started from)."""
    if record.encoder.base is not None:
        return encoder_of(record.encoder.base, device)
    return encoder_for_record(record, device=device)


def dataset_for_record(record: RunRecord) -> TaxonomyDataset:
    """The dataset (and subset) a run record was trained on."""
    ds = record.dataset
    args = dict(ds.load_args or {"name": ds.name})
    dataset = load_dataset(args.pop("name"), **{k: v for k, v in args.items() if v is not None})
    if ds.subset:
        dataset = dataset.subset(ds.subset["rows"], ds.subset["seed"])
    return dataset


# ------------------------------------------------------------------ train, step by step
@dataclass
class _Plan:
    """Everything :func:`train` checked before any work."""

    objective: Objective
    head_cfg: HeadConfig
    cfg: TrainConfig
    rows: np.ndarray  # the scored rows of the eval split
    eval_split: str
    eval_rows: int | None
    eval_seed: int
    k: int
    finetune_layers: int
    retrieval: bool

    @property
    def trains(self) -> bool:
        return self.objective.head_kind is not None


@dataclass
class _Vectors:
    X: dict[str, np.ndarray]  # encoder vectors per split (what the untrained baseline reads)
    X_fit: dict[str, np.ndarray]  # what the trainer reads (token states when encoder layers are tuned)
    Y: dict[str, np.ndarray]


def train(
    dataset: TaxonomyDataset,
    method: str = "fractal",
    *,
    seed: int = 42,
    encoder: Encoder | str | None = None,
    n_blocks: int = 4,
    block_dim: int = 64,
    objective_options: dict | None = None,
    train_options: dict | None = None,
    eval_split: str = "test",
    eval_rows: int | None = 2000,
    eval_seed: int = 0,
    k: int = 5,
    finetune_layers: int = 0,
    retrieval: bool = False,
    progress: Callable[[dict], None] | None = None,
    device: str | None = "auto",
) -> Run:
    """Train ``method`` on ``dataset`` (a :class:`TaxonomyDataset`) and score it; see the module docstring.

    ``encoder`` is an :class:`~fractal_embeddings.Encoder` or a model name (default MiniLM-L6);
    ``train_options`` override :class:`~fractal_embeddings.training.TrainConfig` fields,
    ``objective_options`` the objective's config; ``progress(entry)`` is called after each epoch;
    ``device`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``) runs the encoder and the training steps there.
    ``finetune_layers`` > 0 also trains the encoder's last layers (:mod:`~fractal_embeddings.backbone`;
    encoder learning rate ``train_options["encoder_lr"]``, default 2e-5). ``retrieval`` adds per-prefix
    retrieval metrics (:mod:`~fractal_embeddings.retrieval`: the scored test rows as queries, the
    training split as the corpus) of the head and of the untrained encoder.
    """
    plan = _plan(
        dataset, method, seed, n_blocks, block_dim, objective_options, train_options,
        eval_split, eval_rows, eval_seed, k, finetune_layers, retrieval,
    )  # fmt: skip
    device = resolve_device(device)  # the edge: everything below receives the resolved device
    enc = as_encoder(encoder, device)
    vectors = _encode(dataset, enc, plan)
    t0 = time.perf_counter()
    head, fit_result = _fit(dataset, enc, plan, vectors, seed, device, progress)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores, baseline, retrieval_block = _score(dataset, plan, head, vectors)
    eval_s = time.perf_counter() - t0
    h = plan.head_cfg
    enc_dim = vectors.X["train"].shape[1]
    config = {
        "head": head.config() if head is not None else {"kind": None, "n_blocks": h.n_blocks, "block_dim": h.block_dim},
        "objective": plan.objective.config(),
        "train": plan.cfg.as_dict() if head is not None else None,
        "eval": eval_block(eval_split, eval_rows, plan.rows, eval_seed, k),
    }
    ident = {**enc.identity().as_dict(), "dim": enc_dim, "model": enc.model}
    record = build_record(
        dataset,
        plan.objective.name,
        seed,
        encoder=ident,
        config=config,
        fingerprint=ident["fingerprint"],
        scores=scores,
        baseline=baseline,
        training=_training_block(head, fit_result),
        train_s=train_s,
        eval_s=eval_s,
        device=device,
        retrieval=retrieval_block,
    )
    return HeadRun(record=record, head=head)


def _plan(
    dataset: TaxonomyDataset,
    method: str,
    seed: int,
    n_blocks: int,
    block_dim: int,
    objective_options: dict | None,
    train_options: dict | None,
    eval_split: str,
    eval_rows: int | None,
    eval_seed: int,
    k: int,
    finetune_layers: int,
    retrieval: bool,
) -> _Plan:
    """Every argument of :func:`train` checked (one line each), before anything is encoded."""
    dataset.require_hierarchy()
    objective = get_objective(method, **(objective_options or {}))
    check_fields(objective, f"method {objective.name}")
    head_cfg = HeadConfig(**objective.head_options(), n_blocks=n_blocks, block_dim=block_dim)
    objective.check(n_blocks, dataset.n_levels)
    if finetune_layers:
        if objective.head_kind is None:
            raise FractalError(f"method {objective.name} trains no head, so it cannot fine-tune encoder layers")
        train_options = {"encoder_lr": 2e-5, **(train_options or {})}
    elif (train_options or {}).get("encoder_lr") is not None:
        raise FractalError(
            "encoder_lr applies only when encoder layers are fine-tuned; pass finetune_layers too or drop it"
        )
    cfg = TrainConfig.resolve(objective.trainer_defaults, train_options)
    for split in ("train", "val"):
        if split not in dataset.splits:
            raise FractalError(f"dataset '{dataset.name}' has no '{split}' split; training needs train and val")
    check_seed(seed)
    check_seed(eval_seed, "eval_seed")
    check_sizes(dataset, cfg if objective.head_kind is not None else None, eval_split, eval_rows, k)
    if retrieval:
        require("index", "retrieval metrics (FAISS exact search)")
    rows = eval_row_sample(dataset, eval_split, eval_rows, eval_seed)
    return _Plan(objective, head_cfg, cfg, rows, eval_split, eval_rows, eval_seed, k, finetune_layers, retrieval)


def _encode(dataset: TaxonomyDataset, encoder: Encoder, plan: _Plan) -> _Vectors:
    """The (cached) vectors of the splits a run reads, their widths checked against the head."""
    splits = ("train", "val", plan.eval_split)
    X = {s: embed_split(encoder, dataset.split(s)) for s in splits}
    enc_dim = X["train"].shape[1]
    h = plan.head_cfg
    if blocks_that_fit(enc_dim, h.block_dim, h.n_blocks) < 1:  # before training: the baseline could not be scored
        raise FractalError(
            f"block dim {h.block_dim} is wider than the encoder's {enc_dim} dims, so the untrained encoder "
            f"can't be scored at any prefix; use a block dim <= {enc_dim} (--block-dim)"
        )
    if not plan.trains and enc_dim < h.dim:
        raise FractalError(f"flat truncates the encoder to {h.dim} dims but it has only {enc_dim}; use fewer blocks")
    X_fit = X
    if plan.finetune_layers:  # the trainer reads token states; scoring the untrained encoder still reads X
        X_fit = {s: split_states(encoder, dataset.split(s), plan.finetune_layers) for s in splits}
    return _Vectors(X, X_fit, {s: dataset.split(s).labels for s in X})


def _fit(
    dataset: TaxonomyDataset,
    encoder: Encoder,
    plan: _Plan,
    v: _Vectors,
    seed: int,
    device: str,
    progress: Callable[[dict], None] | None,
) -> tuple[Head | TunedHead | None, FitResult | None]:
    """The trained head and its fit (``None, None`` for a method that trains no head)."""
    if not plan.trains:
        return None, None
    torch.manual_seed(seed)
    head: Head | TunedHead = build_head(plan.head_cfg, v.X["train"].shape[1], [lv.n_classes for lv in dataset.levels])
    if plan.finetune_layers:
        assert isinstance(head, Head)
        head = TunedHead(EncoderTop(encoder, plan.finetune_layers), head)
    result = fit(
        head, plan.objective, v.X_fit["train"], v.Y["train"], v.X_fit["val"], v.Y["val"], plan.cfg, seed,
        device=device, progress=progress,
    )  # fmt: skip
    return head, result


def _score(
    dataset: TaxonomyDataset, plan: _Plan, head: Head | TunedHead | None, v: _Vectors
) -> tuple[dict, dict, dict | None]:
    """Scores of the run and of the untrained encoder on the sampled rows (+ retrieval metrics if asked)."""
    h, split, rows = plan.head_cfg, plan.eval_split, plan.rows
    X_eval, y_eval = np.asarray(v.X[split])[rows], v.Y[split][rows]
    E_eval = apply_head(head, np.asarray(v.X_fit[split])[rows], h.dim)
    scores = score(E_eval, y_eval, h.block_dim, h.n_blocks, plan.k, dataset.level_names)
    baseline = score_untrained(X_eval, y_eval, h.block_dim, h.n_blocks, plan.k, dataset.level_names)
    if not plan.retrieval:
        return scores, baseline, None
    E_corpus = apply_head(head, v.X_fit["train"], h.dim)
    found = _retrieval(E_eval, E_corpus, X_eval, np.asarray(v.X["train"]), y_eval, v.Y["train"], h, dataset.level_names)
    return scores, baseline, {"queries": f"{split} (the scored rows)", **found}


def _retrieval(
    E_eval: np.ndarray,
    E_corpus: np.ndarray,
    X_eval: np.ndarray,
    X_corpus: np.ndarray,
    q_labels: np.ndarray,
    c_labels: np.ndarray,
    h: HeadConfig,
    level_names: Sequence[str],
) -> dict:
    """Retrieval metrics of the trained head (``E_*``) and of the untrained encoder (``X_*``): the
    scored rows as queries, the training split as the corpus."""
    trained = prefix_retrieval(E_eval, q_labels, E_corpus, c_labels, h.block_dim, h.n_blocks, level_names)
    blocks = blocks_that_fit(X_corpus.shape[1], h.block_dim, h.n_blocks)
    dims = blocks * h.block_dim
    base = prefix_retrieval(X_eval[:, :dims], q_labels, X_corpus[:, :dims], c_labels, h.block_dim, blocks, level_names)
    return {
        "corpus": "train",
        "n_queries": len(q_labels),
        "n_corpus": len(c_labels),
        "trained": trained,
        "baseline": base,
    }


def _training_block(head: Head | TunedHead | None, fit_result: FitResult | None) -> dict | None:
    if fit_result is None or head is None:
        return None
    return {
        "best_epoch": fit_result.best_epoch,
        "history": fit_result.history,
        "n_params": sum(p.numel() for p in head.parameters()),
    }


# ------------------------------------------------------------------ saved runs
def load_run(run_dir: str | os.PathLike) -> Run:
    """A saved run: a :class:`~fractal_embeddings.run.HeadRun` (record + head, the weights checked
    against the record) or, for a ``fractal finetune`` folder, a
    :class:`~fractal_embeddings.finetune.FinetunedRun` (the folder checked before any work)."""
    record = load_record(run_dir)
    path = Path(run_dir)
    path = path.parent if path.is_file() else path
    if record.is_finetuned:  # the folder is the model: no link out of it, no code but ours (before any work)
        check_no_links(path, "fine-tuned run")
        check_model_folder(path)
        return FinetunedRun(record=record, path=path)
    return HeadRun(record=record, head=load_head(path, record), path=path)


def evaluate(
    run: Run | str | os.PathLike,
    dataset: TaxonomyDataset | None = None,
    encoder: Encoder | str | None = None,
    *,
    eval_rows: int | None | str = "record",
    eval_seed: int | None = None,
    k: int | None = None,
    sample: str = "stratified",
    device: str | None = "auto",
) -> dict:
    """Re-score a saved run (a directory or a :class:`Run`) on its test rows; returns ``{"accuracy",
    "steerability", "baseline", "eval"}``. The dataset and encoder default to the ones in the record
    and must match it (fingerprints); ``device``: where the encoder runs."""
    if not isinstance(run, Run):
        run = load_run(run)
    rec = run.record
    if dataset is None:
        dataset = dataset_for_record(rec)
    device = resolve_device(device)
    encoder = as_encoder(encoder if encoder is not None else run.encoder(device), device)
    check_compatible(rec, dataset=dataset, encoder_identity=encoder.identity().as_dict())
    ev = rec.eval
    rows_n = ev.max_rows if eval_rows == "record" else eval_rows
    seed = ev.sample_seed if eval_seed is None else eval_seed
    k = ev.k if k is None else k
    if ev.split not in dataset.splits:
        raise FractalError(
            f"{_record_name(run)}: config.eval.split is {ev.split!r}, but dataset '{dataset.name}' has "
            f"{', '.join(dataset.splits)}; restore the field (or train the run again)"
        )
    check_seed(seed, "eval_seed")
    check_sizes(dataset, None, ev.split, rows_n, k)
    assert not isinstance(rows_n, str)  # check_sizes refused anything but an integer or None
    rows = eval_row_sample(dataset, ev.split, rows_n, seed, sample)
    X = np.asarray(embed_split(encoder, dataset.split(ev.split)))
    check_compatible(rec, encoder_dim=X.shape[1])
    head = run.head
    if isinstance(head, Head) and head.input_dim != X.shape[1]:
        raise FractalError(f"the head expects {head.input_dim}-d encoder vectors, the encoder gives {X.shape[1]}-d")
    h = rec.head
    labels = dataset.split(ev.split).labels[rows]
    out = score(run.transform(X[rows]), labels, h.block_dim, h.n_blocks, k, dataset.level_names)
    base_encoder = run.baseline_encoder(device)  # a fine-tuned run: the encoder it started from
    X_base = X if base_encoder is None else np.asarray(embed_split(base_encoder, dataset.split(ev.split)))
    out["baseline"] = score_untrained(X_base[rows], labels, h.block_dim, h.n_blocks, k, dataset.level_names)
    out["eval"] = {**ev.to_dict(), **eval_block(ev.split, rows_n, rows, seed, k)}
    return out


def _record_name(run: Run) -> str:
    path = getattr(run, "path", None)
    return f"{path}/record.json" if path is not None else f"record.json of run {run.record.run_id}"
