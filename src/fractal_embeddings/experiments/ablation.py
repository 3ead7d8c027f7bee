"""``ablation``: is the *alignment* of labels to prefixes what makes a prefix steerable?

The seed's causal ablation, same head and trainer, only the label schedule changes:
``v5-paper`` (aligned: coarse on short prefixes), ``inverted`` (fine on short prefixes, coarse on
the full vector: S should change sign), ``no-prefix`` (MRL + the coarse loss on the full vector
only), ``uhmt`` (both levels equally on every prefix), and ``mrl`` as the reference. The same four
schedules are also run for the default method (``fractal`` with ``schedule`` = aligned /
inverted / uniform / finest), to show the geometry-shaping losses keep the causal picture.

Config: CLINC150 x 5 seeds, TREC and HWU64 x 3 seeds. ``--quick``: CLINC150 and TREC, 1 seed, subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec

NAME = "ablation"
SEEDS = {"clinc150": (42, 123, 456, 789, 1024), "trec": (42, 123, 456), "hwu64": (42, 123, 456)}
PAPER = ("v5-paper", "inverted", "no-prefix", "uhmt", "mrl")
FRACTAL = {"fractal": "aligned", "fractal inverted": "inverted", "fractal uniform": "uniform", "fractal-mrl": "finest"}
CAP = {"train": 10_000, "test": 2_000}  # the seed's per-dataset caps, as in main
QUICK: dict[str, Any] = {"datasets": ("clinc150", "trec"), "seeds": (42,), "cap": QUICK_CAP}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else tuple(SEEDS))
    cap = QUICK["cap"] if quick else CAP
    out = []
    for d in ds:
        for s in seeds or (QUICK["seeds"] if quick else SEEDS.get(d, SEEDS["trec"])):
            out += [RunSpec(NAME, d, m, s, cap=cap, tags={"family": "v5-paper"}) for m in PAPER]
            out += [
                RunSpec(
                    NAME,
                    d,
                    "fractal",
                    s,
                    variant=v,
                    objective_options={"schedule": sch},
                    cap=cap,
                    tags={"family": "fractal"},
                )
                for v, sch in FRACTAL.items()
            ]
    return out
