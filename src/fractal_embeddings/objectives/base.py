"""What every objective provides to the trainer.

An objective is a small dataclass (its fields are its config) with:

* ``name`` and ``head_kind`` (``"linear"``, ``"heal"``, or ``None`` for no trained head);
* ``trainer_defaults``: trainer settings the method's recipe changes (e.g. HEAL's lr 1e-3);
* ``plan(n_steps, batch_size, n_blocks, n_levels, generator)``: every random draw of a run, made up front as
  tensors (no per-step Python RNG calls, and the draws depend only on the seed);
* ``loss(head, x, y, step, plan)`` (``head``: typed ``Any``, since each objective reads the methods
  of the head kind it declares): the loss of one batch (``x`` encoder vectors, ``y`` the
  ``(batch, n_levels)`` labels, ``step`` the global step index into ``plan``);
* optionally ``loss_terms(...)``: the same loss as ``(level, weighted term)`` pairs whose sum, in
  order, is ``loss`` (bit for bit); :meth:`Objective.loss_parts` groups them per level, which is what
  the sentence-transformers trainer logs (:mod:`fractal_embeddings.st`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from ..errors import FractalError


@dataclass
class Objective:
    name: ClassVar[str] = "objective"
    head_kind: ClassVar[str | None] = "linear"
    trainer_defaults: ClassVar[dict] = {}
    # True when the loss depends on the step's place in the whole run (a schedule over steps), which a
    # loss that sees one batch at a time (FractalLoss in sentence-transformers' trainer) cannot follow
    step_dependent: ClassVar[bool] = False

    def plan(self, n_steps: int, batch_size: int, n_blocks: int, n_levels: int, generator: torch.Generator) -> dict:
        return {}

    def loss(self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict) -> torch.Tensor:
        terms = [term for _, term in self.loss_terms(head, x, y, step, plan)]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def loss_terms(
        self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict
    ) -> list[tuple[int | None, torch.Tensor]]:
        """``(level, weighted term)`` pairs of the batch loss (level ``None``: not one level's).
        Objectives override :meth:`loss` or this; each default falls back on the other."""
        if type(self).loss is Objective.loss:
            raise NotImplementedError(f"{type(self).__name__} defines neither loss nor loss_terms")
        return [(None, self.loss(head, x, y, step, plan))]

    def loss_parts(
        self,
        head: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        step: int,
        plan: dict,
        level_names: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The batch loss split per level: ``{level name: sum of its terms}`` (``"loss"`` for terms of
        no single level); the values sum to :meth:`loss` (up to the order of additions)."""
        parts: dict[str, torch.Tensor] = {}
        for level, term in self.loss_terms(head, x, y, step, plan):
            key = "loss" if level is None else (level_names[level] if level_names else f"L{level}")
            parts[key] = parts[key] + term if key in parts else term
        return parts

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
