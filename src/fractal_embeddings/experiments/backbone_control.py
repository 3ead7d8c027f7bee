"""``backbone-control``: alignment or capacity? The seed's 2 x 2.

(aligned ``v5-paper`` vs ``mrl``) x (head only vs head + the encoder's last ``LAYERS`` transformer
layers fine-tuned, at ``encoder_lr``). If steerability came from trainable capacity, MRL with a
fine-tuned encoder would become steerable; if it comes from aligning labels to prefixes, it stays
near 0 and the head-only aligned model beats it.

Config: CLINC150, TREC and HWU64 x 3 seeds, the last 2 of MiniLM-L6's 6 layers, the seed's recipe
otherwise (batch 16, 5 epochs, head lr 1e-4, encoder lr 2e-5). Training rows are capped at 5,000
(test 2,000) for all four arms: a fine-tuned run costs ~0.1 s per step on this 2-core CPU.
``--quick``: CLINC150, 1 seed, a 600-row subset, 2 epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import RunSpec

NAME = "backbone-control"
DATASETS = ("clinc150", "trec", "hwu64")
SEEDS = (42, 123, 456)
METHODS = ("v5-paper", "mrl")
LAYERS = 2
ENCODER_LR = 2e-5
CAP = {"train": 5_000, "test": 2_000}
QUICK: dict[str, Any] = {
    "datasets": ("clinc150",),
    "seeds": (42,),
    "cap": {"train": 600, "val": 300, "test": 400},
    "epochs": 2,  # both arms: a smoke run of the encoder-layer training
}


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    epochs = {"epochs": QUICK["epochs"]} if quick else {}
    out = []
    for d in ds:
        for s in sd:
            for m in METHODS:
                out.append(
                    RunSpec(
                        NAME,
                        d,
                        m,
                        s,
                        variant=f"{m} head-only",
                        cap=cap,
                        train_options=epochs,
                        tags={"arm": "head-only"},
                    )
                )
                out.append(
                    RunSpec(
                        NAME,
                        d,
                        m,
                        s,
                        variant=f"{m} +{LAYERS} layers",
                        cap=cap,
                        finetune_layers=LAYERS,
                        train_options={"encoder_lr": ENCODER_LR, **epochs},
                        tags={"arm": "fine-tuned"},
                    )
                )
    return out
