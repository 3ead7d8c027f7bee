"""Would stacking the seeds of a grid point into one batched model speed up `fractal` training here?

A prototype step, not library code: S `fractal` heads (the default MLP head, block norm, the fused
loss's term groups from ``objectives.fractal.fused_groups``) held as stacked weights, one batched
forward / backward / per-seed gradient clip / fused AdamW update for all S, at the shapes of
``fractal train clinc150`` (batch 128, 384 -> 512 -> 256, 10 + 150 classes), single-threaded, on
random data. Prints the median milliseconds per step and per seed-step for S = 1 and S = ``--seeds``;
compare the per-seed figure with the library's fused step (``bench/train_speed.py``, "fused"
ms_per_step). If stacking paid, the per-seed cost would fall well below S = 1's.

    python bench/stacked_seeds.py [--seeds 5] [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from fractal_embeddings.objectives import get_objective
from fractal_embeddings.objectives.fractal import fused_groups
from fractal_embeddings.objectives.losses import minus_inf_diagonal

B, D, H, NB, BD, CLASSES = 128, 384, 512, 4, 64, (10, 150)


def make_step(S: int):
    obj = get_objective("fractal")
    contrasts = tuple(obj.contrasts(j, NB) for j in range(1, NB + 1))
    groups = fused_groups(tuple(obj.terms(NB, 2)), contrasts, obj.temperature, torch.device("cpu"), torch.float32)
    gen = torch.Generator().manual_seed(0)

    def param(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * 0.05).requires_grad_()

    W1, b1, W2, b2 = param(S, D, H), param(S, 1, H), param(S, H, NB * BD), param(S, 1, NB * BD)
    Cw, Cb = [param(S, NB * BD, c) for c in CLASSES], [param(S, 1, c) for c in CLASSES]
    params = [W1, b1, W2, b2, *Cw, *Cb]
    X = torch.randn(S, 64 * B, D, generator=gen)
    fine = torch.randint(0, CLASSES[1], (S, 64 * B), generator=gen)
    Y = torch.stack([fine // (CLASSES[1] // CLASSES[0]), fine], -1)
    state = ([torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params])
    steps = [torch.zeros(()) for _ in params]
    eye = torch.eye(B, dtype=torch.bool)

    def step(i: int) -> None:
        x, y = X[:, (i % 64) * B : (i % 64 + 1) * B], Y[:, (i % 64) * B : (i % 64 + 1) * B]
        e = torch.baddbmm(b2, F.gelu(torch.baddbmm(b1, x, W1)), W2).view(S, B, NB, BD)
        blocks = F.normalize(e, dim=-1).permute(0, 2, 1, 3)  # (S, blocks, rows, block_dim)
        flat = blocks.reshape(S * NB, B, BD)
        gram = torch.bmm(flat, flat.transpose(1, 2)).view(S, NB, B, B)
        total = torch.zeros(())
        for g in groups:
            fr, last = g.frozen, g.js[-1]
            wb = Cw[g.level].view(S, NB, BD, -1)
            logits = torch.matmul(blocks[:, fr:last], wb[:, fr:last]).cumsum(1)
            logits = (logits if g.every else logits[:, g.at]) + Cb[g.level][:, None]
            if fr:
                logits = logits + torch.matmul(blocks[:, :fr].detach(), wb[:, :fr]).sum(1, keepdim=True)
            labels = y[..., g.level]
            T = logits.shape[1]
            ce = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels[:, None].expand(S, T, B).reshape(-1), reduction="none"
            )
            losses = ce.view(S, T, B).mean(-1)
            if g.keep is not None and g.scale is not None:
                sims = gram[:, fr:last].cumsum(1)
                if g.keep_at is not None:
                    sims = sims[:, g.keep_at]
                if fr:
                    sims = sims + gram[:, :fr].detach().sum(1, keepdim=True)
                sims = sims / g.scale
                pos = (labels[:, :, None] == labels[:, None, :]) & ~eye
                n_pos = pos.sum(-1)
                has = (n_pos > 0).to(sims.dtype)
                lse = torch.logsumexp(sims + minus_inf_diagonal(B, sims.dtype, sims.device), -1)
                pos_mean = (sims * (pos / n_pos.clamp(min=1)[..., None])[:, None]).sum(-1)
                c = ((lse - pos_mean) * has[:, None]).sum(-1) / has.sum(-1)[:, None]
                losses = losses.index_add(1, g.keep, obj.contrastive_weight * c)
            total = total + (g.weights * losses).sum()
        for p in params:
            p.grad = None
        total.backward()
        grads = [p.grad for p in params if p.grad is not None]
        norms = torch.stack([gr.flatten(1).pow(2).sum(1) for gr in grads]).sum(0).sqrt()  # one per seed
        scale = torch.clamp(1.0 / (norms + 1e-6), max=1.0)
        with torch.no_grad():
            for gr in grads:
                gr.mul_(scale.view(S, *[1] * (gr.dim() - 1)))
            torch._fused_adamw_(
                params, grads, state[0], state[1], [], steps,
                lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.01, eps=1e-8,
                amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
            )  # fmt: skip

    return step


def ms_per_step(S: int, steps: int, repeats: int) -> float:
    step = make_step(S)
    for i in range(5):
        step(i)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        out.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    report = {}
    for S in (1, args.seeds):
        ms = ms_per_step(S, args.steps, args.repeats)
        report[f"S={S}"] = {"ms_per_step": round(ms, 2), "ms_per_seed_step": round(ms / S, 2)}
    report["per_seed_speedup"] = round(
        report["S=1"]["ms_per_seed_step"] / report[f"S={args.seeds}"]["ms_per_seed_step"], 2
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
