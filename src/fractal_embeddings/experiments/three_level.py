"""``three-level``: steerability across three levels.

CLINC150 5 -> 10 -> 150 (our grouping of the 10 domains into 5 super-domains) and GoEmotions
3 -> 6 -> 27 (sentiment -> Ekman -> emotion). With three levels the four prefixes map to levels
j1 = L0, j2 = .3 L0 + .7 L1, j3 = .7 L1 + .3 L2, j4 = L2. ``v5-paper``, ``fractal``, ``mrl``; 5 seeds
on CLINC150, 3 on GoEmotions; the report gives per-level curves and S_02 (L0 vs L2), S_01, S_12.
``--quick``: CLINC150 only, one seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec, methods_grid

NAME = "three-level"
SEEDS = {"clinc150-3level": (42, 123, 456, 789, 1024), "goemotions-3level": (42, 123, 456)}
METHODS = ("v5-paper", "fractal", "mrl")
CAP = {"train": 10_000, "test": 2_000}
DEFAULT_SEEDS = (42, 123, 456)
QUICK: dict[str, Any] = {"datasets": ("clinc150-3level",), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    names = datasets or (QUICK["datasets"] if quick else tuple(SEEDS))
    by = {d: seeds or (QUICK["seeds"] if quick else SEEDS.get(d, DEFAULT_SEEDS)) for d in names}
    return methods_grid(NAME, by, METHODS, QUICK["cap"] if quick else CAP)
