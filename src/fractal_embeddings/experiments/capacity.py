"""``capacity``: does the block size (prefix capacity) change steerability?

Four blocks of b dims, b in {16, 32, 48, 64, 96, 128} (so 64..512-d embeddings), on CLINC150, TREC,
HWU64 and GoEmotions (the seed's four) and the five derived taxonomies of ``main``; ``v5-paper`` and
``fractal``; 3 seeds; the seed's caps.
``--quick``: b in {16, 64}, CLINC150 and TREC, one seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .main import DERIVED_TAXONOMIES
from .sweep import QUICK_CAP, RunSpec

NAME = "capacity"
BLOCKS = (16, 32, 48, 64, 96, 128)
DATASETS = ("clinc150", "trec", "hwu64", "goemotions", *DERIVED_TAXONOMIES)
METHODS = ("v5-paper", "fractal")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK: dict[str, Any] = {"blocks": (16, 64), "datasets": ("clinc150", "trec"), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    blocks = QUICK["blocks"] if quick else BLOCKS
    cap = QUICK["cap"] if quick else CAP
    return [
        RunSpec(NAME, d, m, s, variant=f"{m} b={b}", block_dim=b, cap=cap, tags={"base_method": m, "block": b})
        for s in seeds or (QUICK["seeds"] if quick else SEEDS)
        for d in datasets or (QUICK["datasets"] if quick else DATASETS)
        for b in blocks
        for m in METHODS
    ]
