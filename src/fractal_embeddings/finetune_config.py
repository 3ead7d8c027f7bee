"""The settings of ``fractal finetune``'s recipe (:mod:`~fractal_embeddings.finetune_recipe` runs it),
importable without torch: the CLI reads its defaults from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import FractalError
from .validation import check_int, check_real, is_real


@dataclass(frozen=True)
class FinetuneRecipe:
    """How ``fractal finetune`` trains: see the module docstring. Checked when built (one line each)."""

    epochs: int = 2  # joint epochs
    lr: float = 1e-3  # the head's learning rate in the joint stage
    encoder_lr: float = 2e-5  # the top encoder layer's (and the pooling's) learning rate
    batch_size: int = 64
    layer_decay: float = 0.8  # each layer below the top trains at layer_decay x the one above it
    warmup: bool = True  # fit the head on the frozen encoder before the joint stage
    refit: bool = True  # re-fit a fresh head on the frozen fine-tuned encoder after it

    def __post_init__(self) -> None:
        # the library's one check of each kind (validation.py), the same messages as TrainConfig's
        for name in ("epochs", "batch_size"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, lo=1))
        for name in ("lr", "encoder_lr"):
            object.__setattr__(self, name, check_real(getattr(self, name), name, lo=0, lo_open=True))
        if not is_real(self.layer_decay) or not 0 < self.layer_decay <= 1:
            raise FractalError(
                f"layer_decay must be in (0, 1] (1: every encoder layer at encoder_lr), got {self.layer_decay!r}"
            )
        for name in ("warmup", "refit"):
            if not isinstance(getattr(self, name), bool):
                raise FractalError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def as_dict(self) -> dict:
        return asdict(self)


# fractal finetune's defaults: the candidate "warm-up, layer decay", chosen on validation rows by the rule
# of docs/finetune-recipe.md
DEFAULT_RECIPE = FinetuneRecipe()
