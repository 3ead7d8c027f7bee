"""``finetune``: frozen encoder + head, or the whole encoder fine-tuned with the head?

Four arms per dataset and seed on the same rows: ``fractal`` and its matched control
``fractal-mrl``, each as a head on the frozen encoder (``fractal train``) and fine-tuned end to end
with sentence-transformers' trainer and ``FractalLoss`` (``fractal finetune``: encoder lr
``ENCODER_LR``, head lr 1e-3, batch 64, ``EPOCHS`` epochs). The question is when fine-tuning pays:
does it raise fine accuracy, and does it keep the coarse prefix coarse (with a trained encoder the
stop-gradient no longer keeps fine information out of the first block)?

Config (sized for a 2-core CPU: a fine-tuned run is ~1-2 minutes there): CLINC150, TREC and HWU64
x 3 seeds, training rows capped at ``CAP`` (stratified, the same rows for every arm), 2,000 scored
test rows. ``--quick``: CLINC150, 1 seed, a 300-row subset, 1 epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import RunSpec

NAME = "finetune"
DATASETS = ("clinc150", "trec", "hwu64")
SEEDS = (42, 123, 456)
METHODS = ("fractal", "fractal-mrl")
EPOCHS = 2
ENCODER_LR = 2e-5
CAP = {"train": 2_000, "test": 2_000}
QUICK: dict[str, Any] = {
    "datasets": ("clinc150",),
    "seeds": (42,),
    "cap": {"train": 300, "val": 150, "test": 300},
    "epochs": 1,
}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    epochs = QUICK["epochs"] if quick else EPOCHS
    out = []
    for d in ds:
        for s in sd:
            for m in METHODS:
                out.append(RunSpec(NAME, d, m, s, variant=f"{m} frozen", cap=cap, tags={"arm": "frozen"}))
                out.append(
                    RunSpec(
                        NAME,
                        d,
                        m,
                        s,
                        variant=f"{m} fine-tuned",
                        cap=cap,
                        tags={"arm": "fine-tuned"},
                        finetune={"epochs": epochs, "encoder_lr": ENCODER_LR},
                    )
                )
    return out
