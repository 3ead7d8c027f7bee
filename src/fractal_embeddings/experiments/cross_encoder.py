"""``cross-encoder``: does the main comparison hold for other frozen encoders?

CLINC150 and TREC x {``v5-paper``, ``fractal``, ``mrl``} x 3 seeds for every encoder that works
offline here (all-MiniLM-L6-v2 fp32 and int8 ONNX, paraphrase-MiniLM-L3, and a second family:
all-mpnet-base-v2, 768-d, from the ``mpnet`` extra; its cost per text is measured by
``bench/encoder_cost.py``). Online, set
``FRACTAL_ENCODERS`` (comma-separated Hugging Face ids, e.g. ``BAAI/bge-small-en-v1.5``) to run
other encoders instead. ``--quick``: TREC, the two MiniLM-L6 builds, one seed, subsets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .sweep import QUICK_CAP, RunSpec

NAME = "cross-encoder"
ENCODERS = ("minilm-l6", "minilm-l6-int8", "paraphrase-minilm-l3", "mpnet-base")
DATASETS = ("clinc150", "trec")
METHODS = ("v5-paper", "fractal", "mrl")
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
QUICK: dict[str, Any] = {
    "encoders": ("minilm-l6", "minilm-l6-int8"),
    "datasets": ("trec",),
    "seeds": (42,),
    "cap": QUICK_CAP,
}


def encoders(quick: bool = False) -> tuple[str, ...]:
    env = os.environ.get("FRACTAL_ENCODERS")
    if env:
        return tuple(e.strip() for e in env.split(",") if e.strip())
    return QUICK["encoders"] if quick else ENCODERS


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    cap = QUICK["cap"] if quick else CAP
    return [
        RunSpec(NAME, d, m, s, variant=f"{m} @ {e}", encoder=e, cap=cap, tags={"base_method": m, "encoder": e})
        for s in seeds or (QUICK["seeds"] if quick else SEEDS)
        for e in encoders(quick)
        for d in datasets or (QUICK["datasets"] if quick else DATASETS)
        for m in METHODS
    ]
