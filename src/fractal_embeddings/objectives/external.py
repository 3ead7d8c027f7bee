"""External baselines of the seed, under our conditions (same cache, trainer and evaluation).

* ``smec`` -- SMEC-style sequential Matryoshka compression (Zhang et al., 2025): a linear head is
  trained on the finest level at the full vector, then the training goes on with the half-length
  prefix added, then the first block (256 -> 128 -> 64 dims with 4 x 64), each stage a third of
  the steps. Every stage trains the finest level only, so, like ``mrl``, it should not steer.
* ``csr`` -- CSR-style contrastive sparse representation (Wen et al., 2025): a TopK sparse
  autoencoder on the frozen vectors (``topk`` of 256 units active), trained on reconstruction
  (MSE) + a supervised contrastive loss on the finest level; its sparse code is the embedding and
  its "prefixes" are the first 64/128/192 units. No level is aligned to a prefix.

Trainer defaults: ``smec`` the seed's recipe (like ``v5-paper``); ``csr`` lr 1e-3, batch 128,
10 epochs (a contrastive loss needs batches with positives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .base import Objective
from .losses import supervised_contrastive


def smec_stages(n_blocks: int) -> list[int]:
    """Prefix lengths (blocks) of the successive stages: full, then halving down to one block."""
    stages, j = [n_blocks], n_blocks
    while j > 1:
        j = max(1, j // 2)
        stages.append(j)
    return stages


@dataclass
class SMEC(Objective):
    """``smec``: SMEC-style sequential Matryoshka compression (finest level; 256 -> 128 -> 64 in turn)."""

    name: ClassVar[str] = "smec"
    head_kind: ClassVar[str] = "linear"
    step_dependent: ClassVar[bool] = True  # its stages follow the run's steps

    def plan(self, n_steps: int, batch_size: int, n_blocks: int, n_levels: int, generator: torch.Generator) -> dict:
        stages = smec_stages(n_blocks)
        stage_of_step = [min(len(stages) - 1, s * len(stages) // max(1, n_steps)) for s in range(n_steps)]
        return {"stages": stages, "stage": stage_of_step}

    def loss(self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict) -> torch.Tensor:
        e = head(x)
        fine = y.shape[1] - 1
        active = plan["stages"][: plan["stage"][step] + 1]
        total = sum(F.cross_entropy(head.prefix_logits(fine, e, j), y[:, fine]) for j in active)
        assert isinstance(total, torch.Tensor)  # every stage trains >= 1 prefix
        return total / len(active)


@dataclass
class CSR(Objective):
    """``csr``: CSR-style TopK sparse autoencoder + supervised contrastive on the finest level."""

    name: ClassVar[str] = "csr"
    head_kind: ClassVar[str] = "topk"
    trainer_defaults: ClassVar[dict] = {"lr": 1e-3, "batch_size": 128, "epochs": 10}
    topk: int = 32
    contrastive_weight: float = 1.0
    temperature: float = 0.1

    def head_options(self) -> dict:
        return {"kind": "topk", "topk": self.topk}

    def loss(self, head: Any, x: torch.Tensor, y: torch.Tensor, step: int, plan: dict) -> torch.Tensor:
        h = head(x)
        loss = F.mse_loss(head.decode(h), x)
        if self.contrastive_weight:
            loss = loss + self.contrastive_weight * supervised_contrastive(
                F.normalize(h, dim=1), y[:, -1], self.temperature
            )
        return loss
