"""What a run writes down: the one builder of a run record, and the protocol parts it records.

``fractal train`` (:func:`~fractal_embeddings.runs.train`) and ``fractal finetune``
(:func:`~fractal_embeddings.finetune.finetune`) both end in :func:`build_record`; the scored rows
come from :func:`eval_row_sample` and every size a run reads is checked first by :func:`check_sizes`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FractalError
from .evaluation import stratified_sample
from .records import SCHEMA, RunRecord, library_versions
from .validation import is_int

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset
    from .training import TrainConfig

SAMPLES = ("stratified", "first")


def eval_row_sample(
    dataset: TaxonomyDataset, split: str, eval_rows: int | None, eval_seed: int, sample: str = "stratified"
) -> np.ndarray:
    """The scored rows: a stratified sample (default), or the first ``eval_rows`` rows of the file
    order (``sample="first"``: the seed's protocol, kept to compare with its numbers)."""
    if split not in dataset.splits:
        raise FractalError(f"dataset '{dataset.name}' has no '{split}' split; it has {', '.join(dataset.splits)}")
    if sample not in SAMPLES:
        raise FractalError(f"unknown sample '{sample}'; use one of {', '.join(SAMPLES)}")
    n = len(dataset.split(split))
    if sample == "first":
        return np.arange(n if eval_rows is None else min(eval_rows, n))
    return stratified_sample(dataset.split(split).labels[:, -1], eval_rows, eval_seed)


def check_sizes(dataset: TaxonomyDataset, cfg: TrainConfig | None, eval_split: str, eval_rows: Any, k: int) -> None:
    """Raise (one line, saying what is needed) unless every split a run reads is big enough: training
    rows, more than ``cfg.k`` validation rows for the best-epoch k-NN (``cfg``: the trainer's config,
    None when nothing is trained), more than ``k`` scored rows for the leave-one-out k-NN of the
    scores. Made before anything is encoded or trained."""
    if not is_int(k) or k < 1:
        raise FractalError(f"k must be an integer >= 1, got {k!r}")
    name = dataset.name
    if cfg is not None:
        if len(dataset.split("train")) == 0:
            raise FractalError(f"the 'train' split of dataset '{name}' has no rows; give the file rows to train on")
        n_val = len(dataset.split("val"))
        scored = n_val if cfg.val_rows is None else min(cfg.val_rows, n_val)
        if cfg.select == "val-knn" and scored <= cfg.k:
            raise FractalError(
                f"the 'val' split of dataset '{name}' has {n_val} rows; leave-one-out {cfg.k}-NN validation "
                f"needs at least {cfg.k + 1}: give the file a 'split' column with that many 'val' rows, or "
                f"more rows per class (the automatic val split takes 10 % of each class, rounded)"
            )
    if eval_rows is not None and (not is_int(eval_rows) or eval_rows <= k):
        raise FractalError(
            f"eval_rows (--eval-rows) must be 'all' (None) or at least {k + 1}: leave-one-out {k}-NN needs "
            f"{k} neighbours besides each scored row; got {eval_rows!r}"
        )
    if eval_split in dataset.splits:
        n = len(dataset.split(eval_split))
        if n <= k:
            raise FractalError(
                f"the '{eval_split}' split of dataset '{name}' has {n} rows; leave-one-out {k}-NN needs at "
                f"least {k + 1}: add rows to it"
            )


def dataset_block(dataset: TaxonomyDataset) -> dict:
    """A record's ``dataset``: name, load arguments, subset, variant, entropy, levels, rows, fingerprint."""
    return {
        "name": dataset.name,
        "load_args": dataset.info.get("load_args"),
        "subset": dataset.info.get("subset"),
        "variant": dataset.info.get("variant"),
        "entropy": dataset.stats()["entropy"],
        "levels": [{"name": lv.name, "n_classes": lv.n_classes} for lv in dataset.levels],
        "rows": {s: len(sp) for s, sp in dataset.splits.items()},
        "fingerprint": dataset.fingerprint(),
    }


def run_digest(config: dict, encoder_fingerprint: str | None, seed: int) -> str:
    """The short hash that ends a run id: of the run's config, its encoder and its seed."""
    return hashlib.sha256(repr((config, encoder_fingerprint, seed)).encode()).hexdigest()[:8]


def timing_block(train_s: float, eval_s: float, device: str) -> dict:
    """A record's ``timing`` (the device only when it is not the CPU: CPU records stay as they were)."""
    return {
        "train_s": round(train_s, 3),
        "eval_s": round(eval_s, 3),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({} if device == "cpu" else {"device": device}),
    }


def build_record(
    dataset: TaxonomyDataset,
    method: str,
    seed: int,
    *,
    encoder: dict,
    config: dict,
    fingerprint: str | None,
    scores: dict,
    baseline: dict,
    training: dict | None,
    train_s: float,
    eval_s: float,
    device: str,
    kind: str = "",
    retrieval: dict | None = None,
) -> RunRecord:
    """The record of a finished run (validated and typed; ``weights`` null until it is saved).

    ``encoder``: the record's encoder block; ``config``: ``{head, objective, train, eval}``;
    ``fingerprint``: the encoder fingerprint the run id's digest covers (a fine-tuned run: its base's);
    ``scores`` / ``baseline``: :func:`~fractal_embeddings.evaluation.score` of the run and of the
    untrained encoder; ``kind``: a word in the run id after the method (``finetuned``)."""
    digest = run_digest(config, fingerprint, seed)
    middle = f"{method}-{kind}" if kind else method
    return RunRecord.from_dict(
        {
            "schema": SCHEMA,
            "run_id": f"{dataset.name}-{middle}-seed{seed}-{digest}",
            "method": method,
            "seed": seed,
            "dataset": dataset_block(dataset),
            "encoder": encoder,
            "config": config,
            "versions": library_versions(),
            **scores,
            "baseline": baseline,
            "training": training,
            "timing": timing_block(train_s, eval_s, device),
            "weights": None,
            **({"retrieval": retrieval} if retrieval is not None else {}),
        }
    )
