"""``dual-encoder``: one aligned model vs two dedicated heads.

A dual-encoder deployment trains one 256-d head per level (``single-level`` with level 0 =
coarse-only, level -1 = fine-only) and stores both vectors. One aligned model answers coarse
queries with its 64-d prefix and fine ones with its full vector. Compared: coarse k-NN accuracy of
the aligned 64-d prefix vs the coarse-only head at 256 dims, and fine accuracy of the aligned full
vector vs the fine-only head at 256 dims.

Config: CLINC150, TREC and HWU64 x 3 seeds, main's caps; aligned = ``v5-paper`` (the seed's) and
``fractal``. ``--quick``: CLINC150, 1 seed, a subset.
"""

from __future__ import annotations

from .sweep import QUICK_CAP, RunSpec

NAME = "dual-encoder"
DATASETS = ("clinc150", "trec", "hwu64")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK = {"datasets": ("clinc150",), "seeds": (42,), "cap": QUICK_CAP}
ARMS = {"coarse-only": ("single-level", {"level": 0}), "fine-only": ("single-level", {"level": -1}),
        "v5-paper": ("v5-paper", {}), "fractal": ("fractal", {})}


def specs(quick: bool = False, datasets=None, seeds=None) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    return [RunSpec(NAME, d, m, s, variant=v, objective_options=o, cap=cap)
            for d in ds for s in sd for v, (m, o) in ARMS.items()]
