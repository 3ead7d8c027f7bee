"""``retrieval``: the zoom in a search setting.

Each run also scores retrieval per prefix and level (:mod:`fractal_embeddings.retrieval`: the scored
test rows as queries, the training split as the corpus; Recall@1, Recall@10, mAP@10), for the
trained head and for the untrained encoder truncated to the same dims.

Config: every shipped two-level dataset x {``fractal``, ``v5-paper``, ``mrl``} x 3 seeds, the main
experiment's caps (corpus <= 10,000 training rows, <= 2,000 queries). ``--quick``: CLINC150 and
TREC, 1 seed, subsets. The ``pareto`` experiment reads the same runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec

NAME = "retrieval"
DATASETS = ("clinc150", "trec", "hwu64", "goemotions", "newsgroups20")
METHODS = ("fractal", "v5-paper", "mrl")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK: dict[str, Any] = {"datasets": ("clinc150", "trec"), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    return [RunSpec(NAME, d, m, s, cap=cap, retrieval=True) for d in ds for s in sd for m in METHODS]
