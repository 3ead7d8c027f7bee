"""``external``: the seed's external baselines under identical conditions (same cache, caps,
trainer and evaluation): ``heal`` (HEAL-style), ``csr`` (CSR-style TopK sparse autoencoder),
``smec`` (SMEC-style sequential Matryoshka), next to ``v5-paper``, ``fractal`` and ``mrl``. Records
carry each head's parameter count and measured training seconds; the report plots steerability
against training cost. CLINC150 x 5 seeds, TREC x 3 seeds. ``--quick``: TREC, one seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec, methods_grid

NAME = "external"
METHODS = ("fractal", "v5-paper", "heal", "csr", "smec", "mrl")
SEEDS = {"clinc150": (42, 123, 456, 789, 1024), "trec": (42, 123, 456)}
CAP = {"train": 10_000, "test": 2_000}
DEFAULT_SEEDS = (42, 123, 456)
QUICK: dict[str, Any] = {"datasets": ("trec",), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    names = datasets or (QUICK["datasets"] if quick else tuple(SEEDS))
    by = {d: seeds or (QUICK["seeds"] if quick else SEEDS.get(d, DEFAULT_SEEDS)) for d in names}
    return methods_grid(NAME, by, METHODS, QUICK["cap"] if quick else CAP)
