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

from .errors import FractalError

SCHEMA = "fractal-embeddings/run-record/1"
RECORD_FILE = "record.json"
WEIGHTS_FILE = "head.safetensors"
PARTIAL_FILES = (WEIGHTS_FILE, WEIGHTS_FILE + ".tmp")  # what an interrupted save of an older version left
RECORD_KEYS = ("schema", "run_id", "method", "seed", "dataset", "encoder", "config", "versions", "accuracy",
               "steerability", "baseline", "training", "timing", "weights")


class RunRecordError(FractalError):
    """A run directory, record or weights file that is missing, malformed or doesn't match."""


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": sys.platform}
    for pkg in ("fractal-embeddings", "torch", "numpy", "scipy", "safetensors", "sentence-transformers",
                "onnxruntime", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def canonical_json(obj) -> str:
    """Sorted keys, 2-space indent, trailing newline: the one way records are written."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def non_finite_fields(obj, where: str = "") -> list[str]:
    """Dotted paths of the NaN / infinite floats in a JSON-like object (canonical JSON refuses them)."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [where or "(value)"]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite_fields(v, f"{where}[{i}]")]
    return []


def save_run(out_dir: str | os.PathLike, record: dict, head=None, overwrite: bool = False) -> Path:
    """Write a run directory (``head.safetensors`` when there is a head, then ``record.json``) in one
    step; returns the directory.

    The complete run is written into a temporary folder beside ``out_dir`` and then takes its place
    (:func:`~fractal_embeddings.atomic.atomic_dir`): at every instant ``out_dir`` holds the old run
    or the new one, and a failure (a record that can't be written, a kill) leaves the old one whole.
    A directory that already holds a run is replaced only with ``overwrite`` (a finished run is never
    replaced by accident); a non-empty folder that holds no run never."""
    from safetensors.torch import save_file

    from .atomic import atomic_dir

    record = {**record, "weights": None}
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise RunRecordError(f"run record lacks {', '.join(missing)}; it can't be saved")
    bad = non_finite_fields(record)
    if bad:  # before anything is written: canonical JSON has no NaN or infinity
        raise RunRecordError(f"run record field {', '.join(bad[:3])} is not a finite number; the run can't be saved "
                             f"(a training that diverged? lower the learning rate and train again)")
    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite, marker=RECORD_FILE, what="a run", partial=PARTIAL_FILES,
                    error=RunRecordError) as tmp:
        if head is not None:
            state = {k: v.detach().contiguous().clone() for k, v in head.state_dict().items()}
            # one metadata key: safetensors writes metadata in hash-map order, so several keys would make
            # the file's bytes (and its sha256) differ between processes for identical weights
            meta = {"fractal": canonical_json({"head": head.config(), "schema": SCHEMA,
                                               "encoder_fingerprint": str(record["encoder"].get("fingerprint", ""))})}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata=meta)
            record["weights"] = {"file": WEIGHTS_FILE, "sha256": file_sha256(tmp / WEIGHTS_FILE)}
        (tmp / RECORD_FILE).write_bytes(canonical_json(record).encode())
    return out


def load_record(run_dir: str | os.PathLike) -> dict:
    """The record of a run directory (or of a ``record.json`` path), validated."""
    given = Path(run_dir)
    if not given.exists():
        raise RunRecordError(f"{given} does not exist; pass a run directory (the --out of `fractal train`)")
    path = given / RECORD_FILE if given.is_dir() else given
    if not path.exists():
        raise RunRecordError(f"{given}: no {RECORD_FILE} here, so it is not a run directory; pass the directory "
                             f"`fractal train --out` wrote")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunRecordError(f"{path}: not a readable JSON run record ({e})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise RunRecordError(f"{path}: not a fractal-embeddings run record (schema {record.get('schema') if isinstance(record, dict) else None!r}, expected {SCHEMA!r})")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise RunRecordError(f"{path}: run record lacks {', '.join(missing)}")
    return record


def load_head(run_dir: str | os.PathLike, record: dict | None = None):
    """The trained head of a run (``None`` for a method without one), checked against its record."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    from .heads import head_from_config

    run_dir = Path(run_dir)
    record = record or load_record(run_dir)
    if record["weights"] is None:
        return None
    path = run_dir / record["weights"]["file"]
    if not path.exists():
        raise RunRecordError(f"{path}: weights file missing; the run directory is incomplete, train again")
    if file_sha256(path) != record["weights"]["sha256"]:
        raise RunRecordError(f"{path}: weights do not match the sha256 in {RECORD_FILE} (changed or copied from another run)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunRecordError(f"{path}: not a readable safetensors file ({e})") from None
    cfg = record["config"]["head"]
    if "finetuned_encoder_layers" in cfg:
        raise RunRecordError(f"{run_dir}: this run fine-tuned the encoder's last {cfg['finetuned_encoder_layers']} layers; "
                             f"its record holds the scores, but loading it as a head on frozen vectors is not supported")
    saved = json.loads(meta["fractal"]).get("head") if "fractal" in meta else json.loads(meta.get("head", "null"))
    if saved != cfg:
        raise RunRecordError(f"{path}: weights were saved for head {saved}, the record says {cfg}")
    head = head_from_config(cfg)
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        raise RunRecordError(f"{path}: tensor shapes {got} don't fit head {cfg}")
    head.load_state_dict(state)
    head.eval()
    return head


def check_compatible(record: dict, *, dataset=None, encoder_identity: dict | None = None,
                     encoder_dim: int | None = None) -> None:
    """Fail with one line when a run's data or encoder differs from the ones given."""
    where = f"run {record.get('run_id', '?')}"
    if dataset is not None:
        want = [(lv["name"], lv["n_classes"]) for lv in record["dataset"]["levels"]]
        have = [(lv.name, lv.n_classes) for lv in dataset.levels]
        if want != have:
            raise RunRecordError(f"{where} was trained on levels {want}, the dataset given has {have}; load the same dataset and levels")
        if record["dataset"].get("fingerprint") and dataset.fingerprint() != record["dataset"]["fingerprint"]:
            raise RunRecordError(f"{where}: dataset '{dataset.name}' differs from the one it was trained on (texts or labels changed); retrain or pass the original data")
    if encoder_identity is not None:
        want_fp, have_fp = record["encoder"].get("fingerprint"), encoder_identity.get("fingerprint")
        if want_fp != have_fp or record["encoder"].get("name") != encoder_identity.get("name"):
            raise RunRecordError(f"{where} was trained on encoder {record['encoder'].get('name')} ({str(want_fp)[:12]}), "
                                 f"not {encoder_identity.get('name')} ({str(have_fp)[:12]}); use --model {record['encoder'].get('model') or record['encoder'].get('name')}")
    if encoder_dim is not None and record["encoder"].get("dim") not in (None, encoder_dim):
        raise RunRecordError(f"{where}: weights expect {record['encoder']['dim']}-d encoder vectors, got {encoder_dim}-d; use the run's encoder")
