"""Prefix supervision: the seed's V5 recipe and its matched controls (one loss, four label schedules).

Per batch, one prefix length j (in blocks) is drawn with probabilities ``prefix_probs`` (default for
4 blocks: 0.4, 0.3, 0.2, 0.1; for B blocks: proportional to B, B-1, ..., 1). Each training row
gets block dropout: block b is kept with probability ``block_keep[b]`` (default 0.95, 0.9, 0.8,
0.7; for B blocks: linear from 0.95 to 0.7), and a dropped block is set to zero (no rescaling). With
``e`` the dropped-out embedding and ``p_j`` = ``e`` with every dim after block j zeroed::

    L = CE(cls_finest(e), y_finest) + prefix_weight * sum_l W[j, l] * CE(cls_l(p_j), y_l)

``W`` (n_blocks x n_levels, rows sum to 1) is the label schedule, which is all that differs:

* ``aligned`` (method ``v5-paper``): prefixes map to levels coarse-to-fine. Prefix j sits at
  position u = (j-1)/(B-1) * (L-1) on the level axis; levels floor(u) and ceil(u) share the weight
  linearly, rounded to 0.1. For 2 levels and 4 blocks this is the seed's table: j1 = L0, j2 = 0.7 L0
  + 0.3 L1, j3 = 0.3 L0 + 0.7 L1, j4 = L1. For 3 levels and 4 blocks: j1 = L0, j2 = 0.3 L0 + 0.7 L1,
  j3 = 0.7 L1 + 0.3 L2, j4 = L2.
* ``finest`` (``mrl``, the matched control): every prefix on the finest level.
* ``inverted`` (``inverted``, the sign-reversal control): the aligned rows in reverse order, so j1
  is trained on the finest level and the full vector on the coarsest.
* ``uniform`` (``uhmt``): every prefix on an equal mix of all levels (0.5 coarse + 0.5 fine for two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FractalError
from .base import Objective

SCHEDULES = ("aligned", "finest", "inverted", "uniform")


def default_prefix_probs(n_blocks: int) -> tuple[float, ...]:
    w = np.arange(n_blocks, 0, -1, dtype=float)
    return tuple(float(v) for v in np.round(w / w.sum(), 6))


def default_block_keep(n_blocks: int) -> tuple[float, ...]:
    if n_blocks == 4:
        return (0.95, 0.9, 0.8, 0.7)
    return tuple(float(v) for v in np.round(np.linspace(0.95, 0.7, n_blocks), 4))


def aligned_weights(n_blocks: int, n_levels: int) -> np.ndarray:
    """The coarse-to-fine schedule described in the module docstring."""
    W = np.zeros((n_blocks, n_levels))
    for j in range(n_blocks):
        u = j / max(n_blocks - 1, 1) * (n_levels - 1)
        lo = int(np.floor(u + 1e-9))
        frac = round(u - lo, 1)
        W[j, lo] += 1.0 - frac
        if frac > 0:
            W[j, lo + 1] += frac
    return np.round(W, 6)


def schedule_weights(schedule: str, n_blocks: int, n_levels: int) -> np.ndarray:
    """``W[j-1, level]``: weight of level's cross-entropy on prefix j."""
    if schedule == "aligned":
        return aligned_weights(n_blocks, n_levels)
    if schedule == "inverted":
        return aligned_weights(n_blocks, n_levels)[::-1].copy()
    if schedule == "finest":
        W = np.zeros((n_blocks, n_levels))
        W[:, -1] = 1.0
        return W
    if schedule == "uniform":
        return np.full((n_blocks, n_levels), 1.0 / n_levels)
    raise FractalError(f"unknown label schedule '{schedule}'; use one of {', '.join(SCHEDULES)}")


@dataclass
class PrefixSupervision(Objective):
    """The seed's V5 loss with a configurable label schedule (see the module docstring)."""

    name: ClassVar[str] = "prefix-supervision"
    schedule: str = "aligned"
    prefix_weight: float = 0.6
    prefix_probs: tuple[float, ...] | None = None
    block_keep: tuple[float, ...] | None = None

    def check(self, n_blocks: int, n_levels: int) -> None:
        super().check(n_blocks, n_levels)
        schedule_weights(self.schedule, n_blocks, n_levels)
        for field, value in (("prefix_probs", self.prefix_probs), ("block_keep", self.block_keep)):
            if value is not None and len(value) != n_blocks:
                raise FractalError(f"{field} has {len(value)} entries for {n_blocks} blocks; give one per block")

    def weights(self, n_blocks: int, n_levels: int) -> np.ndarray:
        return schedule_weights(self.schedule, n_blocks, n_levels)

    def terms(self, j: int, n_blocks: int, n_levels: int) -> list[tuple[str, int, float]]:
        """The loss at prefix j as ``(input, level, weight)`` terms; input is ``"full"`` or ``"prefix"``."""
        out = [("full", n_levels - 1, 1.0)]
        out += [
            ("prefix", lv, self.prefix_weight * float(w))
            for lv, w in enumerate(self.weights(n_blocks, n_levels)[j - 1])
            if w > 0
        ]
        return out

    def plan(self, n_steps: int, batch_size: int, n_blocks: int, n_levels: int, generator: torch.Generator) -> dict:
        probs = torch.tensor(self.prefix_probs or default_prefix_probs(n_blocks), dtype=torch.float64)
        keep = torch.tensor(self.block_keep or default_block_keep(n_blocks), dtype=torch.float32)
        j = torch.multinomial(probs, n_steps, replacement=True, generator=generator) + 1
        masks = torch.rand(n_steps, batch_size, n_blocks, generator=generator) < keep
        terms = {jj: self.terms(jj, n_blocks, n_levels) for jj in range(1, n_blocks + 1)}
        return {"j": j.tolist(), "block_mask": masks.to(torch.float32), "terms": terms}

    def loss_terms(
        self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict
    ) -> list[tuple[int | None, torch.Tensor]]:
        e = head(x)
        n_blocks, block_dim = head.head_config.n_blocks, head.head_config.block_dim
        if "block_mask" in plan:
            mask = plan["block_mask"][step, : len(x)].to(e.device)
            e = (e.view(len(x), n_blocks, block_dim) * mask[:, :, None]).view(len(x), -1)
        j = plan["j"][step]
        out = []
        for where, level, w in plan["terms"][j]:
            logits = head.logits(level, e) if where == "full" else head.prefix_logits(level, e, j)
            out.append((level, w * F.cross_entropy(logits, y[:, level])))
        return out


@dataclass
class V5Paper(PrefixSupervision):
    """``v5-paper``: the seed's recipe as written, short prefixes on coarse labels."""

    name: ClassVar[str] = "v5-paper"
    schedule: str = "aligned"


@dataclass
class MRL(PrefixSupervision):
    """``mrl``: the matched Matryoshka control, every prefix on the finest level."""

    name: ClassVar[str] = "mrl"
    schedule: str = "finest"


@dataclass
class Inverted(PrefixSupervision):
    """``inverted``: the aligned schedule reversed (j1 on the finest level): the sign-reversal control."""

    name: ClassVar[str] = "inverted"
    schedule: str = "inverted"


@dataclass
class UHMT(PrefixSupervision):
    """``uhmt``: every prefix on an equal mix of all levels: hierarchy-aware, not aligned."""

    name: ClassVar[str] = "uhmt"
    schedule: str = "uniform"
