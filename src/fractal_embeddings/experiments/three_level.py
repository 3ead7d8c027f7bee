"""``three-level``: steerability across three and four levels.

CLINC150 5 -> 10 -> 150 (our grouping of the 10 domains into 5 super-domains), GoEmotions
3 -> 6 -> 27 (sentiment -> Ekman -> emotion) and UK SOC 2010 9 -> 25 -> 90 -> 369 (major, sub-major,
minor, unit group). With three levels the four prefixes map to levels j1 = L0, j2 = .3 L0 + .7 L1,
j3 = .7 L1 + .3 L2, j4 = L2; with four, prefix j to level j-1. ``v5-paper``, ``fractal``, ``mrl``;
5 seeds on CLINC150, 3 on the others; the report gives per-level curves, S (coarsest vs finest) and
S between adjacent levels.
``--quick``: CLINC150 only, one seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec, methods_grid

NAME = "three-level"
SEEDS = {
    "clinc150-3level": (42, 123, 456, 789, 1024),
    "goemotions-3level": (42, 123, 456),
    "soc2010-4level": (42, 123, 456),
}
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
