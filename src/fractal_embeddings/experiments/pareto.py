"""``pareto``: adaptive routing on a mixed workload, from the ``retrieval`` runs (same store).

A workload has a fraction alpha of coarse queries (answered at the coarsest level) and 1 - alpha
fine ones. Adaptive routing sends coarse queries to the aligned model's 64-d prefix and fine ones to
its full vector: accuracy ``alpha * A[j1, L0] + (1 - alpha) * A[jB, Lf]`` at mean dims
``alpha * 64 + (1 - alpha) * 256``. The baseline is MRL at full length for both kinds:
``alpha * A_mrl[jB, L0] + (1 - alpha) * A_mrl[jB, Lf]`` at 256 dims. A is the prefix k-NN accuracy of
the run records; the crossover is the smallest alpha at which routing is at least as accurate.
Nothing is trained here beyond the ``retrieval`` grid: the report computes the curves from those
records (:func:`~fractal_embeddings.analysis.routing_curve`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..analysis import ALPHAS, routing_curve  # noqa: F401 - re-exported: the curve lives in analysis
from . import retrieval
from .sweep import RunSpec

NAME = "pareto"
STORE = retrieval.NAME  # the runs live in the retrieval experiment's store


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    return retrieval.specs(quick=quick, datasets=datasets, seeds=seeds)


def after(root: str | Path, quick: bool = False, log: Callable[[str], None] = print) -> None:
    log("pareto: routing curves are computed from the retrieval runs by `fractal report`")
