"""Run records: one canonical JSON file per run, and the head's weights as safetensors beside it.

A run directory holds::

    record.json        what was run and what it scored (schema below)
    head.safetensors   the trained head (absent for ``flat``); its metadata repeats the head config
                       and the encoder fingerprint, so the file is self-describing

A run directory is written whole into a temporary folder beside it and then takes its place in one
step (:mod:`~fractal_embeddings.atomic`): the path holds the old run or the new one, never a mix.
Keys (``RECORD_KEYS``): ``schema``, ``run_id``, ``method``, ``seed``, ``dataset`` (name, load
arguments, levels with class counts, rows per split, fingerprint), ``encoder`` (identity + dim),
``config`` (head, objective, train, eval), ``versions``, ``accuracy`` (``{"<dims>": {"<level>":
acc}}``), ``steerability`` (S, S_AUC, S_gap, S_mono, ...), ``baseline`` (the untrained encoder,
truncated to the same dims, on the same rows), ``training`` (best epoch, per-epoch history),
``timing`` (train and eval seconds, creation time) and ``weights`` (file name and sha256).
Optional: ``retrieval`` (per-prefix retrieval metrics of the head and of the untrained encoder,
see :mod:`~fractal_embeddings.retrieval`) and ``tags`` (the experiment that made the run).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .record_blocks import (
    PARTIAL_FILES,
    RECORD_FILE,
    RECORD_KEYS,
    SCHEMA,
    SCHEMAS_READ,
    WEIGHTS_FILE,
    DatasetInfo,
    EncoderInfo,
    EvalSpec,
    HeadInfo,
    LevelInfo,
    ObjectiveInfo,
    RetrievalInfo,
    RunConfig,
    RunRecord,
    Scores,
    TimingInfo,
    TrainInfo,
    TrainingInfo,
    Versions,
    WeightsRef,
    accuracy_array,
)
from .record_fields import RunRecordError

__all__ = [
    "PARTIAL_FILES",
    "RECORD_FILE",
    "RECORD_KEYS",
    "SCHEMA",
    "SCHEMAS_READ",
    "WEIGHTS_FILE",
    "DatasetInfo",
    "EncoderInfo",
    "EvalSpec",
    "HeadInfo",
    "LevelInfo",
    "ObjectiveInfo",
    "RetrievalInfo",
    "RunConfig",
    "RunRecord",
    "RunRecordError",
    "Scores",
    "TimingInfo",
    "TrainInfo",
    "TrainingInfo",
    "Versions",
    "WeightsRef",
    "accuracy_array",
    "canonical_json",
    "check_compatible",
    "file_sha256",
    "library_versions",
    "load_record",
    "non_finite_fields",
    "record_to_save",
]

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "platform": sys.platform}
    for pkg in (
        "fractal-embeddings",
        "torch",
        "numpy",
        "scipy",
        "safetensors",
        "sentence-transformers",
        "onnxruntime",
        "transformers",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def canonical_json(obj: Any) -> str:
    """Sorted keys, 2-space indent, trailing newline: the one way records are written."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def non_finite_fields(obj: Any, where: str = "") -> list[str]:
    """Dotted paths of the NaN / infinite floats in a JSON-like object (canonical JSON refuses them)."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [where or "(value)"]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite_fields(v, f"{where}[{i}]")]
    return []


def record_to_save(record: dict | RunRecord) -> dict:
    """The record dict a run directory will hold (``weights`` still null), checked before anything is
    written: every key present, every number finite (canonical JSON has no NaN or infinity)."""
    out = {**(record.to_dict() if isinstance(record, RunRecord) else record), "weights": None}
    missing = [k for k in RECORD_KEYS if k not in out]
    if missing:
        raise RunRecordError(f"run record lacks {', '.join(missing)}; it can't be saved")
    bad = non_finite_fields(out)
    if bad:
        raise RunRecordError(
            f"run record field {', '.join(bad[:3])} is not a finite number; the run can't be saved "
            f"(a training that diverged? lower the learning rate and train again)"
        )
    return out


def load_record(run_dir: str | os.PathLike) -> RunRecord:
    """The record of a run directory (or of a ``record.json`` path), validated and typed."""
    given = Path(run_dir)
    if not given.exists():
        raise RunRecordError(f"{given} does not exist; pass a run directory (the --out of `fractal train`)")
    path = given / RECORD_FILE if given.is_dir() else given
    if not path.exists():
        raise RunRecordError(
            f"{given}: no {RECORD_FILE} here, so it is not a run directory; pass the directory "
            f"`fractal train --out` wrote"
        )
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunRecordError(f"{path}: not a readable JSON run record ({e})") from None
    return RunRecord.from_dict(record, str(path))


def check_compatible(
    record: RunRecord,
    *,
    dataset: TaxonomyDataset | None = None,
    encoder_identity: dict | None = None,
    encoder_dim: int | None = None,
) -> None:
    """Fail with one line when a run's data or encoder differs from the ones given."""
    where = f"run {record.run_id}"
    if dataset is not None:
        want = [(lv.name, lv.n_classes) for lv in record.dataset.levels]
        have = [(lv.name, lv.n_classes) for lv in dataset.levels]
        if want != have:
            raise RunRecordError(
                f"{where} was trained on levels {want}, the dataset given has {have}; load the same dataset and levels"
            )
        if record.dataset.fingerprint and dataset.fingerprint() != record.dataset.fingerprint:
            raise RunRecordError(
                f"{where}: dataset '{dataset.name}' differs from the one it was trained on (texts or labels changed); "
                "retrain or pass the original data"
            )
    enc = record.encoder
    if encoder_identity is not None:
        have_fp = encoder_identity.get("fingerprint")
        if enc.in_run and enc.fingerprint != have_fp:
            raise RunRecordError(
                f"{where}: the fine-tuned model in the run folder has fingerprint {str(have_fp)[:12]}, the record "
                f"{str(enc.fingerprint)[:12]}: its files changed since the run was saved; restore the whole run "
                f"folder from a copy, or fine-tune again"
            )
        if enc.fingerprint != have_fp or enc.name != encoder_identity.get("name"):
            raise RunRecordError(
                f"{where} was trained on encoder {enc.name} ({str(enc.fingerprint)[:12]}), "
                f"not {encoder_identity.get('name')} ({str(have_fp)[:12]}); use --model {enc.model or enc.name}"
            )
    if encoder_dim is not None and enc.dim not in (None, encoder_dim):
        raise RunRecordError(
            f"{where}: weights expect {enc.dim}-d encoder vectors, got {encoder_dim}-d; use the run's encoder"
        )
