"""One run end to end: dataset + encoder + method + seed -> trained head + run record.

>>> from fractal_embeddings import load_dataset, train
>>> run = train(load_dataset("clinc150"), method="fractal", seed=42)
>>> run.record.steerability["S"], run.accuracy_table()
>>> run.save("runs/clinc150-fractal")       # record.json + head.safetensors
>>> evaluate("runs/clinc150-fractal")           # re-score the saved head on the same rows

Scoring (see :mod:`fractal_embeddings.evaluation`): leave-one-out prefix k-NN on a stratified sample
(finest level) of ``eval_rows`` test rows drawn with ``eval_seed`` (the same rows for every method
and training seed), for the trained head and for the untrained encoder truncated to the same dims.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FractalError
from .evaluation import (
    accuracy_dict,
    prefix_knn_accuracy,
    steerability_metrics,
    stratified_sample,
)
from .extras import require
from .records import (
    SCHEMA,
    EncoderInfo,
    RunRecord,
    RunRecordError,
    check_compatible,
    library_versions,
    load_record,
    load_weights,
    save_run,
)
from .trust import check_model_folder, check_no_links
from .validation import check_seed, is_int

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .backbone import TunedHead
    from .data.taxonomy import Split, TaxonomyDataset
    from .encoders import Encoder
    from .heads import Head
    from .training import TrainConfig


@dataclass
class Run:
    """A trained (or, for ``flat``, untrained) head and its run record; the one facade over a run.

    ``path``: the run directory it was loaded from. A ``fractal finetune`` run has no separate head:
    its record's encoder is the run directory itself (a sentence-transformers folder whose last
    module is the trained :class:`~fractal_embeddings.st.FractalHead`), so :meth:`transform` is the
    identity and :meth:`embed` runs that model (``model``: the in-memory model of a fresh run)."""

    record: RunRecord
    head: Head | TunedHead | None = None
    path: Path | None = None
    model: SentenceTransformer | None = None  # a fresh fine-tuned SentenceTransformer (finetune.py), not yet saved

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        if self.is_finetuned:
            from .finetune import save_finetuned

            return save_finetuned(out_dir, self, overwrite=overwrite)
        return save_run(out_dir, self.record, self.head, overwrite=overwrite)

    @property
    def is_finetuned(self) -> bool:
        """A ``fractal finetune`` run: the model folder is the run."""
        return self.record.is_finetuned

    def encoder(self, device: str | None = "auto") -> Encoder:
        """The encoder whose vectors :meth:`transform` reads (:func:`encoder_for_record`)."""
        return encoder_for_record(self.record, self.path, device=device)

    def embed(
        self,
        texts: Iterable[str],
        role: str = "query",
        encoder: Encoder | None = None,
        cache: bool = False,
        device: str | None = "auto",
    ) -> np.ndarray:
        """Texts -> the run's steerable embeddings ``(n, dim)`` (encoder + head)."""
        texts = list(texts)
        if encoder is None and self.model is not None and self.path is None:  # a fresh fine-tuned run, not saved
            return np.asarray(
                self.model.encode(texts, convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False),
                dtype=np.float32,
            )
        enc = encoder if encoder is not None else self.encoder(device)
        X = enc.embed(texts, role=role) if cache else enc.encode(texts, role=role)
        return self.transform(X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Encoder vectors -> steerable embeddings (``flat``: truncation)."""
        return _apply(self.head, X, self.dim)

    @property
    def dim(self) -> int:
        return self.record.head.dim

    @property
    def level_names(self) -> list[str]:
        return self.record.level_names

    def accuracy_table(self, baseline: bool = False) -> np.ndarray:
        """``acc[j-1, level]`` of the trained head (or of the untrained encoder)."""
        return (self.record.baseline if baseline else self.record.scores).table(self.level_names)


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


def score(E: np.ndarray, labels: np.ndarray, block_dim: int, n_blocks: int, k: int, level_names: Sequence[str]) -> dict:
    """Accuracy dict + steerability metrics of embeddings ``E`` (already restricted to the eval rows)."""
    acc = prefix_knn_accuracy(E, labels, block_dim=block_dim, n_blocks=n_blocks, k=k)
    return {"accuracy": accuracy_dict(acc, level_names, block_dim), "steerability": steerability_metrics(acc)}


def blocks_that_fit(dim: int, block_dim: int, n_blocks: int) -> int:
    """How many of the head's prefixes the raw encoder (``dim`` wide) can be truncated to."""
    return min(n_blocks, dim // block_dim)


def score_untrained(
    X: np.ndarray, labels: np.ndarray, block_dim: int, n_blocks: int, k: int, level_names: Sequence[str]
) -> dict:
    """:func:`score` of the raw encoder vectors truncated to the same prefixes (as many as fit)."""
    blocks = blocks_that_fit(X.shape[1], block_dim, n_blocks)
    return score(X[:, : blocks * block_dim], labels, block_dim, blocks, k, level_names)


def as_encoder(encoder: Encoder | str | None, device: str | None = "auto") -> Encoder:
    if encoder is None or isinstance(encoder, str):
        from .encoders import Encoder

        return Encoder(encoder, device=device) if encoder else Encoder(device=device)
    return encoder


def encoder_for_record(
    record: RunRecord, run_dir: str | os.PathLike | None = None, *, device: str | None = "auto"
) -> Encoder:
    """The encoder a run record was made with: its model, backend, length, normalisation and the
    query prompt the run was encoded with (a custom one included). For a ``fractal finetune`` run
    (encoder ``model`` ``"."``) the encoder is the run directory ``run_dir`` itself."""
    e = record.encoder
    if e.in_run:
        from .finetune import model_encoder

        return model_encoder(record, run_dir, device=device)
    return _encoder_of(e, device)


def _encoder_of(e: EncoderInfo, device: str | None) -> Encoder:
    from .encoders import Encoder

    enc = Encoder(
        e.model or e.name, backend=e.backend, max_seq_length=e.max_seq_length, normalize=e.normalize, device=device
    )
    enc.prompts = {**enc.prompts, "query": e.prompt}
    return enc


def base_encoder_for_record(record: RunRecord, *, device: str | None = "auto") -> Encoder:
    """The untrained encoder a run's baseline scores come from (a fine-tuned run: the one it started from)."""
    if record.encoder.base is not None:
        return _encoder_of(record.encoder.base, device)
    return encoder_for_record(record, device=device)


def dataset_for_record(record: RunRecord) -> TaxonomyDataset:
    """The dataset (and subset) a run record was trained on."""
    from .data import load_dataset

    ds = record.dataset
    args = dict(ds.load_args or {"name": ds.name})
    dataset = load_dataset(args.pop("name"), **{k: v for k, v in args.items() if v is not None})
    if ds.subset:
        dataset = dataset.subset(ds.subset["rows"], ds.subset["seed"])
    return dataset


def embed_split(encoder: Encoder, split: Split) -> np.ndarray:
    """Cached vectors of a split. A subset is cut from its full split's vectors when those are
    cached; otherwise only the subset's texts are encoded (and cached)."""
    root, rows = split.source_rows()
    full = encoder.cached(root.texts) if rows is not None else None
    if full is not None:
        return np.asarray(full)[rows]
    return encoder.embed(split.texts)


def dataset_block(dataset: TaxonomyDataset) -> dict:
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
    import torch

    from .heads import HeadConfig, build_head
    from .objectives import get_objective
    from .training import TrainConfig, fit

    dataset.require_hierarchy()
    objective = get_objective(method, **(objective_options or {}))
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
    check_sizes(dataset, cfg if objective.head_kind is not None else None, eval_split, eval_rows, k)  # before any work
    if retrieval:
        require("index", "retrieval metrics (FAISS exact search)")
    rows = eval_row_sample(dataset, eval_split, eval_rows, eval_seed)
    from .devices import resolve_device

    device = resolve_device(device)
    encoder = as_encoder(encoder, device)
    X = {s: embed_split(encoder, dataset.split(s)) for s in ("train", "val", eval_split)}
    enc_dim = X["train"].shape[1]
    if blocks_that_fit(enc_dim, block_dim, n_blocks) < 1:  # before training: the baseline could not be scored
        raise FractalError(
            f"block dim {block_dim} is wider than the encoder's {enc_dim} dims, so the untrained encoder "
            f"can't be scored at any prefix; use a block dim <= {enc_dim} (--block-dim)"
        )
    X_fit = X
    if finetune_layers:  # the trainer reads token states; scoring the untrained encoder still reads X
        from .backbone import split_states

        X_fit = {s: split_states(encoder, dataset.split(s), finetune_layers) for s in ("train", "val", eval_split)}
    if objective.head_kind is None and enc_dim < head_cfg.dim:
        raise FractalError(
            f"flat truncates the encoder to {head_cfg.dim} dims but it has only {enc_dim}; use fewer blocks"
        )
    Y = {s: dataset.split(s).labels for s in X}

    t0 = time.perf_counter()
    head: Head | TunedHead | None = None
    fit_result = None
    if objective.head_kind is not None:
        torch.manual_seed(seed)
        head = build_head(head_cfg, enc_dim, [lv.n_classes for lv in dataset.levels])
        if finetune_layers:
            from .backbone import EncoderTop, TunedHead

            head = TunedHead(EncoderTop(encoder, finetune_layers), head)
        fit_result = fit(
            head,
            objective,
            X_fit["train"],
            Y["train"],
            X_fit["val"],
            Y["val"],
            cfg,
            seed,
            device=device,
            progress=progress,
        )
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    X_eval, y_eval = np.asarray(X[eval_split])[rows], Y[eval_split][rows]
    head_block = head.config() if head is not None else {"kind": None, "n_blocks": n_blocks, "block_dim": block_dim}
    E_eval = _apply(head, np.asarray(X_fit[eval_split])[rows], n_blocks * block_dim)
    scores = score(E_eval, y_eval, block_dim, n_blocks, k, dataset.level_names)
    baseline = score_untrained(X_eval, y_eval, block_dim, n_blocks, k, dataset.level_names)
    extra = {}
    if retrieval:
        extra["retrieval"] = _retrieval(
            head, E_eval, X_eval, X, X_fit, eval_split, y_eval, Y, n_blocks, block_dim, dataset.level_names
        )
    eval_s = time.perf_counter() - t0

    ident = {**encoder.identity().as_dict(), "dim": enc_dim, "model": encoder.model}
    config = {
        "head": head_block,
        "objective": objective.config(),
        "train": cfg.as_dict() if head is not None else None,
        "eval": eval_block(eval_split, eval_rows, rows, eval_seed, k),
    }
    digest = run_digest(config, ident["fingerprint"], seed)
    training = None
    if fit_result is not None:
        assert head is not None  # a fit needs a head
        training = {
            "best_epoch": fit_result.best_epoch,
            "history": fit_result.history,
            "n_params": sum(p.numel() for p in head.parameters()),
        }
    record = RunRecord.from_dict(
        {
            "schema": SCHEMA,
            "run_id": f"{dataset.name}-{objective.name}-seed{seed}-{digest}",
            "method": objective.name,
            "seed": seed,
            "dataset": dataset_block(dataset),
            "encoder": ident,
            "config": config,
            "versions": library_versions(),
            **scores,
            "baseline": baseline,
            "training": training,
            "timing": timing_block(train_s, eval_s, device),
            "weights": None,
            **extra,
        }
    )
    return Run(record=record, head=head)


def eval_block(split: str, max_rows: int | None, rows: np.ndarray, sample_seed: int, k: int) -> dict:
    """A record's ``config.eval``: the scored split, the sample asked for and drawn, k, the rows' sha256."""
    return {
        "split": split,
        "max_rows": max_rows,
        "n_rows": len(rows),
        "sample_seed": sample_seed,
        "k": k,
        "rows_sha256": hashlib.sha256(np.asarray(rows).astype(np.int64).tobytes()).hexdigest(),
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


def _apply(head: Head | TunedHead | None, X: np.ndarray, dim: int) -> np.ndarray:
    """Encoder vectors -> embeddings: the head's, or (no head) the encoder truncated to ``dim``."""
    X = np.asarray(X, dtype=np.float32)
    return head.transform(X) if head is not None else np.ascontiguousarray(X[:, :dim])


def _retrieval(
    head: Head | TunedHead | None,
    E_eval: np.ndarray,
    X_eval: np.ndarray,
    X: dict[str, np.ndarray],
    X_fit: dict[str, np.ndarray],
    eval_split: str,
    q_labels: np.ndarray,
    Y: dict[str, np.ndarray],
    n_blocks: int,
    block_dim: int,
    level_names: Sequence[str],
) -> dict:
    """Retrieval metrics of the trained head and of the untrained encoder (queries: the scored rows,
    already embedded: ``E_eval`` by the head, ``X_eval`` by the encoder)."""
    from .retrieval import prefix_retrieval

    c_labels = Y["train"]
    trained = prefix_retrieval(
        E_eval, q_labels, _apply(head, X_fit["train"], n_blocks * block_dim), c_labels, block_dim, n_blocks, level_names
    )
    blocks = blocks_that_fit(X["train"].shape[1], block_dim, n_blocks)
    dims = blocks * block_dim
    base = prefix_retrieval(
        X_eval[:, :dims], q_labels, np.asarray(X["train"])[:, :dims], c_labels, block_dim, blocks, level_names
    )
    return {
        "queries": f"{eval_split} (the scored rows)",
        "corpus": "train",
        "n_queries": len(q_labels),
        "n_corpus": len(c_labels),
        "trained": trained,
        "baseline": base,
    }


def load_run(run_dir: str | os.PathLike) -> Run:
    """A saved run (record + head), with the weights checked against the record."""
    from .heads import head_from_config

    record = load_record(run_dir)
    path = Path(run_dir)
    path = path.parent if path.is_file() else path
    if record.is_finetuned:  # the folder is the model: no link out of it, no code but ours (before any work)
        check_no_links(path, "fine-tuned run")
        check_model_folder(path)
    state = load_weights(path, record)
    head = None
    if state is not None:
        cfg = record.head.to_dict()
        head = head_from_config(cfg)
        expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if expected != got:
            assert record.weights is not None  # load_weights found the weights file
            raise RunRecordError(f"{path / record.weights.file}: tensor shapes {got} don't fit head {cfg}")
        head.load_state_dict(state)
        head.eval()
    return Run(record=record, head=head, path=path)


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
    if run.head is not None and run.head.input_dim != X.shape[1]:
        raise FractalError(f"the head expects {run.head.input_dim}-d encoder vectors, the encoder gives {X.shape[1]}-d")
    h = rec.head
    labels = dataset.split(ev.split).labels[rows]
    out = score(run.transform(X[rows]), labels, h.block_dim, h.n_blocks, k, dataset.level_names)
    X_base = X
    if run.is_finetuned:  # the baseline is the encoder the run started from
        X_base = np.asarray(embed_split(base_encoder_for_record(rec, device=device), dataset.split(ev.split)))
    out["baseline"] = score_untrained(X_base[rows], labels, h.block_dim, h.n_blocks, k, dataset.level_names)
    out["eval"] = {**ev.to_dict(), **eval_block(ev.split, rows_n, rows, seed, k)}
    return out


# ------------------------------------------------------------------ checks made before the work
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


def _record_name(run: Run) -> str:
    path = getattr(run, "path", None)
    return f"{path}/record.json" if path is not None else f"record.json of run {run.record.run_id}"


def scored_as_record(record: RunRecord, rescored: dict) -> bool:
    """Whether a re-score (:func:`evaluate`) used the record's protocol: same split, rows and k."""
    a, b = record.eval.to_dict(), rescored.get("eval", {})
    return all(a.get(key) == b.get(key) for key in ("split", "n_rows", "rows_sha256", "k"))


def _flat_scores(d: dict | None, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in (d or {}).items():
        name = f"{prefix} {key}".strip()
        if isinstance(v, dict):
            out.update(_flat_scores(v, name))
        else:
            out[name] = v
    return out


def compare_scores(record: RunRecord, rescored: dict, tol: float = 1e-9) -> list[str]:
    """Differences between a run record's scores and a re-score of the run (:func:`evaluate`):
    accuracy, steerability and the untrained baseline's, each value equal within ``tol`` (the same
    rows, k and weights give the same numbers up to float rounding). One string per difference,
    e.g. ``"accuracy 64 domain: record 0.91, re-score 0.66"``; ``[]`` when they agree. A re-score on
    other rows than the record's gives one difference saying so."""
    if not scored_as_record(record, rescored):
        a, b = record.eval.to_dict(), rescored.get("eval", {})
        return [
            f"scored rows: record {a.get('n_rows')} {a.get('split')} rows (k={a.get('k')}), re-score "
            f"{b.get('n_rows')} {b.get('split')} rows (k={b.get('k')})"
        ]
    diffs = []
    for section, mine, theirs in (
        ("accuracy", record.accuracy, rescored.get("accuracy")),
        ("steerability", record.steerability, rescored.get("steerability")),
        ("baseline accuracy", record.baseline.accuracy, (rescored.get("baseline") or {}).get("accuracy")),
        ("baseline steerability", record.baseline.steerability, (rescored.get("baseline") or {}).get("steerability")),
    ):
        a, b = _flat_scores(mine, section), _flat_scores(theirs, section)
        for key in sorted(set(a) | set(b)):
            x: Any = a.get(key)  # numbers, or whatever else a damaged record holds
            y: Any = b.get(key)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            same = abs(x - y) <= tol if numbers else x == y
            if not same:
                mine_s = "missing" if key not in a else x
                theirs_s = "missing" if key not in b else y
                diffs.append(f"{key}: record {mine_s}, re-score {theirs_s}")
    return diffs
