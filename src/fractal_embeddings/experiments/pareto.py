"""``pareto``: adaptive routing on a mixed workload, from the ``retrieval`` runs (same store).

A workload has a fraction alpha of coarse queries (answered at the coarsest level) and 1 - alpha
fine ones. Adaptive routing sends coarse queries to the aligned model's 64-d prefix and fine ones to
its full vector: accuracy ``alpha * A[j1, L0] + (1 - alpha) * A[jB, Lf]`` at mean dims
``alpha * 64 + (1 - alpha) * 256``. The baseline is MRL at full length for both kinds:
``alpha * A_mrl[jB, L0] + (1 - alpha) * A_mrl[jB, Lf]`` at 256 dims. A is the prefix k-NN accuracy of
the run records; the crossover is the smallest alpha at which routing is at least as accurate.
Nothing is trained here beyond the ``retrieval`` grid: the report computes the curves from those
records (:func:`routing_curve`).
"""

from __future__ import annotations

import numpy as np

from . import retrieval

NAME = "pareto"
STORE = retrieval.NAME  # the runs live in the retrieval experiment's store
ALPHAS = tuple(np.round(np.linspace(0, 1, 21), 2))


def specs(quick: bool = False, datasets=None, seeds=None):
    return retrieval.specs(quick=quick, datasets=datasets, seeds=seeds)


def routing_curve(coarse_short: float, fine_full: float, mrl_coarse: float, mrl_fine: float, block_dim: int,
                  n_blocks: int, alphas=ALPHAS) -> dict:
    """Accuracy and mean dims of routing vs MRL at full length over ``alphas``; ``wins`` = the alpha
    interval where routing is at least as accurate (``None``: nowhere) and ``crossover`` = the smallest
    alpha from which routing wins up to alpha = 1 (0 when it never loses; ``None`` when it does not
    win at alpha = 1)."""
    a = np.asarray(alphas, dtype=float)
    full = n_blocks * block_dim
    route = a * coarse_short + (1 - a) * fine_full
    mrl = a * mrl_coarse + (1 - a) * mrl_fine
    gap0, gap1 = fine_full - mrl_fine, coarse_short - mrl_coarse  # routing - mrl at alpha = 0 and 1
    # routing - mrl is linear in alpha: routing is at least as accurate on one interval of [0, 1] (or none)
    if gap0 >= 0 and gap1 >= 0:
        wins = (0.0, 1.0)
    elif gap0 < 0 and gap1 < 0:
        wins = None
    else:
        root = float(gap0 / (gap0 - gap1))
        wins = (root, 1.0) if gap1 > gap0 else (0.0, root)
    cross = wins[0] if wins and wins[1] == 1.0 else None
    return {"alpha": a.tolist(), "route_acc": route.tolist(), "route_dims": (a * block_dim + (1 - a) * full).tolist(),
            "mrl_acc": mrl.tolist(), "mrl_dims": full, "wins": wins, "crossover": cross}


def after(root, quick: bool = False, log=print) -> None:
    log("pareto: routing curves are computed from the retrieval runs by `fractal report`")
