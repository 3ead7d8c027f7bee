"""Fine-tuning the whole encoder with the head: ``fractal finetune`` (sentence-transformers' trainer).

Everything else in the library trains a head on frozen, cached encoder vectors. Here the encoder and
a :class:`~fractal_embeddings.st.FractalHead` train with ``SentenceTransformerTrainer`` and
:class:`~fractal_embeddings.st.FractalLoss` (the same objective code as ``fractal train``), in the
recipe of :mod:`~fractal_embeddings.finetune_recipe` (defaults:
:data:`~fractal_embeddings.finetune_config.DEFAULT_RECIPE`): the head warmed up on the frozen
encoder, ``epochs`` joint epochs (AdamW, cosine decay, weight decay 0.01; the encoder at
``encoder_lr`` for its top layer, ``layer_decay`` x per layer below; the head at ``lr``) over (at
most ``max_train_rows``, stratified) training rows, then a fresh head re-fitted on the frozen fine-
tuned encoder. The run is scored like every run: leave-one-out prefix k-NN on the same sampled test
rows, next to the untrained encoder.

The run directory is a sentence-transformers folder (``SentenceTransformer(DIR,
trust_remote_code=True, truncate_dim=64)``) plus ``record.json``. The record's encoder is the folder
itself (``"model": "."``; ``"base"``: the encoder it started from), its fingerprint covers every
weight file, and it has no separate head (``weights`` null), so ``fractal eval``, ``index build``,
``search``, ``explore``, ``export`` and ``report`` take it like any run. It is written into a
temporary sibling directory and renamed into place: a killed run leaves nothing half-written.

With the encoder trained, the stop-gradient of ``fractal`` no longer keeps fine-level information
out of the first block: the fine-level terms cannot write into the first block's head weights, but
they still reshape the encoder that block reads. The head stages are what keep the zoom; see
README ("When to fine-tune") and the ``finetune`` experiment.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.normalize import Normalize

from .atomic import atomic_dir
from .devices import resolve_device
from .encoders import Encoder, embed_split
from .errors import EncoderError, FractalError
from .evaluation import eval_block, score, score_untrained, stratified_sample
from .extras import require
from .finetune_config import DEFAULT_RECIPE, FinetuneRecipe
from .finetune_recipe import WEIGHT_DECAY, run_recipe
from .model_files import folder_fingerprint, read_modules
from .objectives import Objective, get_objective
from .recording import build_record, check_sizes, eval_row_sample
from .records import RECORD_FILE, RunRecord, RunRecordError, canonical_json, load_record
from .run import Run, encoder_of
from .st import FractalLoss, load_model_folder, make_self_contained, quiet_loaders
from .training import TrainConfig
from .trust import OWN_TYPES, check_no_links
from .validation import check_fields, check_matrix, check_seed, check_texts

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset


@dataclass
class FinetunedRun(Run):
    """A whole fine-tuned sentence-transformers model whose last module is the trained head: the run
    folder is the model (``path``), or ``model`` holds it in memory (a fresh run, not saved yet).
    :meth:`transform` is the identity: the model's output is the run's embedding."""

    model: SentenceTransformer | None = None  # a fresh fine-tuned model (finetune()), not yet saved

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        return save_finetuned(out_dir, self, overwrite=overwrite)

    def encoder(self, device: str | None = "auto") -> Encoder:
        return model_encoder(self.record, self.path, device=device)

    def baseline_encoder(self, device: str | None = "auto") -> Encoder | None:
        base = self.record.encoder.base
        if base is None:
            raise FractalError(
                f"run {self.record.run_id}: a fine-tuned run's record names the encoder it started from "
                f"(encoder.base); restore the field or fine-tune again"
            )
        return encoder_of(base, device)

    def embed(
        self,
        texts: Iterable[str],
        role: str = "query",
        encoder: Encoder | None = None,
        cache: bool = False,
        device: str | None = "auto",
    ) -> np.ndarray:
        if encoder is None and self.model is not None and self.path is None:  # fresh, not saved: the model itself
            return _encode(self.model, check_texts(texts))
        return super().embed(texts, role=role, encoder=encoder, cache=cache, device=device)

    def transform(self, X: Any) -> np.ndarray:
        return check_matrix(X, "X", width=self.dim)


def _encode(model: SentenceTransformer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    out = model.encode(
        texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False
    )
    return np.asarray(out, dtype=np.float32)


def _st_model(encoder: Encoder, device: str) -> SentenceTransformer:
    """The encoder's sentence-transformers model on ``device`` (checked: a folder, no prompts)."""
    rm = encoder.resolved
    if rm.folder is None or not (rm.folder / "modules.json").is_file():
        raise EncoderError(
            f"{rm.name} ships as ONNX only; fine-tuning needs a sentence-transformers folder "
            f"(e.g. --model minilm-l6, a hub id or a local folder)"
        )
    if any(encoder.prompts.values()):
        raise EncoderError(f"{rm.name} adds prompts to its inputs; fine-tuning supports models without prompts only")
    try:
        model = load_model_folder(rm.folder, device=device)
    except FractalError:
        raise
    except Exception as e:  # noqa: BLE001 - any loader failure becomes one line
        raise EncoderError(f"cannot load {rm.name} with sentence-transformers ({str(e)[:160]})") from None
    model.max_seq_length = encoder.max_seq_length
    if encoder.normalize and not isinstance(model[-1], Normalize):
        model.append(Normalize())  # the head reads L2-normalised vectors, as on frozen ones
    return model


def finetune(
    dataset: TaxonomyDataset,
    method: str = "fractal",
    *,
    model: str = "minilm-l6",
    seed: int = 42,
    epochs: int = DEFAULT_RECIPE.epochs,
    lr: float = DEFAULT_RECIPE.lr,
    encoder_lr: float = DEFAULT_RECIPE.encoder_lr,
    batch_size: int = DEFAULT_RECIPE.batch_size,
    warmup: bool = DEFAULT_RECIPE.warmup,
    refit: bool = DEFAULT_RECIPE.refit,
    layer_decay: float = DEFAULT_RECIPE.layer_decay,
    max_train_rows: int | None = None,
    n_blocks: int = 4,
    block_dim: int = 64,
    objective_options: dict | None = None,
    device: str | None = "auto",
    eval_split: str = "test",
    eval_rows: int | None = 2000,
    eval_seed: int = 0,
    k: int = 5,
    show_progress: bool = True,
) -> Run:
    """Fine-tune ``model`` + a steerable head on ``dataset`` with the recipe of
    :mod:`~fractal_embeddings.finetune_recipe` (``warmup``: fit the head on the frozen encoder first;
    ``epochs`` joint epochs, the encoder at ``encoder_lr`` decayed by ``layer_decay`` per layer down, the
    head at ``lr``; ``refit``: a fresh head fitted on the frozen fine-tuned encoder with the method's
    ``fractal train`` recipe). Returns an unsaved :class:`FinetunedRun` (``run.save(DIR)`` writes the
    model folder + record)."""
    require("train", "fine-tuning (sentence-transformers' trainer)")
    check_seed(seed)
    recipe = FinetuneRecipe(epochs, lr, encoder_lr, batch_size, layer_decay, warmup, refit)  # checked: one line
    if max_train_rows is not None and max_train_rows < 2:
        raise FractalError(f"max_train_rows must be >= 2, got {max_train_rows}")
    objective = _check_finetune(dataset, method, objective_options, n_blocks, eval_split, eval_rows, k)
    device = resolve_device(device)  # the edge: everything below receives the resolved device
    rows = eval_row_sample(dataset, eval_split, eval_rows, eval_seed)
    base = _base_encoder(model, device)
    st_model = _st_model(base, device)
    ev_split = dataset.split(eval_split)

    t0 = time.perf_counter()
    loss = _loss(st_model, dataset, objective, n_blocks, block_dim, seed)
    train_split = dataset.split("train")
    train_rows = stratified_sample(train_split.labels[:, -1], max_train_rows, 0)  # the same rows for every seed
    val_split = dataset.splits.get("val")
    val = (val_split.texts, val_split.labels) if val_split is not None else None
    history, stages = run_recipe(
        st_model, loss, [train_split.texts[i] for i in train_rows], train_split.labels[train_rows], val, recipe,
        method=objective, seed=seed, device=device, show_progress=show_progress,
    )  # fmt: skip
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    E = _encode(st_model, [ev_split.texts[i] for i in rows], batch_size=128)
    y_eval = ev_split.labels[rows]
    scores = score(E, y_eval, block_dim, n_blocks, k, dataset.level_names)
    X_base = np.asarray(embed_split(base, ev_split))[rows]
    baseline = score_untrained(X_base, y_eval, block_dim, n_blocks, k, dataset.level_names)
    eval_s = time.perf_counter() - t0

    base_ident = {**base.identity().as_dict(), "dim": int(X_base.shape[1]), "model": base.model}
    config = {
        "head": {**loss.head.head.config(), "in_model": True},
        "objective": objective.config(),
        "train": _train_block(recipe, objective, max_train_rows, len(train_rows)),
        "eval": eval_block(eval_split, eval_rows, rows, eval_seed, k),
    }
    record = build_record(
        dataset,
        objective.name,
        seed,
        encoder=_encoder_block(base_ident, objective.name, int(E.shape[1])),
        config=config,
        fingerprint=base_ident["fingerprint"],
        scores=scores,
        baseline=baseline,
        training={
            "best_epoch": epochs,
            "history": history,
            "n_params": sum(p.numel() for p in st_model.parameters()),
            "stages": {k: {"best_epoch": r.best_epoch, "history": r.history} for k, r in stages.items()},
        },
        train_s=train_s,
        eval_s=eval_s,
        device=device,
        kind="finetuned",
    )
    return FinetunedRun(record=record, model=st_model)


def _check_finetune(
    dataset: TaxonomyDataset,
    method: str,
    objective_options: dict | None,
    n_blocks: int,
    eval_split: str,
    eval_rows: int | None,
    k: int,
) -> Objective:
    """The objective of a fine-tuning, with the dataset and sizes checked (one line each, before any work)."""
    dataset.require_hierarchy()
    objective = get_objective(method, **(objective_options or {}))
    check_fields(objective, f"method {objective.name}")
    if objective.head_kind is None:
        raise FractalError(
            f"method {objective.name} trains no head, so there is nothing to fine-tune with; use e.g. fractal"
        )
    objective.check(n_blocks, dataset.n_levels)
    if "train" not in dataset.splits:
        raise FractalError(f"dataset '{dataset.name}' has no 'train' split; fine-tuning needs one")
    check_sizes(dataset, None, eval_split, eval_rows, k)
    return objective


def _base_encoder(model: str, device: str) -> Encoder:
    """The encoder fine-tuning starts from; a run folder given as ``model`` is named as such."""
    folder = Path(str(model)).expanduser()
    if (folder / RECORD_FILE).is_file():
        try:
            e = load_record(folder).encoder
            hint = f" (this run's: {(e.base or e).model or (e.base or e).name})"
        except FractalError:
            hint = ""
        raise FractalError(
            f"{model} is a run folder, not an encoder; give --model the encoder to fine-tune{hint}, e.g. "
            f"minilm-l6, a hub id or a sentence-transformers folder"
        )
    return Encoder(model, device=device)


def _loss(
    st_model: SentenceTransformer,
    dataset: TaxonomyDataset,
    objective: Objective,
    n_blocks: int,
    block_dim: int,
    seed: int,
) -> FractalLoss:
    """The trainer's loss, which appends the (seeded) head to ``st_model``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FractalLoss(
            st_model,
            [lv.n_classes for lv in dataset.levels],
            objective,
            n_blocks=n_blocks,
            block_dim=block_dim,
            level_names=dataset.level_names,
            seed=seed,
        )


def _train_block(recipe: FinetuneRecipe, objective: Objective, max_train_rows: int | None, train_rows: int) -> dict:
    """A fine-tuned run's ``config.train``: the recipe, and the head stages' ``fractal train`` settings."""
    head_cfg = TrainConfig.resolve(objective.trainer_defaults, None)
    return {
        **recipe.as_dict(),
        "weight_decay": WEIGHT_DECAY,
        "lr_schedule": "cosine",
        "select": "last",
        "max_train_rows": max_train_rows,
        "train_rows": train_rows,
        "finetune": "full",
        "trainer": "sentence-transformers",
        **({"head_train": head_cfg.as_dict()} if recipe.warmup or recipe.refit else {}),
    }


def _encoder_block(base_ident: dict, method: str, dim: int) -> dict:
    """A fine-tuned run's ``encoder``: the run folder itself (fingerprinted when saved), from ``base``."""
    return {
        "name": finetuned_name(base_ident["name"], method),
        "fingerprint": None,
        "backend": "sentence-transformers",
        "pooling": base_ident["pooling"],
        "normalize": False,
        "max_seq_length": base_ident["max_seq_length"],
        "prompt": "",
        "dim": dim,
        "model": ".",
        "base": base_ident,
    }


def finetuned_name(base_name: str, method: str) -> str:
    return f"{base_name} fine-tuned ({method})"


def model_encoder(record: RunRecord, run_dir: str | os.PathLike | None, *, device: str | None = "auto") -> Encoder:
    """An :class:`~fractal_embeddings.Encoder` over a saved fine-tuned run's folder (its output is the
    run's embedding: no normalisation, no prompt), checked against the record's fingerprint (a one-line
    error naming the missing files, or saying the files changed). A fresh run's in-memory model embeds
    through :meth:`FinetunedRun.embed` instead."""
    if run_dir is None:
        raise FractalError(
            f"run {record.run_id} is a fine-tuned model that is not saved yet; save it "
            f"(run.save(DIR)) and load it with load_run(DIR)"
        )
    e = record.encoder
    enc = Encoder(
        str(run_dir),
        backend="sentence-transformers",
        normalize=False,
        max_seq_length=e.max_seq_length,
        prompts={"query": "", "passage": ""},
        device=device,
        name=e.name,
    )
    have = enc.identity().fingerprint
    if e.fingerprint is not None and have != e.fingerprint:
        missing = missing_model_files(Path(run_dir))
        what = f"files missing: {', '.join(missing)}" if missing else "its files changed since it was saved"
        raise RunRecordError(
            f"{run_dir}: the fine-tuned model in this run folder is not the one the run was saved with ({what}; "
            f"fingerprint {have[:12]}, record {e.fingerprint[:12]}); restore the whole run folder from a copy, "
            f"or fine-tune again"
        )
    return enc


def missing_model_files(folder: Path) -> list[str]:
    """The files a saved fine-tuned model needs that ``folder`` lacks: the root's modules list, config,
    tokenizer and weights, and each module's subfolder (the head's weights in it)."""
    need = ["modules.json", "config.json", "tokenizer.json"]
    out = [f for f in need if not (folder / f).is_file()]
    if not any((folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        out.append("model.safetensors")
    for m in read_modules(folder):
        sub = str(m.get("path") or "")
        if sub and not (folder / sub).is_dir():
            out.append(f"{sub}/")
        elif sub and m.get("type") in OWN_TYPES and not (folder / sub / "model.safetensors").is_file():
            out.append(f"{sub}/model.safetensors")
    return out


def save_finetuned(out_dir: str | os.PathLike, run: FinetunedRun, overwrite: bool = False) -> Path:
    """Write a fine-tuned run: the model folder + ``record.json`` (with the folder's fingerprint),
    written whole beside ``out_dir`` and put in its place in one step (:mod:`~fractal_embeddings.atomic`);
    an existing run is replaced only with ``overwrite``."""
    out = Path(out_dir)
    # atomic_dir gives the files the umask's modes before the swap (safetensors writes 0o600)
    with quiet_loaders(), atomic_dir(out, overwrite=overwrite, marker=RECORD_FILE, what="a run") as tmp:
        if run.model is not None:
            run.model.save(str(tmp), create_model_card=False)
        elif run.path is not None:
            check_no_links(run.path, "fine-tuned run")
            shutil.copytree(
                run.path, tmp, ignore=shutil.ignore_patterns(RECORD_FILE, "*.tmp"), dirs_exist_ok=True, symlinks=True
            )
        else:
            raise FractalError(f"run {run.record.run_id} holds no model to save")
        make_self_contained(tmp)  # the run folder loads with sentence-transformers alone, too
        record = run.record.replace(encoder=dc_replace(run.record.encoder, fingerprint=folder_fingerprint(tmp)))
        (tmp / RECORD_FILE).write_text(canonical_json(record.to_dict()), encoding="utf-8")
    run.record, run.path = record, out
    return out
