"""``fractal``: aligned prefix supervision that shapes the prefix geometry (the objective study's family).

The seed's recipe (``v5-paper``) decides *which label* each prefix is trained on, but with
cross-entropy alone the short prefix keeps most of the encoder's fine structure, so steerability
stays small. This family keeps the same label schedule and adds what the study varies:

* every prefix is trained every step with its expected weight (``prefix_weight * P(j)``, P =
  0.4, 0.3, 0.2, 0.1 by default) instead of one sampled prefix per batch, plus the finest level on the
  full vector with weight 1 -- the seed's loss in expectation;
* ``contrastive_weight``: a supervised contrastive loss (temperature ``temperature``) on the
  L2-normalised prefix, next to each cross-entropy term (``contrastive_on="all"``) or only next to
  the shortest prefix's and the full vector's (``"ends"``), so a prefix trained on a level clusters
  by that level's classes;
* ``stop_grad``: a level's loss may not write into a block the schedule dedicates (weight 1.0)
  to a coarser level -- those dims enter its prefix detached. With the aligned schedule and two
  levels, the fine-level losses cannot move the first 64 dims; in the matched MRL control (finest
  level everywhere) no block belongs to a coarser level, so nothing is detached;
* ``contrastive``: which contrastive loss -- ``supcon`` (supervised contrastive: every same-label
  row is a positive) or ``infonce-margin`` (our reading of the seed's code: InfoNCE to one randomly
  drawn same-label row plus a margin ranking term against the hardest other-label row, ``margin``);
* ``refine``: the successive-refinement parameterisation. Each prefix term writes only into its
  newest block; blocks 1..j-1 enter prefix j detached. A linear classifier over a prefix is a sum of
  per-block scores, so block j is trained on what blocks 1..j-1 do not already explain (boosting
  in logit space; with the contrastive loss, on what makes the fixed shorter prefix cluster
  better). It implies ``stop_grad`` and is stronger: a finer term cannot write into *any* earlier block;
* the head: ``head`` = ``linear`` or ``mlp`` (one hidden layer, ``hidden_dim``), ``block_norm``
  (each 64-d block L2-normalised).

The defaults are the objective study's winner (docs/objective-study.md: supervised contrastive on
every trained prefix, stop-gradient, block norm, the one-hidden-layer MLP head). ``schedule`` is ``aligned`` for the
method and ``finest`` for its matched MRL control (``fractal-mrl``:
everything identical, the finest level at every prefix). Trainer defaults: lr 1e-3, batch 128, 10
epochs (contrastive losses need batches with positives).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FractalError
from ..heads import HeadConfig
from .base import Objective
from .losses import (
    infonce_margin,
    positive_pairs,
    supervised_contrastive,
    supervised_contrastive_stack,
)
from .prefix import default_prefix_probs, schedule_weights

CONTRASTIVE = ("supcon", "infonce-margin")


@dataclass
class Fractal(Objective):
    """``fractal``: aligned prefixes + supervised contrastive per prefix + stop-gradient + block norm, MLP head."""

    name: ClassVar[str] = "fractal"
    head_kind: ClassVar[str] = "mlp"
    trainer_defaults: ClassVar[dict] = {"lr": 1e-3, "batch_size": 128, "epochs": 10}
    # the fused loss (fused_terms) where it applies: block norm + supcon; False forces the per-term path
    # (the reference the tests and bench/train_speed.py compare against; not part of the config)
    fused: ClassVar[bool] = True
    schedule: str = "aligned"
    prefix_weight: float = 0.6
    prefix_probs: tuple[float, ...] | None = None
    contrastive_weight: float = 1.0
    contrastive_on: str = "all"  # "all" terms, or "ends": the shortest prefix and the full vector only
    temperature: float = 0.1
    contrastive: str = "supcon"  # or "infonce-margin"
    margin: float = 0.2  # infonce-margin only
    stop_grad: bool = True
    refine: bool = False
    head: str = "mlp"
    hidden_dim: int = 512
    block_norm: bool = True

    def head_options(self) -> dict:
        return {"kind": self.head, "hidden_dim": self.hidden_dim, "block_norm": self.block_norm}

    def check(self, n_blocks: int, n_levels: int) -> None:
        super().check(n_blocks, n_levels)
        schedule_weights(self.schedule, n_blocks, n_levels)
        if self.contrastive_on not in ("all", "ends"):
            raise FractalError(f"contrastive_on must be 'all' or 'ends', got {self.contrastive_on!r}")
        if self.contrastive not in CONTRASTIVE:
            raise FractalError(f"contrastive must be one of {', '.join(CONTRASTIVE)}, got {self.contrastive!r}")
        HeadConfig(kind=self.head)
        if self.head not in ("linear", "mlp"):
            raise FractalError("fractal trains the linear or mlp head; use method heal for the HEAL-style head")

    def terms(self, n_blocks: int, n_levels: int) -> list[tuple[int, int, float, int]]:
        """``(prefix j, level, weight, detached dims)`` of every loss term."""
        W = schedule_weights(self.schedule, n_blocks, n_levels)
        probs = np.asarray(self.prefix_probs or default_prefix_probs(n_blocks))
        out = [(n_blocks, n_levels - 1, 1.0)]
        out += [
            (j + 1, lv, self.prefix_weight * probs[j] * W[j, lv])
            for j in range(n_blocks)
            for lv in range(n_levels)
            if W[j, lv] > 0
        ]
        # block b belongs to level l when the schedule trains prefix b on l alone
        owner = [int(np.argmax(W[b])) if np.isclose(W[b].max(), 1.0) else None for b in range(n_blocks)]
        result = []
        for j, lv, w in out:
            frozen = 0
            if self.refine:
                frozen = j - 1
            elif self.stop_grad:
                while frozen < j and (own := owner[frozen]) is not None and own < lv:
                    frozen += 1
            result.append((j, lv, float(w), frozen))
        return result

    def plan(self, n_steps: int, batch_size: int, n_blocks: int, n_levels: int, generator: torch.Generator) -> dict:
        plan: dict[str, Any] = {"terms": self.terms(n_blocks, n_levels)}
        if self.contrastive_weight and self.contrastive == "infonce-margin":  # draws only when used
            plan["positive_seeds"] = torch.randint(0, 2**62, (n_steps,), generator=generator)
        return plan

    def loss_terms(
        self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict
    ) -> list[tuple[int | None, torch.Tensor]]:
        e = head(x)
        # the fused loss needs block norm, supcon, and a trainable block in every term's prefix (a term
        # whose whole prefix is detached -- a one-block head -- takes the per-term path)
        fusable = self.fused and head.head_config.block_norm and self.contrastive == "supcon"
        if fusable and all(frozen < j for j, _, _, frozen in plan["terms"]):
            return self.fused_terms(head, e, y, plan["terms"])
        block_dim = head.head_config.block_dim
        gen = None
        if "positive_seeds" in plan:
            gen = torch.Generator().manual_seed(int(plan["positive_seeds"][step]))
        out = []
        for j, level, w, frozen in plan["terms"]:
            p = e[:, : j * block_dim]
            if frozen:
                p = torch.cat([p[:, : frozen * block_dim].detach(), p[:, frozen * block_dim :]], dim=1)
            term = head.prefix_logits(level, p, j)
            term = F.cross_entropy(term, y[:, level])
            if self.contrasts(j, head.head_config.n_blocks):
                z = F.normalize(p, dim=1)
                if self.contrastive == "supcon":
                    c = supervised_contrastive(z, y[:, level], self.temperature)
                else:
                    c = infonce_margin(z, y[:, level], self.temperature, self.margin, gen)
                term = term + self.contrastive_weight * c
            out.append((level, w * term))
        return out

    def contrasts(self, j: int, n_blocks: int) -> bool:
        """Whether prefix j's terms carry the contrastive loss (both paths ask this)."""
        return bool(self.contrastive_weight) and (self.contrastive_on == "all" or j in (1, n_blocks))

    def fused_terms(
        self, head: Any, e: torch.Tensor, y: torch.Tensor, terms: list[tuple[int, int, float, int]]
    ) -> list[tuple[int | None, torch.Tensor]]:
        """The same loss as the per-term path, every prefix's products built from per-block ones.

        With block norm every block has unit norm, so prefix j has norm sqrt(j) and its cosine matrix
        is the mean of the j per-block Gram matrices; a prefix's classifier logits are the bias plus
        the sum of the per-block partial logits. So one batched product per quantity serves every term
        (the per-term path pays for 1 + 2 + ... blocks), and the terms of one level that detach the same
        blocks are scored together from cumulative sums: one cross-entropy and one contrastive call
        over a stack of prefixes. A detached block enters as the detached Gram matrix / the partial
        logits of the detached block (the classifier still learns from it, as on the per-term path).
        Equal to the per-term path up to float rounding (tests/test_objectives.py); returns one
        ``(level, weighted sum of its terms)`` pair per level and detached-block count."""
        n, (n_blocks, block_dim) = len(e), (head.head_config.n_blocks, head.head_config.block_dim)
        blocks = e.view(n, n_blocks, block_dim).transpose(0, 1)  # (blocks, rows, block_dim)
        contrasts = tuple(self.contrasts(j, n_blocks) for j in range(1, n_blocks + 1))
        groups = fused_groups(tuple(terms), contrasts, self.temperature, e.device, e.dtype)
        gram = torch.bmm(blocks, blocks.transpose(1, 2)) if self.contrastive_weight else None
        out: list[tuple[int | None, torch.Tensor]] = []
        for g in groups:
            frozen, last = g.frozen, g.js[-1]
            cls = head.classifiers[g.level]
            wb = cls.weight.view(-1, n_blocks, block_dim).permute(1, 2, 0)  # (blocks, block_dim, classes)
            logits = torch.bmm(blocks[frozen:last], wb[frozen:last]).cumsum(0)
            logits = (logits if g.every else logits[g.at]) + cls.bias
            if frozen:
                logits = logits + torch.bmm(blocks[:frozen].detach(), wb[:frozen]).sum(0)
            labels = y[:, g.level]
            losses = F.cross_entropy(logits.flatten(0, 1), labels.repeat(len(g.js)), reduction="none")
            losses = losses.view(len(g.js), n).mean(1)
            if gram is not None and g.keep is not None and g.scale is not None:
                sims = gram[frozen:last].cumsum(0)
                if g.keep_at is not None:
                    sims = sims[g.keep_at]
                if frozen:
                    sims = sims + gram[:frozen].detach().sum(0)
                c = supervised_contrastive_stack(sims / g.scale, positive_pairs(labels))
                losses = losses.index_add(0, g.keep, self.contrastive_weight * c)
            out.append((g.level, (g.weights * losses).sum()))
        return out


@dataclass(frozen=True)
class FusedGroup:
    """The constants of one (level, detached blocks) group of :meth:`Fractal.fused_terms`: the same for
    every step of a run, so they are built once (:func:`fused_groups`), not per step."""

    level: int
    frozen: int  # detached blocks
    js: tuple[int, ...]  # the prefixes scored, ascending
    at: torch.Tensor  # their places in the cumulative sums over blocks frozen+1..js[-1]
    every: bool  # js is every prefix frozen+1..js[-1]: no selection needed
    weights: torch.Tensor  # each prefix's summed term weight
    keep: torch.Tensor | None  # positions in js whose terms carry the contrastive loss (None: none)
    keep_at: torch.Tensor | None  # their places in the cumulative sums (None: all of them, in order)
    scale: torch.Tensor | None  # (kept, 1, 1): prefix j's cosine is its Gram sum / j, then / temperature


@functools.lru_cache(maxsize=64)
def fused_groups(
    terms: tuple[tuple[int, int, float, int], ...],
    contrasts: tuple[bool, ...],
    temperature: float,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[FusedGroup, ...]:
    """:class:`FusedGroup` s of ``terms`` (``Fractal.terms``), in first-seen order; ``contrasts[j - 1]``:
    whether prefix j carries the contrastive loss."""
    grouped: dict[tuple[int, int], dict[int, float]] = {}  # (level, detached blocks) -> {prefix j: weight}
    for j, level, w, frozen in terms:
        group = grouped.setdefault((level, frozen), {})
        group[j] = group.get(j, 0.0) + w  # the full-vector term and the last prefix's share one score
    out = []
    for (level, frozen), group in grouped.items():
        js = sorted(group)
        at = torch.tensor([j - frozen - 1 for j in js], device=device)
        every = js == list(range(frozen + 1, js[-1] + 1))
        keep = [i for i, j in enumerate(js) if contrasts[j - 1]]
        out.append(
            FusedGroup(
                level=level,
                frozen=frozen,
                js=tuple(js),
                at=at,
                every=every,
                weights=torch.tensor([group[j] for j in js], dtype=dtype, device=device),
                keep=at.new_tensor(keep) if keep else None,
                keep_at=None if (every and len(keep) == len(js)) or not keep else at[at.new_tensor(keep)],
                scale=torch.tensor([js[i] * temperature for i in keep], dtype=dtype, device=device)[:, None, None]
                if keep
                else None,
            )
        )
    return tuple(out)


@dataclass
class FractalMRL(Fractal):
    """``fractal-mrl``: the matched MRL control of ``fractal`` (finest level at every prefix)."""

    name: ClassVar[str] = "fractal-mrl"
    schedule: str = "finest"
