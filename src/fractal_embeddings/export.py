"""Export a run as a sentence-transformers model folder (encoder + head + model card).

>>> from fractal_embeddings.export import export_sentence_transformers
>>> export_sentence_transformers("runs/clinc150-fractal-seed42", "models/clinc150")
>>> from sentence_transformers import SentenceTransformer
>>> SentenceTransformer("models/clinc150", trust_remote_code=True, truncate_dim=64).encode(
...     texts, normalize_embeddings=True)

Two layouts:

* **default** (exact at every prefix, every head kind): the encoder's own modules (``Transformer``,
  ``Pooling``, ...), a ``Normalize`` when the head reads L2-normalised encoder vectors, then the
  trained head as :class:`~fractal_embeddings.st.FractalHead`. ``truncate_dim`` slices the head's
  output and ``normalize_embeddings=True`` normalises the slice: the library's normalised prefix, at
  64, 128, ... dims, block norm included. The folder is self-contained
  (:func:`~fractal_embeddings.st.make_self_contained`): ``fractal_head.py``, the head's module (torch +
  sentence-transformers only), sits at its root and ``modules.json`` names ``fractal_head.FractalHead``,
  so ``SentenceTransformer(OUT, trust_remote_code=True)`` loads it without fractal-embeddings, and
  re-saved copies keep loading (the module's ``save`` writes the file to each new root; tested in a
  venv without the package). fractal-embeddings loads it without ``trust_remote_code``, after checking
  the file is byte-identical to its own (:mod:`~fractal_embeddings.trust`).
  ``config_sentence_transformers.json`` keeps no default ``truncate_dim``: the full vector is the fine
  level, and the zoom is the caller's choice per call.
* ``portable=True`` (``fractal export --portable``): built-in modules only (no
  ``trust_remote_code``, no package needed): the head as ``Dense`` layers --
  ``linear``: ``Dense(in, dim, Identity)``; ``mlp``: ``Dense(in, hidden, GELU)`` + ``Dense(hidden, dim,
  Identity)`` (torch's exact GELU). Exact at every prefix for heads without block norm. No built-in
  module L2-normalises each block (``Normalize`` normalises the whole vector; ``Dense`` rebuilds its
  activation with no arguments, so nothing can reshape into blocks), so a block-normed head (the
  default method ``fractal``) exports portably only as its first block (``dims=block_dim``, a
  trailing ``Normalize`` makes it exact); asking for more is refused. ``heal`` and ``topk`` heads
  have no ``Dense`` form (per-level normalised projectors; a TopK activation) and are refused.

A ``fractal finetune`` run is already a sentence-transformers folder (encoder and head trained
together); its export is a copy of that folder with the model card and the run record.

Every export is checked before it is moved into place: the saved folder is loaded back with
``SentenceTransformer`` and compared with the run on fixed probe texts at every exported prefix;
the measured differences go into the model card and ``fractal_export.json``. A difference above
``TOLERANCE`` fails the export.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_dir
from .card import render_card
from .errors import FractalError
from .evaluation import unit_rows
from .heads import Head
from .records import RunRecord, RunRecordError, canonical_json, check_compatible
from .runs import Run, encoder_for_record, load_run
from .st import FractalHead, load_model_folder, make_self_contained, quiet_loaders
from .trust import check_no_links
from .validation import check_output_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .encoders import Encoder

EXPORTABLE_HEADS = ("linear", "mlp")
TOLERANCE = 1e-5
EXPORT_FILE = "fractal_export.json"
EXPORT_SCHEMA = "fractal-embeddings/st-export/1"
PROBE_TEXTS = (
    "book a table for two at an italian restaurant tonight",
    "what is the balance of my checking account",
    "How far is it from the Earth to the Moon?",
    "play some relaxing jazz music",
    "my credit card was declined at the store, why?",
    "Who wrote the novel 'Pride and Prejudice'?",
    "set an alarm for 6:30 tomorrow morning",
    "The new graphics card renders scenes twice as fast as the old one.",
)


class ExportError(FractalError, ValueError):
    """A run that cannot be exported as a sentence-transformers model, or a target folder in the way."""


# ------------------------------------------------------------------ checks
def _load(run_or_dir: Run | str | os.PathLike) -> tuple[Run, Path | None]:
    """``(run, run_dir or None)`` of a :class:`~fractal_embeddings.runs.Run` or a run directory."""
    if isinstance(run_or_dir, Run):
        return run_or_dir, run_or_dir.path
    run_dir = Path(run_or_dir)
    if not run_dir.is_dir():
        raise RunRecordError(f"{run_dir}: no such run directory; pass the directory `fractal train --out` wrote")
    return load_run(run_dir), run_dir


def export_dims(record: RunRecord, dims: int | None = None, portable: bool = False) -> int:
    """The number of output dims an export of this run holds (checked); see the module docstring."""
    h = record.head
    method, kind = record.method, h.kind
    if kind is None:
        raise ExportError(f"method {method} trains no head (it is the encoder truncated); there is nothing to export")
    if h.finetuned_encoder_layers:
        raise ExportError(
            f"run {record.run_id} fine-tuned {h.finetuned_encoder_layers} encoder layers on cached "
            f"token states; export handles head runs on a frozen encoder and `fractal finetune` runs"
        )
    block, full = h.block_dim, h.dim
    if not portable:
        if dims not in (None, full):
            raise ExportError(
                f"--dims applies to --portable exports only: the default export holds all {full} dims and "
                f"serves every prefix exactly through truncate_dim; drop --dims or add --portable"
            )
        return full
    if record.is_finetuned:
        raise ExportError(
            f"run {record.run_id} is a fine-tuned sentence-transformers model with a FractalHead, "
            f"which has no built-in-modules form; export it without --portable"
        )
    if kind not in EXPORTABLE_HEADS:
        raise ExportError(
            f"a {kind} head (method {method}) has no --portable form: only linear and mlp heads map "
            f"onto built-in sentence-transformers modules (Dense); export it without --portable"
        )
    if dims is None:
        dims = full
    if not (1 <= dims <= full and dims % block == 0):
        raise ExportError(f"--dims must be a multiple of the block dim {block} between {block} and {full}, got {dims}")
    if h.get("block_norm") and dims > block:
        raise ExportError(
            f"the head of run {record.run_id} L2-normalises each {block}-d block, which no built-in "
            f"sentence-transformers module reproduces: a --portable export would match the run only at {block} dims; "
            f"export without --portable (exact at every prefix, needs trust_remote_code=True), or pass --dims {block}"
        )
    return dims


def _check_target(out: Path, overwrite: bool, run_dir: Path | None) -> None:
    if run_dir is not None:
        o, r = out.resolve(), run_dir.resolve()
        if o == r or o in r.parents:
            raise ExportError(f"{out} holds the run itself; export to another folder")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; choose a folder to export to")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"{out} is not empty; choose another folder or pass --overwrite")
        if not (out / EXPORT_FILE).is_file():  # only a folder this function wrote is ever deleted
            raise ExportError(
                f"{out} is not empty and holds no exported model ({EXPORT_FILE}), so --overwrite "
                f"won't delete it; choose an empty or new folder"
            )
    # the rest (a file above it, a folder it can't write in), before any work
    check_output_dir(
        out, overwrite=overwrite, marker=EXPORT_FILE, what="an exported model", option="OUT_DIR", error=ExportError
    )


def _encoder(record: RunRecord, encoder: Encoder | None = None) -> Encoder:
    """The run's encoder (checked against the record), which must be a sentence-transformers folder."""
    want = record.encoder.identity()
    if encoder is None:  # the CPU: the export is checked on the CPU, against the CPU
        encoder = encoder_for_record(record, device="cpu")
    rm = encoder.resolved
    if rm.folder is None or not (rm.folder / "modules.json").is_file():
        raise ExportError(
            f"encoder {rm.name} is not a sentence-transformers folder (it ships as ONNX only), so it "
            f"cannot be exported; train on a sentence-transformers encoder such as minilm-l6"
        )
    ident = encoder.identity().as_dict()
    check_compatible(record, encoder_identity=ident)
    diff = [k for k in ("prompt", "normalize", "max_seq_length", "pooling") if ident[k] != want[k]]
    if diff:
        raise ExportError(
            f"the encoder given differs from run {record.run_id}'s in {', '.join(diff)} "
            f"({', '.join(f'{ident[k]!r} vs {want[k]!r}' for k in diff)}); pass the run's encoder or none"
        )
    return encoder


# ------------------------------------------------------------------ the model
def build_model(head: Head, encoder: Encoder, dims: int, portable: bool = False) -> SentenceTransformer:
    """A ``SentenceTransformer``: the encoder's modules, ``Normalize`` when the head reads normalised
    vectors, then the head -- a :class:`~fractal_embeddings.st.FractalHead` (default) or, ``portable``,
    built-in ``Dense`` layers cut to ``dims``."""
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    rm = encoder.resolved
    assert rm.folder is not None  # _encoder refused encoders without a sentence-transformers folder
    try:
        model = load_model_folder(rm.folder)
    except FractalError:
        raise
    except Exception as ex:  # noqa: BLE001 - any loader failure becomes one line
        raise ExportError(f"cannot load encoder {rm.name} with sentence-transformers ({str(ex)[:160]})") from None
    foreign = [
        type(m).__module__ + "." + type(m).__name__
        for m in model
        if not type(m).__module__.startswith("sentence_transformers.")
    ]
    if foreign:
        raise ExportError(
            f"encoder {rm.name} uses custom modules ({', '.join(foreign)}); export needs built-in "
            f"sentence-transformers modules only"
        )
    if encoder.normalize:
        if not isinstance(model[-1], Normalize):
            model.append(Normalize())
    elif encoder.backend == "onnx":  # the onnx backend runs Transformer + Pooling only
        while isinstance(model[-1], Normalize):
            del model[len(model) - 1]

    cfg = head.head_config
    if not portable:
        model.append(FractalHead.from_head(head))
        return _finish(model, encoder)
    proj: Any = head.proj  # a prefix head's: Linear, or (mlp) Sequential(Linear, GELU, Linear)
    if cfg.kind == "mlp":
        first, act, last = proj
        if type(act) is not torch.nn.GELU or act.approximate != "none":
            raise ExportError(f"the mlp head's activation is {act!r}; export supports torch.nn.GELU() (exact)")
        layers = [(first, torch.nn.GELU()), (last, torch.nn.Identity())]
    else:
        layers = [(proj, torch.nn.Identity())]
    for i, (linear, activation) in enumerate(layers):
        weight = linear.weight.detach().clone()
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        if i == len(layers) - 1:
            weight, bias = weight[:dims].clone(), bias[:dims].clone() if bias is not None else None
        model.append(
            Dense(
                weight.shape[1],
                weight.shape[0],
                bias=bias is not None,
                activation_function=activation,
                init_weight=weight,
                init_bias=bias,
            )
        )
    if cfg.block_norm:  # export_dims allows one block only: normalising it is the head's block norm
        model.append(Normalize())
    return _finish(model, encoder)


def _finish(model: SentenceTransformer, encoder: Encoder) -> SentenceTransformer:
    """The encoder's length and query prompt on the exported model."""
    model.max_seq_length = encoder.max_seq_length
    query = encoder.prompts.get("query", "")
    if query:
        model.prompts = {**model.prompts, "query": query}
        model.default_prompt_name = "query"
    else:
        model.default_prompt_name = None
    return model.eval()


def load_exported(folder: str | os.PathLike, truncate_dim: int | None = None) -> SentenceTransformer:
    """``SentenceTransformer(folder, trust_remote_code=..., truncate_dim=...)`` as a user loads an
    export: ``trust_remote_code`` only when the folder holds this library's modules."""
    return load_model_folder(folder, truncate_dim=truncate_dim)


def check_export(
    folder: str | os.PathLike, ref: np.ndarray, dims: int, block_dim: int, texts: Iterable[str] = PROBE_TEXTS
) -> dict[str, float]:
    """Max abs difference between the saved model and the run's embeddings ``ref`` of ``texts``:
    ``{"<p>": ...}`` for the normalised prefix of every exported length p (a model loaded with
    ``truncate_dim=p``, ``normalize_embeddings=True``), and ``"raw"`` for the unnormalised output."""
    texts = list(texts)
    ref = np.asarray(ref)[:, :dims]
    model = load_exported(folder)
    out = {}
    for p in range(block_dim, dims + 1, block_dim):
        got = model.encode(texts, truncate_dim=p, normalize_embeddings=True, convert_to_numpy=True)
        want = unit_rows(ref[:, :p])
        out[str(p)] = float(np.abs(got - want).max())
    got = model.encode(texts, convert_to_numpy=True)
    out["raw"] = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
    return out


# ------------------------------------------------------------------ model card
def model_card(
    record: RunRecord,
    dims: int,
    check: dict[str, float],
    folder_name: str = "path/to/this/folder",
    portable: bool = False,
) -> str:
    """The README.md of an export (:mod:`~fractal_embeddings.card`: a template filled from the run record
    and the export check)."""
    return render_card(
        record,
        dims,
        check,
        folder_name=folder_name,
        portable=portable,
        finetuned=record.is_finetuned,
        n_probes=len(PROBE_TEXTS),
        tolerance=TOLERANCE,
        export_file=EXPORT_FILE,
    )


# ------------------------------------------------------------------ export
def export_sentence_transformers(
    run_or_dir: Run | str | os.PathLike,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    dims: int | None = None,
    encoder: Encoder | None = None,
    portable: bool = False,
) -> Path:
    """Write a run (a directory or a :class:`~fractal_embeddings.runs.Run`) as a sentence-transformers
    model folder ``out_dir`` (see the module docstring); returns the folder.

    Default: the encoder + a :class:`~fractal_embeddings.st.FractalHead`, exact at every prefix (load
    with ``trust_remote_code=True``). ``portable``: built-in modules only; ``dims`` then exports only
    the first ``dims`` output dims (a multiple of the block dim; block-normed heads: the first block
    only). A non-empty ``out_dir`` is refused unless ``overwrite``, and then only when it holds a
    model exported before (its ``fractal_export.json``). ``encoder`` (an
    :class:`~fractal_embeddings.Encoder` matching the record) is used for the export check instead of
    one built from the record."""
    run, run_dir = _load(run_or_dir)
    record = run.record
    dims = export_dims(record, dims, portable)
    out = Path(out_dir)
    _check_target(out, overwrite, run_dir)
    if record.is_finetuned and run_dir is None:
        raise ExportError("export a fine-tuned run from its directory (the model folder is the run)")
    encoder = None if record.is_finetuned else _encoder(record, encoder)
    # written whole beside OUT, then put in its place in one step: OUT holds the old export or the new one
    with atomic_dir(
        out, overwrite=overwrite, marker=EXPORT_FILE, what="an exported model", option="OUT_DIR", error=ExportError
    ) as tmp:
        with quiet_loaders():
            ref = _write_model(tmp, run, run_dir, encoder, dims, portable)
            if not portable:  # loads without fractal-embeddings: the head's code file at the root
                make_self_contained(tmp)
            check = check_export(tmp, ref, dims, record.head.block_dim)
        worst = max(check.items(), key=lambda kv: kv[1])
        if not worst[1] <= TOLERANCE:
            where = "the unnormalised output" if worst[0] == "raw" else f"{worst[0]} dims"
            raise ExportError(
                f"the exported model differs from run {record.run_id} by {worst[1]:.2e} at {where} "
                f"(tolerance {TOLERANCE:g}); nothing was written"
            )
        (tmp / "README.md").write_text(model_card(record, dims, check, out.name, portable), encoding="utf-8")
        (tmp / EXPORT_FILE).write_text(canonical_json(_export_meta(record, dims, portable, check)), encoding="utf-8")
    return out


def _write_model(
    tmp: Path, run: Run, run_dir: Path | None, encoder: Encoder | None, dims: int, portable: bool
) -> np.ndarray:
    """The model's files in ``tmp`` (a fine-tuned run's folder copied as it is, links refused; else the
    encoder + the head built as sentence-transformers modules); returns the run's own embeddings of
    :data:`PROBE_TEXTS`, which the export must reproduce."""
    if run.record.is_finetuned:
        assert run_dir is not None  # checked by the caller
        check_no_links(run_dir, "fine-tuned run")  # load_run checked it; the copy never follows a link
        ref = run.embed(list(PROBE_TEXTS), device="cpu")
        shutil.copytree(
            run_dir,
            tmp,
            ignore=shutil.ignore_patterns("record.json", "README.md", "*.tmp"),
            dirs_exist_ok=True,
            symlinks=True,
        )
        return ref
    head = run.head
    # export_dims refused runs without a head and runs with encoder layers
    assert isinstance(head, Head) and encoder is not None
    build_model(head, encoder, dims, portable).save(str(tmp), create_model_card=False)
    return head.transform(encoder.encode(list(PROBE_TEXTS)))


def _export_meta(record: RunRecord, dims: int, portable: bool, check: dict[str, float]) -> dict[str, Any]:
    """``fractal_export.json``: what was exported, how it loads, and the check it passed."""
    return {
        "schema": EXPORT_SCHEMA,
        "run_id": record.run_id,
        "dims": dims,
        "block_dim": record.head.block_dim,
        "layout": "portable" if portable else "fractal-head",
        "trust_remote_code": not portable,
        "tolerance": TOLERANCE,
        "check": check,
        "probe_texts": list(PROBE_TEXTS),
        "record": record.to_dict(),
    }
