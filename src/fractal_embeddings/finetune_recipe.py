"""The fine-tuning recipe that keeps the zoom: head warm-up, joint training, head re-fit.

Trained end to end, the encoder learns the fine classes, and the coarse block, which reads the encoder,
keeps more fine information than on the frozen encoder (its stop-gradient guards the head's weights,
not the encoder below them); a head trained for a few joint epochs is also simply under-trained. The
recipe of ``fractal finetune`` therefore has three stages:

1. **warm-up** (optional): the head is first fitted on the frozen encoder as ``fractal train`` fits
   it (:func:`~fractal_embeddings.training.fit` with the method's own recipe: for ``fractal`` 10
   epochs, batch 128, lr 1e-3, the best epoch by validation k-NN), so the joint stage starts from a
   head that already steers;
2. **joint**: encoder and head train together with sentence-transformers' trainer and
   :class:`~fractal_embeddings.st.FractalLoss` (``epochs``, the encoder at ``encoder_lr``, optionally
   decayed layer by layer, the head at ``lr``);
3. **re-fit**: the encoder is frozen again and a fresh head (same seed, same architecture) is fitted
   on it with the method's ``fractal train`` recipe; it replaces the joint head.

The re-fitted head is trained as a head on the frozen base encoder is (same loop, settings, seed and
initial weights), so the matched frozen run of a recipe is a plain ``fractal train`` on the same rows.
Inside ``fractal finetune`` the head stages share the objective instance of ``FractalLoss``, which
computes ``fractal``'s loss term by term instead of fused (the same loss; float rounding differs), as
the recorded runs were made. Which stages the default uses,
and why, is in ``docs/finetune-recipe.md`` (measured on CLINC150, HWU64 and TREC by a rule fixed in
advance): warm-up on, 2 joint epochs with layer decay 0.8, re-fit on.

With sentence-transformers' own trainer, :class:`RecipeCallback` adds the warm-up and the re-fit to a
``SentenceTransformerTrainer`` run with :class:`~fractal_embeddings.st.FractalLoss`::

    loss = FractalLoss(model, n_classes=(10, 150))
    recipe = RecipeCallback(texts, labels, val_texts, val_labels)    # warm-up and re-fit: the defaults
    trainer = SentenceTransformerTrainer(model=model, train_dataset=ds, loss=loss, callbacks=[recipe],
                                         args=SentenceTransformerTrainingArguments(
                                             ..., num_train_epochs=2, learning_rate=2e-5,
                                             learning_rate_mapping=layer_lrs(model, 2e-5, 1e-3, 0.8)))
    trainer.train()                                                   # the re-fitted head is in model

or call :func:`refit_head` yourself on any model holding a ``FractalHead``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import shutil
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import TrainerCallback

from .data.splits import stratified_sample
from .errors import FractalError
from .finetune_config import DEFAULT_RECIPE, FinetuneRecipe
from .heads import head_from_config
from .objectives import get_objective
from .st import find_head
from .training import FitResult, TrainConfig, fit
from .validation import check_labels, check_seed, check_texts

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .fractal_head import FractalHead
    from .objectives import Objective

WEIGHT_DECAY = 0.01  # AdamW's, in the joint stage (as in `fractal train`)
LAYER = re.compile(r"\.layers?\.(\d+)\.")  # a transformer block's parameters (BERT, MPNet, RoBERTa, ...)


def model_head(model: SentenceTransformer) -> FractalHead:
    """The model's (last) ``FractalHead``; a one-line error when it has none."""
    head = find_head(model)
    if head is None:
        raise FractalError("the model has no FractalHead; build it with FractalLoss(model, n_classes=...) first")
    return head


def head_index(model: SentenceTransformer) -> int:
    """The position of the model's (last) ``FractalHead`` among its modules."""
    head = model_head(model)
    return next(i for i, m in enumerate(model) if m is head)


def layer_lrs(model: SentenceTransformer, encoder_lr: float, lr: float, layer_decay: float = 1.0) -> dict[str, float]:
    """``learning_rate_mapping`` for ``SentenceTransformerTrainingArguments`` (with ``learning_rate=
    encoder_lr``): the head at ``lr``; with ``layer_decay`` < 1, transformer layer ``i`` of ``n`` at
    ``encoder_lr * layer_decay ** (n - 1 - i)`` and the token embeddings at ``layer_decay ** n``."""
    idx = head_index(model)
    out = {rf"^model\.{idx}\.": float(lr)}
    if layer_decay == 1.0:
        return out
    layers = sorted({int(m.group(1)) for name, _ in model[0].named_parameters() if (m := LAYER.search(f".{name}"))})
    if not layers:
        raise FractalError("layer_decay needs an encoder with numbered layers (…layer.N.…); use layer_decay=1")
    n = max(layers) + 1
    for i in layers:
        out[rf"^model\.0\..*\.layers?\.{i}\."] = float(encoder_lr * layer_decay ** (n - 1 - i))
    out[r"^model\.0\..*embeddings\."] = float(encoder_lr * layer_decay**n)
    return out


@torch.no_grad()
def head_inputs(model: SentenceTransformer, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """What the model's ``FractalHead`` reads for ``texts``: the output of the modules below it (the
    frozen encoder's vectors), float32."""
    from sentence_transformers import SentenceTransformer

    below = SentenceTransformer(modules=list(model)[: head_index(model)], device=str(model.device))
    below.max_seq_length = model.max_seq_length
    below.eval()
    out = below.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def refit_head(
    model: SentenceTransformer,
    texts: Sequence[str],
    labels: Any,
    val_texts: Sequence[str] | None = None,
    val_labels: Any = None,
    *,
    method: str | Objective = "fractal",
    seed: int = 0,
    train_options: dict | None = None,
    device: str = "cpu",
) -> FitResult:
    """Fit a fresh head on the model's frozen encoder and put it in the model's ``FractalHead``.

    The head is trained as ``fractal train`` trains it (``method``'s recipe; ``train_options``
    override :class:`~fractal_embeddings.training.TrainConfig` fields), seeded with ``seed``, on the
    vectors the model's encoder gives ``texts`` (``labels``: ``(n, n_levels)`` class indices, coarse ->
    fine). With ``val_texts``/``val_labels`` the best epoch is chosen by validation k-NN, as in
    ``fractal train``; without them the last epoch is kept. The encoder does not change."""
    seed = check_seed(seed)
    module = model_head(model)
    objective = get_objective(method) if isinstance(method, str) else method
    texts = check_texts(texts, allow_empty=False)
    Y = check_labels(labels, module.head.n_classes, n_rows=len(texts))
    options = dict(train_options or {})
    if val_texts is None:
        options.setdefault("select", "last")
        val_texts, Y_val = texts, Y
    else:
        val_texts = check_texts(val_texts, "val_texts", allow_empty=False)
        Y_val = check_labels(val_labels, module.head.n_classes, name="val_labels", n_rows=len(val_texts))
    cfg = TrainConfig.resolve(objective.trainer_defaults, options)
    # the validation rows fit() would sample, chosen before encoding (only those are encoded)
    val_rows = stratified_sample(Y_val[:, -1], cfg.val_rows, seed=0)
    X = head_inputs(model, texts)
    X_val, Y_val = head_inputs(model, [val_texts[i] for i in val_rows]), Y_val[val_rows]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = head_from_config(module.head.config())
    result = fit(fresh, objective, X, Y, X_val, Y_val, cfg, seed, device=device)
    param = next(module.parameters())
    module.head.load_state_dict({k: v.to(param.device) for k, v in fresh.state_dict().items()})
    return result


class RecipeCallback(TrainerCallback):
    """The recipe's head stages around a ``SentenceTransformerTrainer`` run with ``FractalLoss``: with
    ``warmup`` the head is fitted on the frozen encoder when training begins, with ``refit`` (default) a
    fresh head is fitted on the fine-tuned encoder when it ends (:func:`refit_head`, same arguments).
    ``results`` holds each stage's :class:`~fractal_embeddings.training.FitResult` by name."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Any,
        val_texts: Sequence[str] | None = None,
        val_labels: Any = None,
        *,
        method: str | Objective = "fractal",
        seed: int = 0,
        warmup: bool = DEFAULT_RECIPE.warmup,
        refit: bool = DEFAULT_RECIPE.refit,
        train_options: dict | None = None,
    ) -> None:
        # rows checked now, not when a stage runs (the re-fit runs after the whole joint stage); the
        # class counts are checked against the model's head by refit_head
        texts = check_texts(texts)
        self.data = (texts, check_labels(labels, n_rows=len(texts)))
        self.val = None
        if val_texts is not None:
            val_texts = check_texts(val_texts, "val_texts")
            self.val = (val_texts, check_labels(val_labels, name="val_labels", n_rows=len(val_texts)))
        self.method, self.seed = method, check_seed(seed)
        self.warmup, self.refit = bool(warmup), bool(refit)
        self.train_options = train_options
        self.results: dict[str, FitResult] = {}

    def fit_head(self, model: SentenceTransformer, stage: str) -> None:
        val = self.val or (None, None)
        self.results[stage] = refit_head(
            model, *self.data, *val, method=self.method, seed=self.seed, train_options=self.train_options,
            device=str(next(model.parameters()).device),
        )  # fmt: skip

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.warmup and model is not None:
            self.fit_head(model, "warmup")

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.refit and model is not None:
            self.fit_head(model, "refit")


def run_recipe(
    model: SentenceTransformer,
    loss: Any,  # a FractalLoss over ``model``
    texts: Sequence[str],
    labels: np.ndarray,
    val: tuple[Sequence[str], np.ndarray] | None,
    recipe: FinetuneRecipe,
    *,
    method: str | Objective,
    seed: int,
    device: str,
    show_progress: bool,
) -> tuple[list[dict], dict[str, FitResult]]:
    """``recipe`` on ``model``: the joint stage is one ``SentenceTransformerTrainer`` run with ``loss``,
    the head stages run in its :class:`RecipeCallback`. Returns the trainer's logged history (losses per
    level) and each head stage's fit. The caller's global RNGs are given back afterwards."""
    from datasets import Dataset
    from transformers.utils import logging as hf_logging

    data = Dataset.from_dict({"text": list(texts), "label": np.asarray(labels, dtype=np.int64).tolist()})
    callback = RecipeCallback(
        texts, labels, *(val or (None, None)), method=method, seed=seed, warmup=recipe.warmup, refit=recipe.refit
    )
    scratch = tempfile.mkdtemp(prefix="fractal-finetune-")
    st_logger = logging.getLogger("sentence_transformers")
    level, hf_verbosity = st_logger.level, hf_logging.get_verbosity()
    st_logger.setLevel(logging.WARNING)
    hf_logging.set_verbosity_warning()
    # the trainer reseeds the global RNGs (python, numpy, torch): the caller's are given back afterwards
    py_state, np_state = random.getstate(), np.random.get_state()
    on_gpu = device.startswith("cuda")
    place = torch.cuda.device(torch.device(device)) if on_gpu else contextlib.nullcontext()  # cuda:N, not cuda:0
    try:
        with torch.random.fork_rng(devices=[torch.device(device)] if on_gpu else []), place:
            history = _trainer_run(model, loss, data, callback, scratch, recipe, seed, device, show_progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        st_logger.setLevel(level)
        hf_logging.set_verbosity(hf_verbosity)
        random.setstate(py_state)
        np.random.set_state(np_state)
    model.eval()
    bad = [e for e in history if any(isinstance(v, float) and not np.isfinite(v) for v in e.values())]
    if bad:
        raise FractalError(
            f"fine-tuning diverged (a non-finite loss at epoch {bad[0].get('epoch')}); nothing was saved: "
            f"lower --encoder-lr / --lr and train again"
        )
    return history, callback.results


def _trainer_run(
    model: SentenceTransformer,
    loss: Any,
    data: Any,
    callback: RecipeCallback,
    scratch: str,
    recipe: FinetuneRecipe,
    seed: int,
    device: str,
    show_progress: bool,
) -> list[dict]:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    steps = -(-len(data) // recipe.batch_size) * recipe.epochs
    args = SentenceTransformerTrainingArguments(
        output_dir=scratch,
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.encoder_lr,
        learning_rate_mapping=layer_lrs(model, recipe.encoder_lr, recipe.lr, recipe.layer_decay),
        weight_decay=WEIGHT_DECAY,
        lr_scheduler_type="cosine",
        seed=seed,
        data_seed=seed,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="steps",
        logging_steps=max(1, steps // 10),
        use_cpu=device == "cpu",
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss, callbacks=[callback])
    if not show_progress:  # no bars and no printed log lines (the history still goes into the record)
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    trainer.train()
    return [
        {k: (round(float(v), 6) if isinstance(v, float) and np.isfinite(v) else v) for k, v in entry.items()}
        for entry in trainer.state.log_history
    ]
