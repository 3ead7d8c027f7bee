"""A run: a record and what embeds texts the way the record was scored.

:class:`Run` is the one facade every reader of a run uses (index, search, explore, export, report);
it has two implementations:

* :class:`HeadRun`: a head trained on a frozen encoder's vectors (``fractal train``; ``flat``: no
  head, the encoder truncated). Saved as ``record.json`` + ``head.safetensors``.
* :class:`~fractal_embeddings.finetune.FinetunedRun`: a whole fine-tuned sentence-transformers model
  (``fractal finetune``) whose last module is the head; the run folder is the model.

:func:`~fractal_embeddings.runs.load_run` returns the right one for a saved run.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .encoders import Encoder
from .errors import FractalError
from .heads import Head
from .records import EncoderInfo, RunRecord
from .validation import check_matrix, check_texts
from .weights import save_run

if TYPE_CHECKING:
    from .backbone import TunedHead


@dataclass
class Run(ABC):
    """A run record and the model that embeds texts as the record was scored."""

    record: RunRecord
    path: Path | None = field(default=None, kw_only=True)  # the run directory it was loaded from (None: not saved)

    @property
    def head(self) -> Head | TunedHead | None:
        """The trained head on a frozen encoder (None: no separate head)."""
        return None

    @abstractmethod
    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the run into ``out_dir`` (a new or empty folder; an existing run only with ``overwrite``)."""

    @abstractmethod
    def encoder(self, device: str | None = "auto") -> Encoder:
        """The encoder whose vectors :meth:`transform` reads."""

    @abstractmethod
    def transform(self, X: Any) -> np.ndarray:
        """Encoder vectors ``(n, encoder dim)`` -> steerable embeddings ``(n, dim)``."""

    @abstractmethod
    def baseline_encoder(self, device: str | None = "auto") -> Encoder | None:
        """The untrained encoder the run's baseline is scored with; ``None``: :meth:`encoder` itself."""

    def embed(
        self,
        texts: Iterable[str],
        role: str = "query",
        encoder: Encoder | None = None,
        cache: bool = False,
        device: str | None = "auto",
    ) -> np.ndarray:
        """Texts (a list of strings) -> the run's steerable embeddings ``(n, dim)`` (encoder + head)."""
        texts = check_texts(texts)
        enc = encoder if encoder is not None else self.encoder(device)
        X = enc.embed(texts, role=role) if cache else enc.encode(texts, role=role)
        return self.transform(X)

    @property
    def is_finetuned(self) -> bool:
        """A ``fractal finetune`` run: the model folder is the run."""
        return self.record.is_finetuned

    @property
    def dim(self) -> int:
        return self.record.head.dim

    @property
    def level_names(self) -> list[str]:
        return self.record.level_names

    def accuracy_table(self, baseline: bool = False) -> np.ndarray:
        """``acc[j-1, level]`` of the trained head (or of the untrained encoder)."""
        return (self.record.baseline if baseline else self.record.scores).table(self.level_names)


def encoder_of(e: EncoderInfo, device: str | None = "auto") -> Encoder:
    """The encoder an encoder block describes: its model, backend, length, normalisation and the
    query prompt the run was encoded with (a custom one included)."""
    enc = Encoder(
        e.model or e.name, backend=e.backend, max_seq_length=e.max_seq_length, normalize=e.normalize, device=device
    )
    enc.prompts = {**enc.prompts, "query": e.prompt}
    return enc


def apply_head(head: Head | TunedHead | None, X: np.ndarray, dim: int) -> np.ndarray:
    """Encoder vectors -> embeddings: the head's, or (no head) the encoder truncated to ``dim``."""
    X = np.asarray(X, dtype=np.float32)
    return head.transform(X) if head is not None else np.ascontiguousarray(X[:, :dim])


@dataclass
class HeadRun(Run):
    """A head trained on a frozen encoder (``head`` None: ``flat``, the encoder truncated to ``dim``)."""

    head: Head | TunedHead | None = None  # a field here, a property on Run

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        return save_run(out_dir, self.record, self.head, overwrite=overwrite)

    def encoder(self, device: str | None = "auto") -> Encoder:
        return encoder_of(self.record.encoder, device)

    def baseline_encoder(self, device: str | None = "auto") -> Encoder | None:
        return None

    def transform(self, X: Any) -> np.ndarray:
        if self.head is not None and not isinstance(self.head, Head):  # a TunedHead reads token states
            return apply_head(self.head, X, self.dim)
        X = check_matrix(X, "X", width=self.head.input_dim if self.head is not None else None)
        if self.head is None and X.shape[1] < self.dim:
            raise FractalError(
                f"X has {X.shape[1]} columns; this run truncates encoder vectors to {self.dim}, so it needs at "
                f"least that many (the run's encoder: {self.record.encoder.name})"
            )
        return apply_head(self.head, X, self.dim)
