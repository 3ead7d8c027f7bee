"""The typed run record: one dataclass per block of ``record.json``, read and written by one generic
walk over their fields (:func:`spec`). :mod:`~fractal_embeddings.records` reads and writes the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

import numpy as np

from .record_fields import (
    Block,
    MappingBlock,
    RunRecordError,
    Spec,
    is_dict,
    is_num,
    is_str,
    optional,
    rest,
    spec,
)
from .validation import is_int

SCHEMA = "fractal-embeddings/run-record/2"
# /2 adds fine-tuned runs (encoder "model": "." with its "base"; head "in_model") and one-block heads
# (S_mono null); /1 records have the same layout and are read as they are
SCHEMAS_READ = ("fractal-embeddings/run-record/1", SCHEMA)
RECORD_FILE = "record.json"
WEIGHTS_FILE = "head.safetensors"
PARTIAL_FILES = (WEIGHTS_FILE, WEIGHTS_FILE + ".tmp")  # what an interrupted save of an older version left
RECORD_KEYS = (
    "schema",
    "run_id",
    "method",
    "seed",
    "dataset",
    "encoder",
    "config",
    "versions",
    "accuracy",
    "steerability",
    "baseline",
    "training",
    "timing",
    "weights",
)


# ------------------------------------------------------------------ the typed record
# A record on disk is canonical JSON; in memory it is a RunRecord, validated once when it is read.
# Every block is a dataclass whose fields say how they are read (:func:`spec`): one generic
# from_dict / to_dict walks them. Each block keeps the keys it does not model in ``extra``, so
# ``from_dict(d).to_dict() == d``.


def accuracy_array(table: dict, level_names: Sequence[str]) -> np.ndarray:
    """``acc[j-1, level]`` from a record's ``{"<dims>": {"<level>": acc}}`` (prefixes by length; the
    inverse of :func:`~fractal_embeddings.evaluation.accuracy_dict`)."""
    dims = sorted(table, key=int)
    return np.array([[table[d][name] for name in level_names] for d in dims])


def _levels(v: Any, _label: str) -> tuple[LevelInfo, ...]:
    return tuple(LevelInfo(x["name"], x["n_classes"]) for x in v)


def _level_dicts(levels: tuple[LevelInfo, ...]) -> list[dict]:
    return [{"name": lv.name, "n_classes": lv.n_classes} for lv in levels]


@dataclass(frozen=True)
class LevelInfo:
    name: str
    n_classes: int


@dataclass(kw_only=True)
class DatasetInfo(Block):
    """What a run was trained on: name, load arguments, subset, levels, rows per split, fingerprint."""

    name: str = spec("a string", is_str)
    levels: tuple[LevelInfo, ...] = field(
        metadata={
            "record": Spec(
                "a list of {name, n_classes}",
                lambda v, _r: (
                    isinstance(v, list)
                    and len(v) >= 1
                    and all(isinstance(x, dict) and is_str(x.get("name")) and is_int(x.get("n_classes")) for x in v)
                ),
                load=_levels,
                dump=_level_dicts,
            )
        }
    )
    rows: dict = spec("rows per split", lambda v: is_dict(v) and all(map(is_int, v.values())))
    fingerprint: str | None = spec(required=False)
    load_args: dict | None = spec("an object or null", optional(is_dict), required=False)
    subset: dict | None = spec(
        "null or {rows: {split: n}, seed}",
        optional(lambda v: is_dict(v) and is_dict(v.get("rows")) and is_int(v.get("seed"))),
        required=False,
    )
    extra: dict = field(default_factory=dict)  # variant, entropy

    ORDER = ("levels", "name", "rows", "fingerprint", "load_args", "subset")

    @property
    def level_names(self) -> list[str]:
        return [lv.name for lv in self.levels]

    @property
    def variant(self) -> dict | None:
        return self.extra.get("variant")

    @property
    def entropy(self) -> dict:
        return self.extra.get("entropy") or {}


@dataclass(kw_only=True)
class EncoderInfo(Block):
    """The encoder's identity (every field that determines its vectors), its output dim and how to
    rebuild it (``model``: as given; ``"."``: the run directory itself, a fine-tuned model, whose
    ``base`` is the encoder it started from)."""

    name: str = spec("a string", is_str)
    fingerprint: str | None = spec(required=False)
    backend: str = spec("a backend name", is_str)
    pooling: str = spec("mean or cls", is_str)
    normalize: bool = spec("true or false", lambda v: isinstance(v, bool))
    max_seq_length: int = spec("an integer", is_int)
    prompt: str = spec(required=False, default="")
    dim: int | None = spec("an integer", optional(is_int))
    model: str | None = spec(required=False)
    base: EncoderInfo | None = field(
        default=None,
        metadata={
            "record": Spec(
                required=False,
                omit_none=True,
                load=lambda v, label: EncoderInfo.from_dict(v, label),
                dump=lambda e: e.to_dict(),
            )
        },
    )
    extra: dict = field(default_factory=dict)

    IDENTITY = ("name", "fingerprint", "backend", "pooling", "normalize", "max_seq_length", "prompt")

    @property
    def in_run(self) -> bool:
        """The encoder is the run directory itself (a ``fractal finetune`` run)."""
        return self.model == "."

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in self.IDENTITY}


@dataclass(kw_only=True)
class HeadInfo(Block):
    """The head's architecture (``kind`` None: no head, the encoder truncated)."""

    kind: str | None = spec("a head kind or null", optional(is_str))
    n_blocks: int = spec("an integer >= 1", lambda v: is_int(v) and v >= 1)
    block_dim: int = spec("an integer >= 1", lambda v: is_int(v) and v >= 1)
    extra: dict = field(default_factory=dict)  # hidden_dim, block_norm, topk, input_dim, n_classes, ...

    @property
    def dim(self) -> int:
        return self.n_blocks * self.block_dim

    @property
    def dims(self) -> list[int]:
        """Every prefix length: block_dim, 2 x block_dim, ..., dim."""
        return [j * self.block_dim for j in range(1, self.n_blocks + 1)]

    @property
    def finetuned_encoder_layers(self) -> int:
        return int(self.extra.get("finetuned_encoder_layers") or 0)

    @property
    def in_model(self) -> bool:
        """The head lives inside a fine-tuned sentence-transformers model (no separate weights file)."""
        return bool(self.extra.get("in_model"))

    def get(self, key: str, default: Any = None) -> Any:
        """An architecture field (``hidden_dim``, ``block_norm``, ``input_dim``, ...) by name."""
        return self.to_dict().get(key, default)


@dataclass(kw_only=True)
class EvalSpec(Block):
    """Which rows were scored and how: split, sample size and seed, k, the rows' sha256."""

    split: str = spec("a split name such as 'test'", lambda v: is_str(v) and v != "")
    max_rows: int | None = spec(
        "null (all rows) or an integer > k", lambda v, r: v is None or (is_int(v) and v > r["k"]), sibling=True
    )
    n_rows: int = spec("a number of rows >= 2", lambda v: is_int(v) and v >= 2)
    sample_seed: int = spec("an integer in [0, 2**32)", lambda v: is_int(v) and 0 <= v < 2**32)
    k: int = spec(
        lambda r: f"an integer >= 1 and below the {r['n_rows']} rows scored",
        lambda v, r: is_int(v) and 1 <= v < r["n_rows"],
        sibling=True,
    )
    rows_sha256: str = spec("a sha256", is_str)
    extra: dict = field(default_factory=dict)

    ORDER = ("n_rows", "k", "split", "max_rows", "sample_seed", "rows_sha256")


@dataclass(kw_only=True)
class ObjectiveInfo(MappingBlock):
    """The objective's config: ``method`` and its option fields (:meth:`Objective.config`)."""

    method: str | None = spec("a method name", optional(is_str), required=False, omit_none=True)
    extra: dict = field(default_factory=dict)  # the method's options


@dataclass(kw_only=True)
class TrainInfo(MappingBlock):
    """The trainer's settings (:class:`~fractal_embeddings.training.TrainConfig`; a fine-tuned run's
    trainer settings); the fields every trainer has are typed, the others kept in ``extra``."""

    epochs: int | None = spec("an integer", optional(is_int), required=False, omit_none=True)
    lr: float | None = spec("a number", optional(is_num), required=False, omit_none=True)
    batch_size: int | None = spec("an integer", optional(is_int), required=False, omit_none=True)
    select: str | None = spec("a selection rule", optional(is_str), required=False, omit_none=True)
    extra: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class RunConfig(Block):
    """How the run was made: head architecture, objective options, trainer settings, evaluation."""

    head: HeadInfo = spec(block=HeadInfo)
    objective: ObjectiveInfo = spec(block=ObjectiveInfo)
    # a TrainInfo (typed as the mapping it also is: readers take ``config.train or {}``), or None: no training
    train: Mapping[str, Any] | None = spec("an object or null", optional(is_dict), block=TrainInfo)
    eval: EvalSpec = spec("the evaluation settings (an object)", is_dict, block=EvalSpec)
    extra: dict = field(default_factory=dict)


@dataclass
class Scores(Block):
    """Prefix k-NN accuracy (``{"<dims>": {"<level>": acc}}``) and the steerability metrics."""

    accuracy: dict = spec(
        "{dims: {level: accuracy}}",
        lambda v: (
            is_dict(v)
            and all(
                k.isdigit() and is_dict(row) and all(is_num(a) and 0 <= a <= 1 for a in row.values())
                for k, row in v.items()
            )
        ),
    )
    steerability: dict = spec(
        "{S: number, metric: number or null, ...}",
        lambda v: is_dict(v) and is_num(v.get("S")) and all(x is None or is_num(x) for x in v.values()),
    )
    extra: dict = field(default_factory=dict, repr=False)  # the keys beside them (a record's others)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "steerability": self.steerability}

    @property
    def S(self) -> float:
        return self.steerability["S"]

    def table(self, level_names: Iterable[str]) -> np.ndarray:
        """``acc[j-1, level]`` as an array (prefixes in order of length)."""
        return accuracy_array(self.accuracy, list(level_names))


@dataclass(kw_only=True)
class TrainingInfo(Block):
    best_epoch: int | None = spec(required=False)
    history: list = spec("a list", lambda v: isinstance(v, list))
    extra: dict = field(default_factory=dict)  # n_params

    @property
    def n_params(self) -> int | None:
        return self.extra.get("n_params")


@dataclass(kw_only=True)
class TimingInfo(MappingBlock):
    """Seconds spent training and scoring, when the run was made, and the device (absent: the CPU)."""

    train_s: float = spec("a number", is_num)
    eval_s: float = spec("a number", is_num)
    created_at: str | None = spec("a time stamp", optional(is_str), required=False, omit_none=True)
    device: str | None = spec("a device", optional(is_str), required=False, omit_none=True)
    extra: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class Versions(MappingBlock):
    """The Python, the platform and the library versions a run was made with (packages in ``extra``)."""

    python: str | None = spec(required=False, omit_none=True)
    platform: str | None = spec(required=False, omit_none=True)
    extra: dict = field(default_factory=dict)  # package name -> version (or null)


@dataclass(kw_only=True)
class RetrievalInfo(MappingBlock):
    """Retrieval metrics of the head (``trained``) and of the untrained encoder (``baseline``)."""

    queries: str | None = spec(required=False, omit_none=True)
    corpus: str | None = spec(required=False, omit_none=True)
    n_queries: int | None = spec(required=False, omit_none=True)
    n_corpus: int | None = spec(required=False, omit_none=True)
    trained: dict | None = spec("an object", optional(is_dict), required=False, omit_none=True)
    baseline: dict | None = spec("an object", optional(is_dict), required=False, omit_none=True)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class WeightsRef:
    file: str
    sha256: str


def _is_weights(w: Any) -> bool:
    return isinstance(w, dict) and is_str(w.get("file")) and is_str(w.get("sha256"))


def _weights(v: Any, _label: str) -> WeightsRef:
    return WeightsRef(v["file"], v["sha256"])


@dataclass(kw_only=True)
class RunRecord(Block):
    """A run record, typed (see the module docstring for the JSON it reads and writes)."""

    schema: str = spec()
    run_id: str = spec("a string", is_str)
    method: str = spec("a method name", is_str)
    seed: int = spec("an integer seed", is_int)
    dataset: DatasetInfo = spec(block=DatasetInfo)
    encoder: EncoderInfo = spec(block=EncoderInfo)
    config: RunConfig = spec(block=RunConfig)
    versions: Versions = spec(block=Versions)
    scores: Scores = field(metadata={})  # the trained head's (top-level ``accuracy`` and ``steerability``)
    baseline: Scores = spec(block=Scores)  # the untrained encoder's, on the same rows
    training: TrainingInfo | None = spec("an object or null", optional(is_dict), block=TrainingInfo)
    timing: TimingInfo = spec(
        "{train_s, eval_s, created_at}",
        lambda v: is_dict(v) and all(is_num(v.get(k)) for k in ("train_s", "eval_s")),
        block=TimingInfo,
    )
    weights: WeightsRef | None = field(
        metadata={
            "record": Spec(
                "{file, sha256} or null",
                lambda w, _r: w is None or _is_weights(w),
                load=_weights,
                dump=lambda w: {"file": w.file, "sha256": w.sha256},
            )
        }
    )
    retrieval: RetrievalInfo | None = spec(
        "an object", optional(is_dict), required=False, omit_none=True, block=RetrievalInfo
    )
    tags: dict | None = spec("an object", optional(is_dict), required=False, omit_none=True)
    extra: dict = field(default_factory=dict)

    ORDER = ("weights", "baseline", "training")

    @classmethod
    def from_dict(cls, d: Any, where: str = "run record") -> RunRecord:
        """Validate and type a record dict (one line naming the field for an old, edited or damaged one)."""
        if not isinstance(d, dict):
            raise RunRecordError(f"{where}: not a JSON object; pass a record.json written by fractal-embeddings")
        schema = d.get("schema")
        if schema not in SCHEMAS_READ:
            hint = (
                " (written by a newer fractal-embeddings: upgrade the package)"
                if isinstance(schema, str) and schema.startswith("fractal-embeddings/run-record/")
                else ""
            )
            raise RunRecordError(
                f"{where}: not a fractal-embeddings run record (schema {schema!r}, expected one of "
                f"{', '.join(SCHEMAS_READ)}){hint}"
            )
        missing = [k for k in RECORD_KEYS if k not in d]
        if missing:
            raise RunRecordError(f"{where}: run record lacks {', '.join(missing)}; restore it or train the run again")
        read = cls.read(d, f"{where}: record", child=lambda key: f"{where}: {key}")
        read["scores"] = Scores.from_dict(d, f"{where}: record")
        read["extra"] = rest(read["extra"], ("accuracy", "steerability"))
        return cls(**read)

    def to_dict(self) -> dict:
        return {**super().to_dict(), **self.scores.to_dict()}

    # -- what readers ask for most
    @property
    def head(self) -> HeadInfo:
        return self.config.head

    @property
    def eval(self) -> EvalSpec:
        return self.config.eval

    @property
    def level_names(self) -> list[str]:
        return self.dataset.level_names

    @property
    def accuracy(self) -> dict:
        return self.scores.accuracy

    @property
    def steerability(self) -> dict:
        return self.scores.steerability

    @property
    def is_finetuned(self) -> bool:
        """A ``fractal finetune`` run: the model folder is the run."""
        return self.encoder.in_run

    def replace(self, **changes: Any) -> RunRecord:
        return dc_replace(self, **changes)
