"""``dual-encoder``: one aligned model vs two dedicated heads.

A dual-encoder deployment trains one 256-d head per level (``single-level`` with level 0 =
coarse-only, level -1 = fine-only) and stores both vectors. One aligned model answers coarse
queries with its 64-d prefix and fine ones with its full vector. Compared: coarse k-NN accuracy of
the aligned 64-d prefix vs the coarse-only head at 256 dims, and fine accuracy of the aligned full
vector vs the fine-only head at 256 dims.

Each aligned model has recipe-matched dedicated heads: ``v5-paper`` (linear head, the seed's trainer)
next to ``coarse-only`` / ``fine-only`` with the same head and trainer, and ``fractal`` (MLP head
with block norm, lr 1e-3, batch 128, 10 epochs) next to ``coarse-only mlp`` / ``fine-only mlp``
with that head and trainer. A dedicated head picks its best epoch on its own level.

Config: CLINC150, TREC and HWU64 x 3 seeds, main's caps. ``--quick``: CLINC150, 1 seed, a subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..objectives.fractal import Fractal
from .sweep import QUICK_CAP, RunSpec

NAME = "dual-encoder"
DATASETS = ("clinc150", "trec", "hwu64")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK: dict[str, Any] = {"datasets": ("clinc150",), "seeds": (42,), "cap": QUICK_CAP}
FRACTAL_HEAD = {k: v for k, v in Fractal().head_options().items() if k != "kind"} | {"head": "mlp"}
FRACTAL_TRAINER = dict(Fractal.trainer_defaults)
ARMS = {
    "coarse-only": ("single-level", {"level": 0}, {}),
    "fine-only": ("single-level", {"level": -1}, {}),
    "v5-paper": ("v5-paper", {}, {}),
    "coarse-only mlp": ("single-level", {"level": 0, **FRACTAL_HEAD}, FRACTAL_TRAINER),
    "fine-only mlp": ("single-level", {"level": -1, **FRACTAL_HEAD}, FRACTAL_TRAINER),
    "fractal": ("fractal", {}, {}),
}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    return [
        RunSpec(NAME, d, m, s, variant=v, objective_options=o, train_options=t, cap=cap)
        for d in ds
        for s in sd
        for v, (m, o, t) in ARMS.items()
    ]
