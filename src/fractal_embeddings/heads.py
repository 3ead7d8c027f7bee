"""Heads: the small trained modules that turn a frozen encoder vector into a steerable embedding.

Four kinds, one contract (:class:`Head`):

* ``linear`` (:class:`PrefixHead`, the seed's): one linear projection from the encoder dim to
  ``n_blocks x block_dim`` dims, plus one linear classifier per level that reads a full-length
  vector (a prefix is scored by zeroing the dims after it).
* ``mlp`` (:class:`PrefixHead` too): the projection is ``Linear -> GELU -> Linear`` (a deeper head).
* ``topk`` (:class:`TopKHead`, the CSR-style baseline): a TopK sparse autoencoder whose sparse
  code (``n_blocks x block_dim`` units, ``topk`` of them non-zero) is the embedding.
* ``heal`` (:class:`HealHead`, the HEAL-style baseline): an MLP trunk, then a separate projector
  per level whose outputs are L2-normalised and concatenated: level k < last gets block k, the
  finest level gets the remaining blocks (2 levels, 4 x 64: 64-d coarse + 192-d fine).

The modules themselves live in :mod:`fractal_embeddings.fractal_head`, a file that needs only torch
and sentence-transformers, because exported models carry it; this module adds the library's
validation (:class:`HeadConfig` raises :class:`~fractal_embeddings.errors.FractalError`). A head's
:meth:`~Head.config` plus its safetensors state are everything needed to rebuild it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from . import fractal_head
from .errors import FractalError
from .fractal_head import HEAD_KINDS as HEADS
from .fractal_head import Head, HealHead, PrefixHead, TopKHead, build_head

__all__ = ["HEADS", "Head", "HeadConfig", "HealHead", "PrefixHead", "TopKHead", "build_head", "head_from_config"]


@dataclass(frozen=True)
class HeadConfig(fractal_head.HeadConfig):
    """Architecture of a head (checked: a bad one raises :class:`FractalError`). ``n_blocks * block_dim``
    is the output dimension."""

    error: ClassVar[type[Exception]] = FractalError

    @classmethod
    def from_dims(cls, kind: str = "linear", dim: int = 256, block_dim: int = 64, **kw: Any) -> HeadConfig:
        """Config from a total output dim; it must be a multiple of ``block_dim``."""
        if block_dim < 1 or dim < block_dim or dim % block_dim:
            raise FractalError(
                f"output dim {dim} is not a multiple of block dim {block_dim}; "
                f"pick dims such that dim = n_blocks x block_dim (e.g. 256 = 4 x 64)"
            )
        return cls(kind, dim // block_dim, block_dim, **kw)


def heal_segments(n_blocks: int, n_levels: int) -> list[int]:
    """Blocks per level for the HEAL-style head: one per level, the rest to the finest level."""
    return fractal_head.heal_segments(n_blocks, n_levels, FractalError)


def head_from_config(cfg: dict) -> Head:
    """Rebuild an (untrained) head from :meth:`Head.config`'s dict."""
    cfg = dict(cfg)
    input_dim, n_classes = cfg.pop("input_dim"), cfg.pop("n_classes")
    return build_head(HeadConfig(**cfg), input_dim, n_classes)
