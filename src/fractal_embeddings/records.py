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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FractalError
from .validation import is_int

if TYPE_CHECKING:
    from .data.taxonomy import TaxonomyDataset

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


class RunRecordError(FractalError):
    """A run directory, record or weights file that is missing, malformed or doesn't match."""


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


# ------------------------------------------------------------------ the typed record
# A record on disk is canonical JSON; in memory it is a RunRecord, validated once when it is read.
# Every block keeps the keys it does not model in ``extra``, so ``from_dict(d).to_dict() == d``.


def accuracy_array(table: dict, level_names: Sequence[str]) -> np.ndarray:
    """``acc[j-1, level]`` from a record's ``{"<dims>": {"<level>": acc}}`` (prefixes by length; the
    inverse of :func:`~fractal_embeddings.evaluation.accuracy_dict`)."""
    dims = sorted(table, key=int)
    return np.array([[table[d][name] for name in level_names] for d in dims])


def _bad(where: str, key: str, want: str, got: Any) -> RunRecordError:
    return RunRecordError(
        f"{where}.{key} is {got!r}, expected {want}; restore the field (the record was edited?) or train the run again"
    )


def _take(d: dict, key: str, where: str, want: str, check: Callable[[Any], bool]) -> Any:
    """``d[key]`` checked; ``where`` names the block (``<file>: config.eval``) for the one-line error."""
    if not isinstance(d, dict) or key not in d:
        raise RunRecordError(
            f"{where}.{key} is missing; restore the field (the record was edited?) or train the run again"
        )
    v = d[key]
    if not check(v):
        raise _bad(where, key, want, v)
    return v


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _rest(d: dict, known: Iterable[str]) -> dict:
    return {k: v for k, v in d.items() if k not in known}


@dataclass(frozen=True)
class LevelInfo:
    name: str
    n_classes: int


@dataclass
class DatasetInfo:
    """What a run was trained on: name, load arguments, subset, levels, rows per split, fingerprint."""

    name: str
    levels: tuple[LevelInfo, ...]
    rows: dict
    fingerprint: str | None
    load_args: dict | None
    subset: dict | None
    extra: dict = field(default_factory=dict)  # variant, entropy

    KEYS = ("name", "levels", "rows", "fingerprint", "load_args", "subset")

    @classmethod
    def from_dict(cls, d: dict, where: str) -> DatasetInfo:
        w = f"{where}: dataset"
        levels = _take(
            d,
            "levels",
            w,
            "a list of {name, n_classes}",
            lambda v: (
                isinstance(v, list)
                and len(v) >= 1
                and all(isinstance(x, dict) and _is_str(x.get("name")) and is_int(x.get("n_classes")) for x in v)
            ),
        )
        return cls(
            name=_take(d, "name", w, "a string", _is_str),
            levels=tuple(LevelInfo(x["name"], x["n_classes"]) for x in levels),
            rows=_take(d, "rows", w, "rows per split", lambda v: _is_dict(v) and all(map(is_int, v.values()))),
            fingerprint=d.get("fingerprint"),
            load_args=_take(d, "load_args", w, "an object or null", _opt(_is_dict)) if "load_args" in d else None,
            subset=_take(
                d,
                "subset",
                w,
                "null or {rows: {split: n}, seed}",
                _opt(lambda v: _is_dict(v) and _is_dict(v.get("rows")) and is_int(v.get("seed"))),
            )
            if "subset" in d
            else None,
            extra=_rest(d, cls.KEYS),
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "levels": [{"name": lv.name, "n_classes": lv.n_classes} for lv in self.levels],
            "rows": dict(self.rows),
            "fingerprint": self.fingerprint,
            "load_args": self.load_args,
            "subset": self.subset,
            **self.extra,
        }

    @property
    def level_names(self) -> list[str]:
        return [lv.name for lv in self.levels]

    @property
    def variant(self) -> dict | None:
        return self.extra.get("variant")

    @property
    def entropy(self) -> dict:
        return self.extra.get("entropy") or {}


@dataclass
class EncoderInfo:
    """The encoder's identity (every field that determines its vectors), its output dim and how to
    rebuild it (``model``: as given; ``"."``: the run directory itself, a fine-tuned model, whose
    ``base`` is the encoder it started from)."""

    name: str
    fingerprint: str | None
    backend: str
    pooling: str
    normalize: bool
    max_seq_length: int
    prompt: str
    dim: int | None
    model: str | None
    base: EncoderInfo | None = None
    extra: dict = field(default_factory=dict)

    KEYS = (
        "name",
        "fingerprint",
        "backend",
        "pooling",
        "normalize",
        "max_seq_length",
        "prompt",
        "dim",
        "model",
        "base",
    )
    IDENTITY = ("name", "fingerprint", "backend", "pooling", "normalize", "max_seq_length", "prompt")

    @classmethod
    def from_dict(cls, d: dict, where: str, _block: str = "encoder") -> EncoderInfo:
        w = f"{where}: {_block}"
        base = d.get("base")
        return cls(
            name=_take(d, "name", w, "a string", _is_str),
            fingerprint=d.get("fingerprint"),
            backend=_take(d, "backend", w, "a backend name", _is_str),
            pooling=_take(d, "pooling", w, "mean or cls", _is_str),
            normalize=_take(d, "normalize", w, "true or false", lambda v: isinstance(v, bool)),
            max_seq_length=_take(d, "max_seq_length", w, "an integer", is_int),
            prompt=d.get("prompt", ""),
            dim=_take(d, "dim", w, "an integer", _opt(is_int)),
            model=d.get("model"),
            base=cls.from_dict(base, where, f"{_block}.base") if base is not None else None,
            extra=_rest(d, cls.KEYS),
        )

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "backend": self.backend,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
            "prompt": self.prompt,
            "dim": self.dim,
            "model": self.model,
            **self.extra,
        }
        if self.base is not None:
            out["base"] = self.base.to_dict()
        return out

    @property
    def in_run(self) -> bool:
        """The encoder is the run directory itself (a ``fractal finetune`` run)."""
        return self.model == "."

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in self.IDENTITY}


@dataclass
class HeadInfo:
    """The head's architecture (``kind`` None: no head, the encoder truncated)."""

    kind: str | None
    n_blocks: int
    block_dim: int
    extra: dict = field(default_factory=dict)  # hidden_dim, block_norm, topk, input_dim, n_classes, ...

    KEYS = ("kind", "n_blocks", "block_dim")

    @classmethod
    def from_dict(cls, d: dict, where: str) -> HeadInfo:
        w = f"{where}: config.head"
        return cls(
            kind=_take(d, "kind", w, "a head kind or null", _opt(_is_str)),
            n_blocks=_take(d, "n_blocks", w, "an integer >= 1", lambda v: is_int(v) and v >= 1),
            block_dim=_take(d, "block_dim", w, "an integer >= 1", lambda v: is_int(v) and v >= 1),
            extra=_rest(d, cls.KEYS),
        )

    def to_dict(self) -> dict:
        return {"kind": self.kind, "n_blocks": self.n_blocks, "block_dim": self.block_dim, **self.extra}

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


@dataclass
class EvalSpec:
    """Which rows were scored and how: split, sample size and seed, k, the rows' sha256."""

    split: str
    max_rows: int | None
    n_rows: int
    sample_seed: int
    k: int
    rows_sha256: str
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, where: str) -> EvalSpec:
        w = f"{where}: config.eval"
        n_rows = _take(d, "n_rows", w, "a number of rows >= 2", lambda v: is_int(v) and v >= 2)
        k = _take(
            d, "k", w, f"an integer >= 1 and below the {n_rows} rows scored", lambda v: is_int(v) and 1 <= v < n_rows
        )
        return cls(
            split=_take(d, "split", w, "a split name such as 'test'", lambda v: _is_str(v) and v != ""),
            max_rows=_take(d, "max_rows", w, "null (all rows) or an integer > k", _opt(lambda v: is_int(v) and v > k)),
            n_rows=n_rows,
            k=k,
            sample_seed=_take(d, "sample_seed", w, "an integer in [0, 2**32)", lambda v: is_int(v) and 0 <= v < 2**32),
            rows_sha256=_take(d, "rows_sha256", w, "a sha256", _is_str),
            extra=_rest(d, ("split", "max_rows", "n_rows", "sample_seed", "k", "rows_sha256")),
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        return {**{k: v for k, v in out.items() if k != "extra"}, **self.extra}


@dataclass
class RunConfig:
    """How the run was made: head architecture, objective options, trainer settings, evaluation."""

    head: HeadInfo
    objective: dict
    train: dict | None
    eval: EvalSpec
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, where: str) -> RunConfig:
        w = f"{where}: config"
        return cls(
            head=HeadInfo.from_dict(_take(d, "head", w, "an object", _is_dict), where),
            objective=_take(d, "objective", w, "an object", _is_dict),
            train=_take(d, "train", w, "an object or null", _opt(_is_dict)),
            eval=EvalSpec.from_dict(_take(d, "eval", w, "the evaluation settings (an object)", _is_dict), where),
            extra=_rest(d, ("head", "objective", "train", "eval")),
        )

    def to_dict(self) -> dict:
        return {
            "head": self.head.to_dict(),
            "objective": self.objective,
            "train": self.train,
            "eval": self.eval.to_dict(),
            **self.extra,
        }


@dataclass
class Scores:
    """Prefix k-NN accuracy (``{"<dims>": {"<level>": acc}}``) and the steerability metrics."""

    accuracy: dict
    steerability: dict

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Scores:
        acc = _take(
            d,
            "accuracy",
            where,
            "{dims: {level: accuracy}}",
            lambda v: (
                _is_dict(v)
                and all(
                    k.isdigit() and _is_dict(row) and all(_is_num(a) and 0 <= a <= 1 for a in row.values())
                    for k, row in v.items()
                )
            ),
        )
        st = _take(
            d,
            "steerability",
            where,
            "{S: number, metric: number or null, ...}",
            lambda v: _is_dict(v) and _is_num(v.get("S")) and all(x is None or _is_num(x) for x in v.values()),
        )
        return cls(acc, st)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "steerability": self.steerability}

    @property
    def S(self) -> float:
        return self.steerability["S"]

    def table(self, level_names: Iterable[str]) -> np.ndarray:
        """``acc[j-1, level]`` as an array (prefixes in order of length)."""
        return accuracy_array(self.accuracy, list(level_names))


@dataclass
class TrainingInfo:
    best_epoch: int | None
    history: list
    extra: dict = field(default_factory=dict)  # n_params

    @classmethod
    def from_dict(cls, d: dict, where: str) -> TrainingInfo:
        return cls(
            best_epoch=d.get("best_epoch"),
            history=_take(d, "history", f"{where}: training", "a list", lambda v: isinstance(v, list)),
            extra=_rest(d, ("best_epoch", "history")),
        )

    def to_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "history": self.history, **self.extra}

    @property
    def n_params(self) -> int | None:
        return self.extra.get("n_params")


@dataclass(frozen=True)
class WeightsRef:
    file: str
    sha256: str


@dataclass
class RunRecord:
    """A run record, typed (see the module docstring for the JSON it reads and writes)."""

    schema: str
    run_id: str
    method: str
    seed: int
    dataset: DatasetInfo
    encoder: EncoderInfo
    config: RunConfig
    versions: dict
    scores: Scores  # the trained head's (top-level ``accuracy`` and ``steerability`` in the JSON)
    baseline: Scores  # the untrained encoder's, on the same rows
    training: TrainingInfo | None
    timing: dict
    weights: WeightsRef | None
    retrieval: dict | None = None
    tags: dict | None = None
    extra: dict = field(default_factory=dict)

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
        w = d.get("weights")
        if w is not None and not (isinstance(w, dict) and _is_str(w.get("file")) and _is_str(w.get("sha256"))):
            raise _bad(f"{where}: record", "weights", "{file, sha256} or null", w)
        top = f"{where}: record"
        base = _take(d, "baseline", top, "an object", _is_dict)
        training = _take(d, "training", top, "an object or null", _opt(_is_dict))
        return cls(
            schema=schema,
            run_id=_take(d, "run_id", top, "a string", _is_str),
            method=_take(d, "method", top, "a method name", _is_str),
            seed=_take(d, "seed", top, "an integer seed", is_int),
            dataset=DatasetInfo.from_dict(_take(d, "dataset", top, "an object", _is_dict), where),
            encoder=EncoderInfo.from_dict(_take(d, "encoder", top, "an object", _is_dict), where),
            config=RunConfig.from_dict(_take(d, "config", top, "an object", _is_dict), where),
            versions=_take(d, "versions", top, "an object", _is_dict),
            scores=Scores.from_dict(d, f"{where}: record"),
            baseline=Scores.from_dict(base, f"{where}: baseline"),
            training=TrainingInfo.from_dict(training, where) if training is not None else None,
            timing=_take(
                d,
                "timing",
                top,
                "{train_s, eval_s, created_at}",
                lambda v: _is_dict(v) and all(_is_num(v.get(k)) for k in ("train_s", "eval_s")),
            ),
            weights=WeightsRef(w["file"], w["sha256"]) if w is not None else None,
            retrieval=_take(d, "retrieval", top, "an object", _opt(_is_dict)) if "retrieval" in d else None,
            tags=_take(d, "tags", top, "an object", _opt(_is_dict)) if "tags" in d else None,
            extra=_rest(d, (*RECORD_KEYS, "retrieval", "tags")),
        )

    def to_dict(self) -> dict:
        out = {
            "schema": self.schema,
            "run_id": self.run_id,
            "method": self.method,
            "seed": self.seed,
            "dataset": self.dataset.to_dict(),
            "encoder": self.encoder.to_dict(),
            "config": self.config.to_dict(),
            "versions": self.versions,
            **self.scores.to_dict(),
            "baseline": self.baseline.to_dict(),
            "training": self.training.to_dict() if self.training is not None else None,
            "timing": self.timing,
            "weights": {"file": self.weights.file, "sha256": self.weights.sha256} if self.weights else None,
            **self.extra,
        }
        if self.retrieval is not None:
            out["retrieval"] = self.retrieval
        if self.tags is not None:
            out["tags"] = self.tags
        return out

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
