"""Loss functions shared by objectives."""

from __future__ import annotations

import torch


def supervised_contrastive(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020, the "L_out" form) of L2-normalised ``z``.

    For each anchor i with at least one positive (another row of the same label):
    ``-mean_{p in P(i)} log(exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t))``; the loss is the mean
    over those anchors (0 when no row has a positive).
    """
    n = z.shape[0]
    sim = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(dim=1)[has] / n_pos[has]
    return per_anchor.mean()
