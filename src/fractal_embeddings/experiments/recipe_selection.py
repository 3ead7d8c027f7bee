"""``finetune-recipe``: the candidates for ``fractal finetune``'s default recipe, scored on validation rows.

Each candidate fine-tunes MiniLM-L6 with ``fractal`` on CLINC150, HWU64 and TREC (seed 42, the
``finetune`` experiment's caps: at most 2,000 training rows), and is scored on the validation split
(at most 2,000 rows), never on the test rows, which the ``finetune`` experiment holds back. The rule
that picks the default from these records was written down before they were made
(``docs/finetune-recipe.md``); the report applies it to the records.

Candidates (:data:`CANDIDATES`; every one ends with a head re-fit on the frozen fine-tuned encoder):
``two-stage`` (joint 2 epochs, re-fit), ``warm-up`` (head fitted on the frozen encoder first, then joint
2 epochs, re-fit), ``warm-up, layer decay`` (as ``warm-up``, each encoder layer at 0.8x the lr of the
one above it). The ``frozen`` arm is ``fractal train`` on the same rows, scored on the same rows.
``--quick``: TREC, 300 rows, 1 joint epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .finetune import CAP, DATASETS, ENCODER_LR, EPOCHS
from .sweep import RunSpec

NAME = "finetune-recipe"
SEEDS = (42,)
CANDIDATES: dict[str, dict] = {  # cheapest first (the rule breaks ties toward the cheaper)
    "two-stage": {"warmup": False, "refit": True},
    "warm-up": {"warmup": True, "refit": True},
    "warm-up, layer decay": {"warmup": True, "refit": True, "layer_decay": 0.8},
}
QUICK: dict[str, Any] = {"datasets": ("trec",), "cap": {"train": 300, "val": 150, "test": 300}, "epochs": 1}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    cap = QUICK["cap"] if quick else CAP
    epochs = QUICK["epochs"] if quick else EPOCHS
    out = []
    for d in datasets or (QUICK["datasets"] if quick else DATASETS):
        for s in seeds or SEEDS:
            out.append(
                RunSpec(NAME, d, "fractal", s, variant="frozen", cap=cap, eval_split="val", tags={"arm": "frozen"})
            )
            for name, options in CANDIDATES.items():
                ft = {"epochs": epochs, "encoder_lr": ENCODER_LR, **options}
                out.append(
                    RunSpec(
                        NAME, d, "fractal", s, variant=name, cap=cap, eval_split="val", finetune=ft, tags={"arm": name}
                    )
                )
    return out
