"""``noise``: how much steerability survives noisy coarse labels.

A fraction p in {0, 10, 20, 30, 50}% of the CLINC150 training rows gets a wrong coarse label (drawn
uniformly from the other coarse classes; validation and test stay clean). Aligned methods
(``v5-paper``, ``fractal``), 3 seeds; the report gives S and its retention S(p) / S(0).
``--quick``: p in {0, 30}, one seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec

NAME = "noise"
LEVELS = (0.0, 0.1, 0.2, 0.3, 0.5)
METHODS = ("v5-paper", "fractal")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK: dict[str, Any] = {"levels": (0.0, 0.3), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    levels = QUICK["levels"] if quick else LEVELS
    cap = QUICK["cap"] if quick else CAP
    return [
        RunSpec(
            NAME,
            d,
            m,
            s,
            variant=f"{m} noise={p:g}",
            coarse_noise=p or None,
            cap=cap,
            tags={"base_method": m, "noise": p},
        )
        for s in seeds or (QUICK["seeds"] if quick else SEEDS)
        for d in datasets or ("clinc150",)
        for p in levels
        for m in METHODS
    ]
