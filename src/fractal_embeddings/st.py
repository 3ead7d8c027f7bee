"""Steerable models in sentence-transformers: a head module, a trainer loss and an evaluator.

sentence-transformers' ``MatryoshkaLoss`` trains every prefix on the same label. :class:`FractalLoss`
gives each prefix its own level of a taxonomy, with this library's objectives (the default
``fractal``, its control ``fractal-mrl``, the seed's ``v5-paper`` and ``mrl``, and every other
method that trains a head), through the same objective code as ``fractal train``::

    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from fractal_embeddings.st import FractalLoss, SteerabilityEvaluator

    model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    loss = FractalLoss(model, n_classes=(10, 150))        # appends a FractalHead to the model
    trainer = SentenceTransformerTrainer(model=model, train_dataset=ds, loss=loss)  # ds: "text", "label"
    trainer.train()
    model.save("clinc-steerable")
    coarse = SentenceTransformer("clinc-steerable", trust_remote_code=True, truncate_dim=64)

The dataset has one text column and one ``label`` column holding, per row, the class index at every
level (coarse -> fine), so the trainer hands the loss a ``(batch, n_levels)`` integer tensor.

:class:`FractalHead` is a sentence-transformers ``Module`` (``save``/``load``, ``config_keys``,
``get_config_dict``) wrapping any head of :mod:`fractal_embeddings.heads`: it replaces
``sentence_embedding`` by the head's output, so ``truncate_dim`` cuts the steerable vector and
``normalize_embeddings=True`` normalises the cut, exactly the library's normalised prefix. It is the
module of :mod:`fractal_embeddings.fractal_head` (one file, torch + sentence-transformers only) with
the library's checks. Because it is not a built-in class, sentence-transformers (>= 6) loads a folder
holding it only with ``trust_remote_code=True``. :func:`make_self_contained` (applied by ``fractal
export`` and ``fractal finetune``) puts ``fractal_head.py`` at a saved folder's root and names the
type ``fractal_head.FractalHead``, so the folder loads without this package, and re-saved copies too
(the module's ``save`` writes the file to each new root). The library itself loads such folders
without ``trust_remote_code`` (:func:`fractal_embeddings.trust.load_model_folder`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
from torch import nn

from . import fractal_head, trust
from .errors import FractalError
from .evaluation import score, stratified_sample
from .fractal_head import HEAD_INPUT
from .heads import HeadConfig
from .objectives import get_objective
from .validation import check_fields, check_int, check_labels, check_seed, check_texts

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.model import BaseModel

    from .data.taxonomy import TaxonomyDataset
    from .objectives import Objective


CITATION = """@inproceedings{khosla2020supervised,
    title={Supervised Contrastive Learning},
    author={Prannay Khosla and Piotr Teterwak and Chen Wang and Aaron Sarna and Yonglong Tian and Phillip Isola and Aaron Maschinot and Ce Liu and Dilip Krishnan},
    booktitle={Advances in Neural Information Processing Systems},
    year={2020},
    eprint={2004.11362},
    archivePrefix={arXiv},
}
@inproceedings{kusupati2022matryoshka,
    title={Matryoshka Representation Learning},
    author={Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek Jain and Ali Farhadi},
    booktitle={Advances in Neural Information Processing Systems},
    year={2022},
    eprint={2205.13147},
    archivePrefix={arXiv},
}"""  # noqa: E501 (BibTeX entries as published: one author list per line)


class FractalHead(fractal_head.FractalHead):
    """A steerable head as a sentence-transformers module: ``sentence_embedding`` -> head output.

    Any head kind of :mod:`fractal_embeddings.heads` (``linear``, ``mlp``, ``heal``, ``topk``), with
    its per-level classifiers (used by :class:`FractalLoss`; they don't touch the embedding). The
    defaults are the default method's head: ``mlp`` (hidden 512), 4 x 64 dims, block norm.

    The module of :mod:`fractal_embeddings.fractal_head` (the file exported folders carry), with the
    library's checks: a bad configuration raises :class:`~fractal_embeddings.errors.FractalError`."""

    head_config_class = HeadConfig

    @classmethod
    def for_method(
        cls,
        in_features: int,
        n_classes: Iterable[int],
        method: str | Objective = "fractal",
        n_blocks: int = 4,
        block_dim: int = 64,
        **objective_options: Any,
    ) -> FractalHead:
        """The head ``method`` trains (its kind, hidden width and block norm), untrained."""
        objective = get_objective(method, **objective_options)
        if objective.head_kind is None:
            raise FractalError(f"method {objective.name} trains no head; choose one that does (see `fractal methods`)")
        return cls(in_features, n_classes, n_blocks=n_blocks, block_dim=block_dim, **objective.head_options())


PACKAGE_TYPE = f"{FractalHead.__module__}.{FractalHead.__name__}"  # what model.save() names this class


def load_model_folder(
    folder: str | os.PathLike, *, device: str = "cpu", truncate_dim: int | None = None
) -> SentenceTransformer:
    """:func:`fractal_embeddings.trust.load_model_folder` with this library's head types loaded as the
    installed :class:`FractalHead` (so a re-saved model names it as before)."""
    return trust.load_model_folder(folder, device=device, truncate_dim=truncate_dim, head_class=FractalHead)


def make_self_contained(folder: str | os.PathLike) -> Path:
    """Make a saved model folder load without fractal-embeddings installed: its FractalHead's type in
    ``modules.json`` becomes ``fractal_head.FractalHead`` and ``fractal_head.py`` (the module's code,
    torch + sentence-transformers only) goes to the folder's root, where
    ``SentenceTransformer(folder, trust_remote_code=True)`` imports it. ``fractal export`` and ``fractal
    finetune`` do this; after training with :class:`FractalLoss`, call it on the folder ``model.save()``
    wrote. Returns the folder."""
    folder = Path(folder)
    path = folder / "modules.json"
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FractalError(f"{path}: not a readable modules.json ({e}); pass the folder model.save() wrote") from None
    types = [m.get("type") for m in modules if isinstance(m, dict)]
    if PACKAGE_TYPE not in types and fractal_head.MODULE_TYPE not in types:
        raise FractalError(f"{folder}: holds no FractalHead; pass the folder of a model with a steerable head")
    fractal_head.write_code_file(folder)
    if PACKAGE_TYPE in types:
        for m in modules:
            if isinstance(m, dict) and m.get("type") == PACKAGE_TYPE:
                m["type"] = fractal_head.MODULE_TYPE
        path.write_text(json.dumps(modules, indent=2), encoding="utf-8")
    return folder


@contextlib.contextmanager
def quiet_loaders() -> Iterator[None]:
    """No progress bars, loader chatter or warnings from transformers / sentence-transformers while
    models are built, saved and loaded (export, saving a fine-tuned run); restored afterwards."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(n) for n in ("sentence_transformers", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)
        if bars:
            hf_logging.enable_progress_bar()


def find_head(model: Iterable[Any]) -> fractal_head.FractalHead | None:
    """The model's :class:`FractalHead` (its last one), or None."""
    heads = [m for m in model if isinstance(m, fractal_head.FractalHead)]
    return heads[-1] if heads else None


class FractalLoss(nn.Module):
    """Train a steerable head (and, unless frozen, the encoder below it) with this library's objectives.

    ``model`` is a ``SentenceTransformer``; when it has no :class:`FractalHead` yet, one is appended
    (the head ``method`` trains, ``n_blocks`` x ``block_dim``, seeded by ``seed``), so ``model.save()``
    saves it. ``n_classes``: classes per level, coarse -> fine. ``objective_options`` set the
    objective's config fields (see ``fractal methods`` and :mod:`fractal_embeddings.objectives`).

    ``forward(sentence_features, labels)`` takes the trainer's features of one text column and
    ``labels`` of shape ``(batch, n_levels)``; it returns the loss per level (``level_names``, default
    ``L0``, ``L1``, ...; a term of no single level is ``loss``) as a dict, which the trainer sums and
    logs part by part. Random draws of the objective (block dropout, sampled prefixes) come from a
    generator seeded with ``seed``."""

    def __init__(
        self,
        model: SentenceTransformer,
        n_classes: Sequence[int] | None = None,
        method: str | Objective = "fractal",
        *,
        n_blocks: int = 4,
        block_dim: int = 64,
        level_names: Iterable[str] | None = None,
        seed: int = 0,
        **objective_options: Any,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = get_objective(method, **objective_options)
        check_fields(self.objective, f"method {self.objective.name}")  # its config, before any training
        self.seed = check_seed(seed)
        if n_classes is not None:
            n_classes = [check_int(n, "n_classes entry", lo=1) for n in _as_list(n_classes, "n_classes")]
        if hasattr(self.objective, "fused"):
            # the per-term loss of objectives/fractal.py: under an encoder the head's loss is a sliver of
            # a step, so fusing saves nothing here, and fine-tuned runs stay as recorded
            self.objective.fused = False
        if self.objective.head_kind is None:
            raise FractalError(f"method {self.objective.name} trains no head, so it has no loss; choose e.g. fractal")
        if self.objective.step_dependent:
            raise FractalError(
                f"method {self.objective.name} follows a schedule over the whole run's steps, which a loss "
                f"seeing one batch at a time can't; train it with `fractal train`, or choose e.g. fractal"
            )
        head = find_head(model)
        if head is None:
            if n_classes is None:
                raise FractalError(
                    "the model has no FractalHead: pass n_classes (classes per level, coarse -> fine) "
                    "so FractalLoss can add one"
                )
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = get_dim()
            if not dim:
                raise FractalError("the model does not report its embedding dimension; append a FractalHead yourself")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                head = FractalHead.for_method(dim, n_classes, self.objective, n_blocks=n_blocks, block_dim=block_dim)
            model.append(head.to(model.device))
        elif n_classes is not None and list(n_classes) != head.n_classes:
            raise FractalError(f"n_classes {list(n_classes)} differs from the model's FractalHead {head.n_classes}")
        want = self.objective.head_options().get("kind")
        if want and want != head.kind:
            raise FractalError(
                f"method {self.objective.name} trains a {want} head, the model's FractalHead is {head.kind}"
            )
        self.objective.check(head.n_blocks, len(head.n_classes))
        self.level_names = list(level_names) if level_names else [f"L{i}" for i in range(len(head.n_classes))]
        if len(self.level_names) != len(head.n_classes):
            raise FractalError(f"{len(self.level_names)} level names for {len(head.n_classes)} levels")
        self.generator = torch.Generator().manual_seed(self.seed)

    @property
    def head(self) -> fractal_head.FractalHead:
        head = find_head(self.model)
        assert head is not None  # __init__ appended one when the model had none
        return head

    def forward(
        self, sentence_features: Sequence[dict[str, torch.Tensor]], labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        features = self.model(sentence_features[0])
        x = features[HEAD_INPUT]
        head = self.head.head
        shape = tuple(labels.shape)
        if len(shape) != 2 or shape[1] != head.n_levels:
            raise FractalError(
                f"labels must be (batch, {head.n_levels}) class indices, one per level; got shape "
                f"{shape}: give each row's label as a list [L0 index, ..., L{head.n_levels - 1} index]"
            )
        # whole class ids in range, each fine class under one coarse class (never truncated floats)
        y = torch.as_tensor(check_labels(labels.detach().cpu().numpy(), head.n_classes), device=labels.device)
        plan = self.objective.plan(1, len(y), head.head_config.n_blocks, head.n_levels, self.generator)
        return self.objective.loss_parts(head, x, y, 0, plan, self.level_names)

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.objective.config(), "seed": self.seed}

    @property
    def citation(self) -> str:
        return CITATION


def _as_list(values: Any, name: str) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise FractalError(f"{name} must be a list of classes per level (coarse -> fine), got {values!r}")
    return list(values)


class SteerabilityEvaluator(BaseEvaluator):
    """Prefix k-NN accuracy per level and steerability (S, S_AUC, S_gap, S_mono) of a model's output,
    computed by the same code as the library's run records (leave-one-out ``k``-NN, cosine on
    L2-normalised prefixes of ``block_dim`` dims).

    ``labels``: ``(n, n_levels)`` class indices, coarse -> fine. Metrics are named ``S``, ...,
    ``<level>@<dims>`` (``L0@64``); ``primary_metric`` is ``S`` by default (``"selection"``: coarse +
    finest accuracy of the full vector, the rule ``fractal train`` picks its best epoch with)."""

    def __init__(
        self,
        texts: Iterable[str],
        labels: ArrayLike,
        *,
        block_dim: int = 64,
        k: int = 5,
        level_names: Iterable[str] | None = None,
        name: str = "",
        batch_size: int = 64,
        primary_metric: str = "S",
    ) -> None:
        super().__init__()
        self.texts = check_texts(texts)
        k = check_int(k, "k", lo=1)
        block_dim = check_int(block_dim, "block_dim", lo=1)
        batch_size = check_int(batch_size, "batch_size", lo=1)
        try:
            shape: tuple[int, ...] | None = np.shape(labels)
        except (ValueError, TypeError):  # ragged rows
            shape = None
        if shape is None or len(shape) != 2 or shape[0] != len(self.texts):
            raise FractalError(
                f"labels must be (n_texts, n_levels); got {shape if shape is not None else type(labels).__name__} "
                f"for {len(self.texts)} texts"
            )
        self.labels = check_labels(labels, n_rows=len(self.texts))
        if len(self.texts) <= k:
            raise FractalError(f"leave-one-out {k}-NN needs more than {k} texts, got {len(self.texts)}")
        self.block_dim, self.k, self.name, self.batch_size = block_dim, k, name, batch_size
        n_levels = self.labels.shape[1]
        self.level_names = list(level_names) if level_names else [f"L{i}" for i in range(n_levels)]
        if len(self.level_names) != n_levels:
            raise FractalError(
                f"{len(self.level_names)} level names for labels of {n_levels} levels; give one name per level"
            )
        self.primary_metric = primary_metric
        self.greater_is_better = True

    @classmethod
    def from_dataset(
        cls, dataset: TaxonomyDataset, split: str = "val", max_rows: int | None = 2000, seed: int = 0, **kw: Any
    ) -> SteerabilityEvaluator:
        """An evaluator over a stratified sample (finest level) of a dataset split."""
        sp = dataset.split(split)
        rows = stratified_sample(sp.labels[:, -1], max_rows, seed)
        return cls([sp.texts[i] for i in rows], sp.labels[rows], level_names=dataset.level_names, **kw)

    def scores(self, model: SentenceTransformer) -> dict:
        """``{"accuracy": {dims: {level: acc}}, "steerability": {...}}`` of the model's output."""
        E = np.asarray(
            model.encode(
                self.texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )
        n_blocks = E.shape[1] // self.block_dim
        if n_blocks < 1:
            raise FractalError(f"the model outputs {E.shape[1]} dims, fewer than one block of {self.block_dim}")
        return score(E[:, : n_blocks * self.block_dim], self.labels, self.block_dim, n_blocks, self.k, self.level_names)

    def __call__(
        self, model: BaseModel, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        res = self.scores(cast("SentenceTransformer", model))  # the base type is any model; this one embeds
        metrics = {k: float(v) for k, v in res["steerability"].items() if v is not None}
        for dims, row in res["accuracy"].items():
            for level, acc in row.items():
                metrics[f"{level}@{dims}"] = float(acc)
        full = max(res["accuracy"], key=int)
        metrics["selection"] = float(
            res["accuracy"][full][self.level_names[0]] + res["accuracy"][full][self.level_names[-1]]
        )
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def get_config_dict(self) -> dict[str, Any]:
        return {"block_dim": self.block_dim, "k": self.k, "n_texts": len(self.texts), "levels": self.level_names}


__all__ = [
    "CITATION",
    "FractalHead",
    "FractalLoss",
    "SteerabilityEvaluator",
    "find_head",
    "load_model_folder",
    "make_self_contained",
    "quiet_loaders",
]
