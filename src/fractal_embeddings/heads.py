"""Heads: the small trained modules that turn a frozen encoder vector into a steerable embedding.

Two architectures, one contract (:class:`Head`):

* ``linear`` (:class:`PrefixHead`, the seed's): one linear projection from the encoder dim to
  ``n_blocks x block_dim`` dims, plus one linear classifier per level that reads a full-length
  vector (a prefix is scored by zeroing the dims after it).
* ``mlp`` (:class:`PrefixHead` too): the projection is ``Linear -> GELU -> Linear`` (a deeper head).
* ``topk`` (:class:`TopKHead`, the CSR-style baseline): a TopK sparse autoencoder whose sparse
  code (``n_blocks x block_dim`` units, ``topk`` of them non-zero) is the embedding.
* ``heal`` (:class:`HealHead`, the HEAL-style baseline): an MLP trunk, then a separate projector
  per level whose outputs are L2-normalised and concatenated: level k < last gets block k, the
  finest level gets the remaining blocks (2 levels, 4 x 64: 64-d coarse + 192-d fine).

A head's :meth:`~Head.config` plus its safetensors state are everything needed to rebuild it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from .errors import FractalError

if TYPE_CHECKING:
    import numpy as np

HEADS = ("linear", "mlp", "heal", "topk")


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of a head. ``n_blocks * block_dim`` is the output dimension."""

    kind: str = "linear"
    n_blocks: int = 4
    block_dim: int = 64
    hidden_dim: int = 512  # mlp and heal: width of the hidden layer
    block_norm: bool = False  # linear and mlp: L2-normalise each block of the output
    topk: int = 32  # topk: non-zero units of the sparse code

    def __post_init__(self) -> None:
        if self.kind not in HEADS:
            raise FractalError(f"unknown head kind '{self.kind}'; use one of {', '.join(HEADS)}")
        if self.n_blocks < 1 or self.block_dim < 1:
            raise FractalError(f"n_blocks and block_dim must be >= 1, got {self.n_blocks} x {self.block_dim}")

    @property
    def dim(self) -> int:
        return self.n_blocks * self.block_dim

    @classmethod
    def from_dims(cls, kind: str = "linear", dim: int = 256, block_dim: int = 64, **kw: Any) -> HeadConfig:
        """Config from a total output dim; it must be a multiple of ``block_dim``."""
        if block_dim < 1 or dim < block_dim or dim % block_dim:
            raise FractalError(
                f"output dim {dim} is not a multiple of block dim {block_dim}; "
                f"pick dims such that dim = n_blocks x block_dim (e.g. 256 = 4 x 64)"
            )
        return cls(kind, dim // block_dim, block_dim, **kw)


class Head(nn.Module):
    """Common contract: ``forward(x) -> embedding (n, dim)``, ``logits(level, e) -> (n, n_classes)``."""

    classifiers: nn.ModuleList  # one per level (set by the subclasses that classify)

    def __init__(self, config: HeadConfig, input_dim: int, n_classes: tuple[int, ...]):
        super().__init__()
        if len(n_classes) < 2:
            raise FractalError(f"a head needs >= 2 levels, got {len(n_classes)}")
        self.head_config = config
        self.input_dim = int(input_dim)
        self.n_classes = tuple(int(c) for c in n_classes)

    @property
    def dim(self) -> int:
        return self.head_config.dim

    @property
    def n_levels(self) -> int:
        return len(self.n_classes)

    def prefix(self, e: torch.Tensor, j: int) -> torch.Tensor:
        """``e`` with every dim after the first ``j`` blocks set to zero (same shape)."""
        keep = j * self.head_config.block_dim
        return torch.cat([e[:, :keep], e.new_zeros(e.shape[0], e.shape[1] - keep)], dim=1) if keep < e.shape[1] else e

    def logits(self, level: int, e: torch.Tensor) -> torch.Tensor:
        return self.classifiers[level](e)

    def prefix_logits(self, level: int, e: torch.Tensor, j: int) -> torch.Tensor:
        """``logits(level, prefix(e, j))``: the level's classifier on the first j blocks only."""
        return self.logits(level, self.prefix(e, j))

    def config(self) -> dict:
        return {**asdict(self.head_config), "input_dim": self.input_dim, "n_classes": list(self.n_classes)}

    def param_groups(self) -> list[tuple[nn.Module, str]]:
        """(module, learning-rate key) pairs for the trainer: the whole head at ``lr``."""
        return [(self, "lr")]

    @torch.no_grad()
    def transform(self, X: np.ndarray, batch_rows: int = 8192) -> np.ndarray:
        """Embed a numpy array of encoder vectors (float32 ``(n, dim)``, no gradient)."""
        import numpy as np

        was = self.training
        self.eval()
        device = next(self.parameters(), torch.empty(0)).device
        out = np.empty((len(X), self.dim), dtype=np.float32)
        for s in range(0, len(X), batch_rows):
            chunk = torch.from_numpy(np.array(X[s : s + batch_rows], dtype=np.float32))  # a copy: X may be read-only
            if device.type != "cpu":
                chunk = chunk.to(device)
            out[s : s + batch_rows] = self(chunk).cpu().numpy()
        self.train(was)
        return out


class PrefixHead(Head):
    """Projection to ``n_blocks x block_dim`` (linear, or a one-hidden-layer MLP for ``kind="mlp"``)
    + one linear classifier per level; with ``block_norm`` each block is L2-normalised."""

    def __init__(self, config: HeadConfig, input_dim: int, n_classes: tuple[int, ...]):
        super().__init__(config, input_dim, n_classes)
        self.proj: nn.Module
        if config.kind == "mlp":
            self.proj = nn.Sequential(
                nn.Linear(self.input_dim, config.hidden_dim), nn.GELU(), nn.Linear(config.hidden_dim, config.dim)
            )
        else:
            self.proj = nn.Linear(self.input_dim, config.dim)
        self.classifiers = nn.ModuleList(nn.Linear(config.dim, c) for c in self.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.proj(x)
        if self.head_config.block_norm:
            n, (b, d) = len(e), (self.head_config.n_blocks, self.head_config.block_dim)
            e = nn.functional.normalize(e.view(n, b, d), dim=2).view(n, b * d)
        return e

    def prefix_logits(self, level: int, e: torch.Tensor, j: int) -> torch.Tensor:
        # the zeroed dims contribute nothing, so only the first j blocks are multiplied (same values
        # and gradients as classifying the zero-padded prefix, at a fraction of the cost)
        keep = j * self.head_config.block_dim
        cls = cast(nn.Linear, self.classifiers[level])
        return nn.functional.linear(e[:, :keep], cls.weight[:, :keep], cls.bias)


def heal_segments(n_blocks: int, n_levels: int) -> list[int]:
    """Blocks per level for the HEAL-style head: one per level, the rest to the finest level."""
    if n_blocks < n_levels:
        raise FractalError(f"the heal head needs >= one block per level: {n_blocks} blocks for {n_levels} levels")
    return [1] * (n_levels - 1) + [n_blocks - n_levels + 1]


class HealHead(Head):
    """MLP trunk + one projector per level; each projection is L2-normalised, then concatenated.

    Level k's classifier reads the prefix that ends with level k's segment (the coarsest level its
    own 64 dims, the finest level the whole vector), as in the prefix heads.
    """

    def __init__(self, config: HeadConfig, input_dim: int, n_classes: tuple[int, ...]):
        super().__init__(config, input_dim, n_classes)
        self.segments = [b * config.block_dim for b in heal_segments(config.n_blocks, len(self.n_classes))]
        self.trunk = nn.Sequential(nn.Linear(self.input_dim, config.hidden_dim), nn.GELU())
        self.projectors = nn.ModuleList(nn.Linear(config.hidden_dim, d) for d in self.segments)
        self.ends = [sum(self.segments[: k + 1]) for k in range(len(self.segments))]
        self.classifiers = nn.ModuleList(nn.Linear(d, c) for d, c in zip(self.ends, self.n_classes, strict=True))

    def level_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The normalised projection of each level, coarsest first."""
        h = self.trunk(x)
        return [nn.functional.normalize(p(h), dim=1) for p in self.projectors]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.level_outputs(x), dim=1)

    def logits(self, level: int, e: torch.Tensor) -> torch.Tensor:
        return self.classifiers[level](e[:, : self.ends[level]])


class TopKHead(Head):
    """CSR-style TopK sparse autoencoder (Wen et al., 2025): ``h = TopK(ReLU(W_enc (x - b_pre) + b))``,
    ``x_hat = W_dec h + b_pre``. The code ``h`` is the embedding; it has no classifiers."""

    def __init__(self, config: HeadConfig, input_dim: int, n_classes: tuple[int, ...]):
        super().__init__(config, input_dim, n_classes)
        if not 1 <= config.topk <= config.dim:
            raise FractalError(f"topk must be in [1, {config.dim}], got {config.topk}")
        self.pre_bias = nn.Parameter(torch.zeros(self.input_dim))
        self.enc = nn.Linear(self.input_dim, config.dim)
        self.dec = nn.Linear(config.dim, self.input_dim, bias=False)
        self.classifiers = nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.enc(x - self.pre_bias))
        top = z.topk(self.head_config.topk, dim=1)
        return torch.zeros_like(z).scatter(1, top.indices, top.values)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.dec(h) + self.pre_bias

    def logits(self, level: int, e: torch.Tensor) -> torch.Tensor:
        raise FractalError("the topk (CSR-style) head has no classifiers")


def build_head(config: HeadConfig, input_dim: int, n_classes: Iterable[int]) -> Head:
    cls = {"heal": HealHead, "topk": TopKHead}.get(config.kind, PrefixHead)
    return cls(config, input_dim, tuple(n_classes))


def head_from_config(cfg: dict) -> Head:
    """Rebuild an (untrained) head from :meth:`Head.config`'s dict."""
    cfg = dict(cfg)
    input_dim, n_classes = cfg.pop("input_dim"), cfg.pop("n_classes")
    return build_head(HeadConfig(**cfg), input_dim, n_classes)
