"""What every objective provides to the trainer.

An objective is a small dataclass (its fields are its config) with:

* ``name`` and ``head_kind`` (``"linear"``, ``"heal"``, or ``None`` for no trained head);
* ``trainer_defaults``: trainer settings the method's recipe changes (e.g. HEAL's lr 1e-3);
* ``plan(n_steps, batch_size, n_blocks, n_levels, generator)``: every random draw of a run, made up front as
  tensors (no per-step Python RNG calls, and the draws depend only on the seed);
* ``loss(head, x, y, step, plan)``: the loss of one batch (``x`` encoder vectors, ``y`` the
  ``(batch, n_levels)`` labels, ``step`` the global step index into ``plan``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from ..errors import FractalError


@dataclass
class Objective:
    name: ClassVar[str] = "objective"
    head_kind: ClassVar[str | None] = "linear"
    trainer_defaults: ClassVar[dict] = {}

    def plan(self, n_steps: int, batch_size: int, n_blocks: int, n_levels: int,
             generator: torch.Generator) -> dict:
        return {}

    def loss(self, head, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict) -> torch.Tensor:
        raise NotImplementedError

    def selection_levels(self, n_levels: int) -> tuple[int, ...]:
        """Levels whose validation k-NN accuracies, summed, pick the best epoch: coarsest + finest."""
        return (0, n_levels - 1)

    def head_options(self) -> dict:
        """HeadConfig fields this objective sets (the kind, and e.g. ``block_norm``)."""
        return {"kind": self.head_kind or "linear"}

    def config(self) -> dict:
        return {"method": self.name, **asdict(self)}

    def check(self, n_blocks: int, n_levels: int) -> None:
        """Raise a one-line :class:`FractalError` when the objective can't run on this shape."""
        if n_levels < 2:
            raise FractalError(f"{self.name} needs a taxonomy with >= 2 levels, got {n_levels}")
