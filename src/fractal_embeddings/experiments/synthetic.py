"""``synthetic``: how steerability depends on the coarse level's entropy, with the text fixed.

CLINC150's 150 intents are grouped at random into K0 in {2, 3, 5, 10, 15, 25, 50, 75} coarse groups
(sizes differ by at most one; a new partition per seed), so H(L1) = log2 150 stays fixed while H(L0)
~ log2 K0 varies. Aligned (``v5-paper``, ``fractal``) vs ``mrl``; 3 seeds; the seed's caps (10,000
train / 2,000 test rows). The report fits S = a H(L0)^2 + b H(L0) + c and gives R^2 and the peak.
``--quick``: K0 in {2, 10, 50}, one seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec

NAME = "synthetic"
K0 = (2, 3, 5, 10, 15, 25, 50, 75)
METHODS = ("v5-paper", "fractal", "mrl")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK: dict[str, Any] = {"k0": (2, 10, 50), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    k0s = QUICK["k0"] if quick else K0
    cap = QUICK["cap"] if quick else CAP
    out = []
    for s in seeds or (QUICK["seeds"] if quick else SEEDS):
        for k in k0s:
            out += [
                RunSpec(
                    NAME,
                    "clinc150",
                    m,
                    s,
                    variant=f"{m} K0={k}",
                    random_coarse=k,
                    cap=cap,
                    tags={"base_method": m, "K0": k},
                )
                for m in METHODS
            ]
    return out
