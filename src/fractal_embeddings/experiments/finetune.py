"""``finetune``: frozen encoder + head, or the encoder fine-tuned with the head: a matched comparison.

Per dataset and seed, on the same training rows (stratified, the same for every arm and seed) and the
same scored test rows, ``fractal`` as:

* ``frozen``: a head on the frozen encoder, ``fractal train``'s recipe (10 epochs, batch 128, lr 1e-3,
  best epoch by validation k-NN): the matched arm of every recipe that ends with a head re-fit;
* ``frozen, joint schedule``: a head on the frozen encoder trained as the joint stage trains it
  (``EPOCHS`` epochs, batch 64, lr 1e-3, cosine, last epoch): the matched arm of ``joint``;
* ``joint``: encoder and head trained together for ``EPOCHS`` epochs (encoder lr ``ENCODER_LR``,
  head lr 1e-3, batch 64; sentence-transformers' trainer and ``FractalLoss``), nothing else;
* ``two-stage``: ``joint``, then a fresh head fitted on the frozen fine-tuned encoder with ``fractal
  train``'s recipe;
* ``recipe``: ``fractal finetune``'s default recipe (:data:`RECIPE`), when it is not the two-stage one.

The published intent and question taxonomies (CLINC150, HWU64, TREC, 3 seeds) answer "does the recipe
keep the zoom"; the taxonomies where the frozen encoder is weak (``WEAK``: soc2010, naics, emoji,
wordnet-nouns, goemotions; 5 seeds, ``frozen`` and ``recipe`` only) answer "where does fine-tuning pay".
Caps (a 2-core CPU: a fine-tuning is ~0.5-1.5 minutes there): at most 2,000 training and 2,000 test rows.
``--quick``: TREC, 1 seed, 300 rows, 1 joint epoch. The full-data version of the matched comparison is
in ``bench/gpu_check.sh``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sweep import RunSpec

NAME = "finetune"
DATASETS = ("clinc150", "hwu64", "trec")
WEAK = ("soc2010", "naics", "emoji", "wordnet-nouns", "goemotions")
SEEDS = (42, 123, 456)
WEAK_SEEDS = (42, 123, 456, 789, 1024)
EPOCHS = 2
ENCODER_LR = 2e-5
# fractal finetune's default recipe (docs/finetune-recipe.md: "warm-up, layer decay"), spelled out so a
# stored run keeps its meaning if the defaults change
RECIPE: dict[str, Any] = {"encoder_lr": ENCODER_LR, "warmup": True, "refit": True, "layer_decay": 0.8}
CAP = {"train": 2_000, "test": 2_000}
QUICK: dict[str, Any] = {
    "datasets": ("trec",),
    "seeds": (42,),
    "cap": {"train": 300, "val": 150, "test": 300},
    "epochs": 1,
}


def arms(epochs: int) -> dict[str, dict | None]:
    """Each arm's fine-tuning options (``None``: a head on the frozen encoder, ``fractal train``)."""
    joint = {"epochs": epochs, "encoder_lr": ENCODER_LR, "warmup": False}
    out: dict[str, dict | None] = {
        "frozen": None,
        "frozen, joint schedule": None,
        "joint": {**joint, "refit": False},
        "two-stage": {**joint, "refit": True},
    }
    if RECIPE:
        out["recipe"] = {"epochs": epochs, **RECIPE}
    return out


def spec(dataset: str, seed: int, arm: str, options: dict | None, cap: dict, epochs: int) -> RunSpec:
    train = (
        {"epochs": epochs, "batch_size": 64, "lr": 1e-3, "select": "last"} if arm == "frozen, joint schedule" else {}
    )
    return RunSpec(
        NAME,
        dataset,
        "fractal",
        seed,
        variant=f"fractal {arm}",
        cap=cap,
        train_options=train,
        finetune=options or {},
        tags={"arm": arm, "encoder_trains": options is not None},
    )


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    cap = QUICK["cap"] if quick else CAP
    epochs = QUICK["epochs"] if quick else EPOCHS
    grid = arms(epochs)
    picked = datasets or (QUICK["datasets"] if quick else (*DATASETS, *WEAK))
    out = []
    for d in picked:
        weak = d in WEAK
        for s in seeds or (QUICK["seeds"] if quick else (WEAK_SEEDS if weak else SEEDS)):
            for arm, options in grid.items():
                if weak and arm not in ("frozen", "recipe" if RECIPE else "two-stage"):
                    continue
                out.append(spec(d, s, arm, options, cap, epochs))
    return out
