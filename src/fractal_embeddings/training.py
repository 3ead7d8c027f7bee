"""The one training loop: a head, an objective, cached encoder vectors in, the best epoch's head out.

Defaults are the seed's recipe: AdamW (lr 1e-4, weight decay 0.01), cosine decay to 0 over all
steps (per step, no warm-up), batch 16, 5 epochs, gradient-norm clip 1.0, and the best epoch chosen
by validation k-NN accuracy (coarsest + finest level, full vector, on a stratified sample of up to
2,000 validation rows). Objectives may change these defaults (``Objective.trainer_defaults``); the
caller's overrides win over both.

Speed: training runs on tensors already in memory: the rows are shuffled once per epoch so a batch
is a view, every random draw is made before the loop, the parameters live in one flat buffer per
learning rate (one gradient norm and one fused AdamW kernel call per step, without torch.optim's
overhead), and torch runs single-threaded, which is fastest for these tiny matmuls. A step still
costs a few times its matrix products (the floor bench/train_speed.py measures): at batch 16 the
per-step overhead dominates.
Deterministic: the same seed gives the same weights on the same machine and torch build.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import FractalError
from .evaluation import knn_neighbours, stratified_sample, vote
from .validation import is_int, is_real

if TYPE_CHECKING:
    from .objectives import Objective


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    epochs: int = 5
    batch_size: int = 16
    grad_clip: float = 1.0
    lr_schedule: str = "cosine"  # or "constant"
    select: str = "val-knn"  # best epoch by validation k-NN; "last" keeps the last epoch
    val_rows: int | None = 2000
    k: int = 5
    threads: int = 1
    encoder_lr: float | None = None  # fine-tuned encoder layers only (backbone.py); None elsewhere

    def __post_init__(self) -> None:
        # every numeric field: the right type and a finite value in range (an inf lr or a NaN clip would
        # only show as a NaN loss, a 2.5-epoch run as a crash deep inside the loop)
        for name in ("epochs", "batch_size", "k", "threads"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise FractalError(f"{name} must be an integer >= 1, got {v!r}")
        for name, optional in (("lr", False), ("encoder_lr", True)):
            v = getattr(self, name)
            if not (optional and v is None) and (not is_real(v) or not math.isfinite(v) or v <= 0):
                raise FractalError(f"{name} must be a finite number > 0, got {v!r}")
        for name, optional in (("weight_decay", False), ("grad_clip", True)):  # grad_clip None or 0: no clipping
            v = getattr(self, name)
            if not (optional and v is None) and (not is_real(v) or not math.isfinite(v) or v < 0):
                raise FractalError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.val_rows is not None and (not is_int(self.val_rows) or self.val_rows <= self.k):
            raise FractalError(
                f"val_rows must be None (all) or an integer > k: leave-one-out {self.k}-NN validation "
                f"needs at least {self.k + 1} rows, got {self.val_rows!r}"
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise FractalError(f"unknown lr_schedule '{self.lr_schedule}'; use cosine or constant")
        if self.select not in ("val-knn", "last"):
            raise FractalError(f"unknown select '{self.select}'; use val-knn or last")

    @classmethod
    def resolve(cls, objective_defaults: dict, overrides: dict | None) -> TrainConfig:
        """Recipe defaults <- the objective's defaults <- the caller's overrides."""
        names = {f.name for f in fields(cls)}
        bad = sorted(set(overrides or {}) - names)
        if bad:
            raise FractalError(f"unknown training option {', '.join(bad)}; options: {', '.join(sorted(names))}")
        return replace(cls(), **{**objective_defaults, **(overrides or {})})

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["encoder_lr"] is None:  # a head-only run: records stay as they were before the option existed
            del d["encoder_lr"]
        return d


@dataclass
class FitResult:
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FlatParams:
    """Rebind a module's parameters (and their gradients) as views of one flat buffer."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.flat)
        self.flat.grad = self.grad
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data = self.flat[offset : offset + n].view_as(p)
            p.grad = self.grad[offset : offset + n].view_as(p)
            offset += n

    def release(self) -> None:
        """Give every parameter its own storage again (the head outlives the buffer)."""
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None


class FusedAdamW:
    """AdamW over the flat buffers with torch's fused kernel, called directly.

    ``torch.optim.AdamW(fused=True)`` runs the same kernel (``torch._fused_adamw_``) with the same
    state (float32 step counters on the parameters' device), so the weights are bit-identical
    (tests/test_training.py), without the ``torch.optim.Optimizer`` machinery: that imports
    ``torch._dynamo`` on first use (1.6 s of a profiled ``fractal train`` here) and costs Python time every
    step. Devices without the fused kernel use ``torch.optim.AdamW``."""

    FUSED_DEVICES = ("cpu", "cuda")

    def __init__(
        self, flats: list[FlatParams], weight_decay: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.flats, self.weight_decay, (self.beta1, self.beta2), self.eps = flats, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(f.flat) for f in flats]
        self.exp_avg_sq = [torch.zeros_like(f.flat) for f in flats]
        self.steps = [torch.zeros((), dtype=torch.float32, device=f.flat.device) for f in flats]

    def step(self, lrs: list[float]) -> None:
        for i, (f, lr) in enumerate(zip(self.flats, lrs, strict=True)):
            self.steps[i].add_(1)
            torch._fused_adamw_(
                [f.flat], [f.grad], [self.exp_avg[i]], [self.exp_avg_sq[i]], [], [self.steps[i]],
                lr=lr, beta1=self.beta1, beta2=self.beta2, weight_decay=self.weight_decay, eps=self.eps,
                amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
            )  # fmt: skip


class TorchAdamW:
    """``torch.optim.AdamW`` behind the same ``step(lrs)`` (devices without the fused kernel)."""

    def __init__(self, flats: list[FlatParams], weight_decay: float) -> None:
        self.opt = torch.optim.AdamW([{"params": [f.flat]} for f in flats], weight_decay=weight_decay)

    def step(self, lrs: list[float]) -> None:
        for group, lr in zip(self.opt.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.opt.step()


def _grad_norm(flats: list[FlatParams]) -> torch.Tensor:
    """The global gradient norm over every flat buffer."""
    if len(flats) == 1:
        return torch.linalg.vector_norm(flats[0].grad)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(f.grad) for f in flats]))


def _check_finite(epoch: int, mean_loss: float, flats: list[FlatParams], base_lr: list[float]) -> None:
    """Stop a diverging run: a NaN / infinite loss or weights after an epoch is a one-line error (checked
    once per epoch, not per step: no extra device sync in the loop)."""
    weights_ok = all(bool(torch.isfinite(f.flat).all()) for f in flats)
    if math.isfinite(mean_loss) and weights_ok:
        return
    what = f"loss {mean_loss}" if not math.isfinite(mean_loss) else "the loss is finite but the weights are not"
    raise FractalError(
        f"training diverged at epoch {epoch} ({what}); nothing was saved: lower the learning rate "
        f"(--lr, now {', '.join(f'{lr:g}' for lr in base_lr)}) and train again"
    )


def validation_score(head: Any, X_val: np.ndarray, Y_val: np.ndarray, k: int, levels: tuple[int, ...]) -> float:
    """The sum over ``levels`` (``Objective.selection_levels``: coarsest + finest by default) of the
    full vector's k-NN accuracy (the best-epoch criterion); neighbours are found once for all levels."""
    neighbours = knn_neighbours(head.transform(X_val), k)
    score = 0.0
    for lv in levels:
        score += float((vote(Y_val[neighbours, lv]) == Y_val[:, lv]).mean())
    return score


def fit(
    head: Any,  # a heads.Head, or a backbone.TunedHead (the same interface, partly borrowed from Head)
    objective: Objective,
    X: np.ndarray,
    Y: np.ndarray,
    X_val: np.ndarray,
    Y_val: np.ndarray,
    config: TrainConfig,
    seed: int,
    progress: Callable[[dict], None] | None = None,
    device: str = "cpu",
) -> FitResult:
    """Train ``head`` in place with ``objective``; returns the history and the chosen epoch.

    ``device`` (a resolved torch device, :func:`~fractal_embeddings.devices.resolve_device`): where the
    steps run; the head comes back on the CPU. Random draws stay on the CPU generator, so a GPU run
    sees the same batches as a CPU run (its numbers differ only by floating-point rounding)."""
    t0 = time.perf_counter()
    on_cpu = device == "cpu"
    X_t = torch.from_numpy(np.array(X, dtype=np.float32))  # a copy: cached vectors are read-only memory maps
    Y_t = torch.from_numpy(np.array(Y, dtype=np.int64))
    if not on_cpu:
        X_t, Y_t = X_t.to(device), Y_t.to(device)
        head.to(device)
    n, bs = len(X_t), config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    total = steps_per_epoch * config.epochs
    gen = torch.Generator().manual_seed(seed)
    plan = objective.plan(total, bs, head.head_config.n_blocks, head.n_levels, gen)
    val_rows = stratified_sample(Y_val[:, -1], config.val_rows, seed=0)
    X_val, Y_val = np.asarray(X_val)[val_rows], np.asarray(Y_val)[val_rows]
    result = FitResult(best_epoch=config.epochs)
    best_score, best_state = -math.inf, None
    with torch_threads(config.threads):
        # one flat buffer per learning rate: the head's, and (backbone.py) the fine-tuned encoder layers'
        groups = head.param_groups()
        flats = [FlatParams(module) for module, _ in groups]
        base_lr = []
        for _, key in groups:
            lr = getattr(config, key)
            if lr is None:
                raise FractalError(f"training encoder layers needs {key}; set it in the training options")
            base_lr.append(lr)
        fused = device.split(":")[0] in FusedAdamW.FUSED_DEVICES
        opt = (FusedAdamW if fused else TorchAdamW)(flats, config.weight_decay)
        head.train()
        step = 0
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(n, generator=gen)
            if not on_cpu:
                order = order.to(device)
            X_ep, Y_ep = X_t[order], Y_t[order]  # shuffled once per epoch: each batch is then a view
            loss_sum = torch.zeros((), device=X_t.device)
            for b in range(steps_per_epoch):
                x, y = X_ep[b * bs : (b + 1) * bs], Y_ep[b * bs : (b + 1) * bs]
                loss = objective.loss(head, x, y, step, plan)
                for f in flats:
                    f.grad.zero_()
                loss.backward()
                if config.grad_clip:
                    scale = torch.clamp(config.grad_clip / (_grad_norm(flats) + 1e-6), max=1.0)
                    for f in flats:
                        f.grad.mul_(scale)
                if config.lr_schedule == "cosine":
                    opt.step([lr * 0.5 * (1.0 + math.cos(math.pi * step / total)) for lr in base_lr])
                else:
                    opt.step(base_lr)
                loss_sum += loss.detach()
                step += 1
            _check_finite(epoch, float(loss_sum) / steps_per_epoch, flats, base_lr)
            entry = {"epoch": epoch, "train_loss": round(float(loss_sum) / steps_per_epoch, 6)}
            if config.select == "val-knn":
                score = validation_score(head, X_val, Y_val, config.k, objective.selection_levels(head.n_levels))
                entry["val_knn"] = round(score, 6)
                if score > best_score:
                    best_score, result.best_epoch = score, epoch
                    best_state = [f.flat.detach().clone() for f in flats]
            result.history.append(entry)
            if progress is not None:
                progress(entry)
        if best_state is not None:
            for f, state in zip(flats, best_state, strict=True):
                f.flat.data.copy_(state)
        for f in flats:
            f.release()
        head.eval()
        if not on_cpu:
            head.to("cpu")
    result.seconds = time.perf_counter() - t0
    return result
