"""``single-level``: a dedicated head for one level (one half of a dual-encoder baseline).

Cross-entropy of one level's classifier on the full vector, nothing else: no prefix terms, no block
dropout, the seed's trainer recipe; the best epoch is chosen by that level's validation k-NN accuracy
alone. ``level`` picks the level (0 = coarsest, -1 = finest); ``head`` the head (``linear``, the
seed's, or ``mlp`` with ``block_norm`` as in ``fractal``, to match its architecture). Two such
heads (coarse-only and fine-only) are the dual-encoder baseline that one aligned model replaces
with its short prefix (coarse) and its full vector (fine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..errors import FractalError
from .base import Objective


@dataclass
class SingleLevel(Objective):
    """``single-level``: CE of one level on the full vector (a dedicated encoder for that level)."""

    name: ClassVar[str] = "single-level"
    level: int = -1
    head: str = "linear"
    hidden_dim: int = 512
    block_norm: bool = False

    def head_options(self) -> dict:
        return {"kind": self.head, "hidden_dim": self.hidden_dim, "block_norm": self.block_norm}

    def selection_levels(self, n_levels: int) -> tuple[int, ...]:
        return (self.level % n_levels,)

    def check(self, n_blocks: int, n_levels: int) -> None:
        super().check(n_blocks, n_levels)
        if not -n_levels <= self.level < n_levels:
            raise FractalError(
                f"level {self.level} does not exist in a {n_levels}-level taxonomy; use 0..{n_levels - 1} or -1"
            )
        if self.head not in ("linear", "mlp"):
            raise FractalError(f"single-level trains the linear or mlp head, got {self.head!r}")

    def loss(self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict) -> torch.Tensor:
        level = self.level % head.n_levels
        return F.cross_entropy(head.logits(level, head(x)), y[:, level])
