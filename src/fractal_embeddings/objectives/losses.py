"""Loss functions shared by objectives."""

from __future__ import annotations

import functools

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
    pos = positive_pairs(labels)
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(dim=1)[has] / n_pos[has]
    return per_anchor.mean()


def positive_pairs(labels: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` bool: rows i != j with the same label (the positives of supervised contrastive)."""
    same = labels[:, None] == labels[None, :]
    return same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


def supervised_contrastive_stack(sim: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """:func:`supervised_contrastive` of a stack of scaled similarity matrices ``sim`` (``(T, n, n)``,
    each ``z z^T / t``) sharing the positives ``pos`` (:func:`positive_pairs`): a ``(T,)`` result.

    The fused ``fractal`` loss builds every prefix's similarities from per-block products and scores
    them here at once. Same value as :func:`supervised_contrastive` up to rounding, in fewer
    operations: an anchor's loss is ``logsumexp_{a != i} sim_ia - mean_{p in P(i)} sim_ip``, the
    diagonal excluded by adding ``-inf`` there, the positives' mean taken as one weighted sum."""
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):  # no anchor has a positive: zero, still connected to the graph
        return sim.sum(dim=(-2, -1)) * 0.0
    lse = torch.logsumexp(sim + minus_inf_diagonal(sim.shape[-1], sim.dtype, sim.device), dim=-1)  # (T, n)
    pos_mean = (sim * (pos / n_pos.clamp(min=1)[:, None])).sum(dim=-1)  # (T, n)
    return (lse - pos_mean)[:, has].mean(dim=-1)


@functools.lru_cache(maxsize=16)
def minus_inf_diagonal(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(n, n)``: ``-inf`` on the diagonal, 0 elsewhere (added to a similarity matrix to leave each row
    out of its own softmax); built once per shape, never written to."""
    return torch.zeros(n, n, dtype=dtype, device=device).fill_diagonal_(float("-inf"))


def infonce_margin(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    margin: float = 0.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """InfoNCE to one same-class positive plus a margin ranking term, of L2-normalised ``z``.

    Our reading of the seed code's contrastive loss. For each anchor i that has a positive in the
    batch, one positive p(i) is drawn uniformly among the other rows of its label (``generator``
    makes the draw reproducible); every other row is a negative, same-label rows included, as in
    plain InfoNCE. The loss is ``CE(z_i.z_a / t over a != i, target p(i))`` plus
    ``relu(margin - cos(i, p(i)) + max_{n: other label} cos(i, n))``, each a mean over those anchors.
    """
    n = z.shape[0]
    cos = z @ z.T
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    has = pos.any(dim=1)
    if not bool(has.any()):
        return z.sum() * 0.0
    noise = torch.rand(n, n, generator=generator).to(z.device)
    pick = noise.masked_fill(~pos, -1.0).argmax(dim=1)  # a uniform same-label row
    logits = (cos / temperature).masked_fill(self_mask, float("-inf"))
    nce = torch.nn.functional.cross_entropy(logits[has], pick[has])
    neg = labels[:, None] != labels[None, :]
    hardest = cos.masked_fill(~neg, -2.0).max(dim=1).values  # -2: no other label in the batch
    cos_pos = cos.gather(1, pick[:, None]).squeeze(1)
    rank = torch.relu(margin - cos_pos + hardest)
    rank = torch.where(hardest > -2.0, rank, torch.zeros_like(rank))
    return nce + rank[has].mean()
