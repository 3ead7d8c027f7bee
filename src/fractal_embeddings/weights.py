"""A head's weights in a run directory: ``head.safetensors`` beside ``record.json``.

:func:`save_run` writes a run directory (the head's tensors, then the record) in one step;
:func:`load_head` rebuilds a saved head, its file checked against the record first
(:func:`load_weights`: the sha256 and the head config in the file's metadata). The record itself,
its schema and its checks are :mod:`~fractal_embeddings.records` (which builds no model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_dir
from .heads import Head, head_from_config
from .records import (
    PARTIAL_FILES,
    RECORD_FILE,
    SCHEMA,
    WEIGHTS_FILE,
    RunRecord,
    RunRecordError,
    canonical_json,
    file_sha256,
    record_to_save,
)
from .trust import file_inside

if TYPE_CHECKING:
    import torch

    from .backbone import TunedHead


def save_run(
    out_dir: str | os.PathLike, record: dict | RunRecord, head: Head | TunedHead | None = None, overwrite: bool = False
) -> Path:
    """Write a run directory (``head.safetensors`` when there is a head, then ``record.json``) in one
    step; returns the directory.

    The complete run is written into a temporary folder beside ``out_dir`` and then takes its place
    (:func:`~fractal_embeddings.atomic.atomic_dir`): at every instant ``out_dir`` holds the old run
    or the new one, and a failure (a record that can't be written, a kill) leaves the old one whole.
    A directory that already holds a run is replaced only with ``overwrite`` (a finished run is never
    replaced by accident); a non-empty folder that holds no run never."""
    from safetensors.torch import save_file

    data = record_to_save(record)  # before anything is written
    out = Path(out_dir)
    with atomic_dir(
        out, overwrite=overwrite, marker=RECORD_FILE, what="a run", partial=PARTIAL_FILES, error=RunRecordError
    ) as tmp:
        if head is not None:
            state = {k: v.detach().contiguous().clone() for k, v in head.state_dict().items()}
            # one metadata key: safetensors writes metadata in hash-map order, so several keys would make
            # the file's bytes (and its sha256) differ between processes for identical weights
            meta = {
                "fractal": canonical_json(
                    {
                        "head": head.config(),
                        "schema": SCHEMA,
                        "encoder_fingerprint": str(data["encoder"].get("fingerprint", "")),
                    }
                )
            }
            save_file(state, str(tmp / WEIGHTS_FILE), metadata=meta)
            data["weights"] = {"file": WEIGHTS_FILE, "sha256": file_sha256(tmp / WEIGHTS_FILE)}
        (tmp / RECORD_FILE).write_bytes(canonical_json(data).encode())
    return out


def load_weights(run_dir: str | os.PathLike, record: RunRecord) -> dict[str, torch.Tensor] | None:
    """The head's tensors of a run (``None`` for a run without a weights file), checked against its
    record: the file's sha256 and the head config in its metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    run_dir = Path(run_dir)
    if record.weights is None:
        return None
    path = file_inside(run_dir, record.weights.file, "weights file")  # never a path out of the run folder
    if not path.exists():
        raise RunRecordError(f"{path}: weights file missing; the run directory is incomplete, train again")
    if file_sha256(path) != record.weights.sha256:
        raise RunRecordError(
            f"{path}: weights do not match the sha256 in {RECORD_FILE} (changed or copied from another run)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RunRecordError(f"{path}: not a readable safetensors file ({e})") from None
    cfg = record.head.to_dict()
    if record.head.finetuned_encoder_layers:
        raise RunRecordError(
            f"{run_dir}: this run fine-tuned the encoder's last {record.head.finetuned_encoder_layers} "
            f"layers; its record holds the scores, but loading it as a head on frozen vectors is not supported"
        )
    saved = json.loads(meta["fractal"]).get("head") if "fractal" in meta else json.loads(meta.get("head", "null"))
    if saved != cfg:
        raise RunRecordError(f"{path}: weights were saved for head {saved}, the record says {cfg}")
    return state


def load_head(run_dir: str | os.PathLike, record: RunRecord) -> Head | None:
    """The trained head of a saved run (eval mode), or ``None`` for a run without one (``flat``)."""
    state = load_weights(run_dir, record)
    if state is None:
        return None
    cfg = record.head.to_dict()
    head = head_from_config(cfg)
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        assert record.weights is not None  # load_weights found the weights file
        raise RunRecordError(f"{Path(run_dir) / record.weights.file}: tensor shapes {got} don't fit head {cfg}")
    head.load_state_dict(state)
    head.eval()
    return head
