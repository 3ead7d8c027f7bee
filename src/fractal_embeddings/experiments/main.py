"""``main``: the seed's main comparison on ten two-level taxonomies.

The five published ones (CLINC150, TREC, HWU64, GoEmotions, 20 Newsgroups) and the five derived ones
(WordNet nouns, UK SOC 2010 at major -> sub-major group, GO molecular function, NAICS, emoji).
Config: datasets x {``v5-paper``, the default method ``fractal``, ``mrl``} x 5 seeds, with the seed's
per-dataset caps (at most 10,000 training and 2,000 test rows, stratified by the finest level;
validation rows are capped by the trainer). A second encoder family, all-mpnet-base-v2 (``mpnet-base``,
768-d, offline from the ``mpnet`` extra), runs the same grid on ``SECOND_DATASETS`` (variants
``<method> @ mpnet-base``; the report keeps them apart from the MiniLM grid). ``--quick``: CLINC150 and
TREC, 2 seeds, smaller caps, MiniLM only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import RunSpec

NAME = "main"
PUBLISHED = ("clinc150", "trec", "hwu64", "goemotions", "newsgroups20")
DERIVED_TAXONOMIES = ("wordnet-nouns", "soc2010", "go-mf", "naics", "emoji")
DATASETS = PUBLISHED + DERIVED_TAXONOMIES
METHODS = ("v5-paper", "fractal", "mrl")
SEEDS = (42, 123, 456, 789, 1024)
CAP = {"train": 10_000, "test": 2_000}
SECOND_ENCODER = "mpnet-base"
SECOND_DATASETS = ("trec", "naics", "emoji", "hwu64")
QUICK: dict[str, Any] = {
    "datasets": ("clinc150", "trec"),
    "seeds": (42, 123),
    "cap": {"train": 1_500, "val": 400, "test": 800},
}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    out = [RunSpec(NAME, d, m, s, cap=cap) for s in sd for d in ds for m in METHODS]
    if not quick:
        second = [d for d in SECOND_DATASETS if d in ds]
        out += [
            RunSpec(
                NAME,
                d,
                m,
                s,
                variant=f"{m} @ {SECOND_ENCODER}",
                encoder=SECOND_ENCODER,
                cap=cap,
                tags={"base_method": m},
            )
            for s in sd
            for d in second
            for m in METHODS
        ]
    return out
