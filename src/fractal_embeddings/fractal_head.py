"""A steerable head and its sentence-transformers module, in one file that needs torch and
sentence-transformers (>= 6) only.

fractal-embeddings ships this file inside its package, and ``fractal export`` copies it, byte for byte,
to the root of every exported model folder, whose ``modules.json`` names the head's type
``fractal_head.FractalHead``. So an exported model loads without fractal-embeddings installed::

    from sentence_transformers import SentenceTransformer
    coarse = SentenceTransformer("path/to/export", trust_remote_code=True, truncate_dim=64)

``trust_remote_code=True`` lets sentence-transformers import this file from the folder. A model saved
again keeps working: :meth:`FractalHead.save` puts a copy of this file at the root of the folder being
written (sentence-transformers itself copies a folder's module file into the module's subfolder only).
fractal-embeddings never imports the copy in a folder: it loads a folder only when its copy is
byte-identical to the file it ships, and then uses its own installed class.

Heads (``n_blocks x block_dim`` output dims, one classifier per taxonomy level, coarse -> fine):

* ``linear`` / ``mlp`` (:class:`PrefixHead`): a linear projection (``mlp``: ``Linear -> GELU ->
  Linear``); with ``block_norm`` each block is L2-normalised. A level's classifier reads a prefix with
  the dims after it zeroed.
* ``heal`` (:class:`HealHead`): an MLP trunk, then one projector per level, each L2-normalised and
  concatenated (level k < last gets block k, the finest level the remaining blocks).
* ``topk`` (:class:`TopKHead`): a TopK sparse autoencoder whose sparse code is the embedding.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from sentence_transformers.base.modules.module import Module
from torch import nn

HEAD_KINDS = ("linear", "mlp", "heal", "topk")
CODE_FILE = "fractal_head.py"  # this file's name at the root of a model folder
MODULE_TYPE = "fractal_head.FractalHead"  # the head's type in the modules.json of a self-contained folder
HEAD_INPUT = "fractal_head_input"  # the features key holding the head's input (the encoder's vector)


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of a head. ``n_blocks * block_dim`` is the output dimension."""

    kind: str = "linear"
    n_blocks: int = 4
    block_dim: int = 64
    hidden_dim: int = 512  # mlp and heal: width of the hidden layer
    block_norm: bool = False  # linear and mlp: L2-normalise each block of the output
    topk: int = 32  # topk: non-zero units of the sparse code
    error: ClassVar[type[Exception]] = ValueError  # what a bad head raises (the library: its FractalError)

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise self.error(f"unknown head kind '{self.kind}'; use one of {', '.join(HEAD_KINDS)}")
        if self.n_blocks < 1 or self.block_dim < 1:
            raise self.error(f"n_blocks and block_dim must be >= 1, got {self.n_blocks} x {self.block_dim}")
        if self.kind == "topk" and not 1 <= self.topk <= self.dim:
            raise self.error(f"topk must be in [1, {self.dim}], got {self.topk}")

    @property
    def dim(self) -> int:
        return self.n_blocks * self.block_dim


class Head(nn.Module):
    """Common contract: ``forward(x) -> embedding (n, dim)``, ``logits(level, e) -> (n, n_classes)``."""

    classifiers: nn.ModuleList  # one per level (set by the subclasses that classify)

    def __init__(self, config: HeadConfig, input_dim: int, n_classes: tuple[int, ...]):
        super().__init__()
        if len(n_classes) < 2:
            raise config.error(f"a head needs >= 2 levels, got {len(n_classes)}")
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
    def transform(self, X: Any, batch_rows: int = 8192) -> Any:
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


def heal_segments(n_blocks: int, n_levels: int, error: type[Exception] = ValueError) -> list[int]:
    """Blocks per level for the HEAL-style head: one per level, the rest to the finest level."""
    if n_blocks < n_levels:
        raise error(f"the heal head needs >= one block per level: {n_blocks} blocks for {n_levels} levels")
    return [1] * (n_levels - 1) + [n_blocks - n_levels + 1]


class HealHead(Head):
    """MLP trunk + one projector per level; each projection is L2-normalised, then concatenated.

    Level k's classifier reads the prefix that ends with level k's segment (the coarsest level its
    own 64 dims, the finest level the whole vector), as in the prefix heads.
    """

    def __init__(self, config: HeadConfig, input_dim: int, n_classes: tuple[int, ...]):
        super().__init__(config, input_dim, n_classes)
        blocks = heal_segments(config.n_blocks, len(self.n_classes), config.error)
        self.segments = [b * config.block_dim for b in blocks]
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
        raise self.head_config.error("the topk (CSR-style) head has no classifiers")


def build_head(config: HeadConfig, input_dim: int, n_classes: Iterable[int]) -> Head:
    cls = {"heal": HealHead, "topk": TopKHead}.get(config.kind, PrefixHead)
    return cls(config, input_dim, tuple(n_classes))


class FractalHead(Module):
    """A steerable head as a sentence-transformers module: ``sentence_embedding`` -> head output.

    Any head kind above, with its per-level classifiers (used in training; they don't touch the
    embedding). The defaults are fractal-embeddings' default head: ``mlp`` (hidden 512), 4 x 64 dims,
    block norm. The module's input (the encoder's vector) stays in the features as ``HEAD_INPUT``."""

    config_keys: list[str] = [
        "in_features",
        "n_classes",
        "kind",
        "n_blocks",
        "block_dim",
        "hidden_dim",
        "block_norm",
        "topk",
    ]
    head_config_class: ClassVar[type[HeadConfig]] = HeadConfig  # its ``error`` is what a bad config raises

    def __init__(
        self,
        in_features: int,
        n_classes: Iterable[int],
        kind: str = "mlp",
        n_blocks: int = 4,
        block_dim: int = 64,
        hidden_dim: int = 512,
        block_norm: bool = True,
        topk: int = 32,
    ) -> None:
        super().__init__()
        config = self.head_config_class(
            kind, int(n_blocks), int(block_dim), int(hidden_dim), bool(block_norm), int(topk)
        )
        self.head: Head = build_head(config, int(in_features), tuple(int(c) for c in n_classes))

    @classmethod
    def from_head(cls, head: Head) -> FractalHead:
        """A module holding a copy of a trained :class:`Head`."""
        c = head.head_config
        module = cls(
            head.input_dim, head.n_classes, c.kind, c.n_blocks, c.block_dim, c.hidden_dim, c.block_norm, c.topk
        )
        module.head.load_state_dict(head.state_dict())
        return module

    # -- the head's architecture, read by the config and the model card
    @property
    def head_config(self) -> HeadConfig:
        return self.head.head_config

    in_features = property(lambda self: self.head.input_dim)
    n_classes = property(lambda self: list(self.head.n_classes))
    kind = property(lambda self: self.head_config.kind)
    n_blocks = property(lambda self: self.head_config.n_blocks)
    block_dim = property(lambda self: self.head_config.block_dim)
    hidden_dim = property(lambda self: self.head_config.hidden_dim)
    block_norm = property(lambda self: self.head_config.block_norm)
    topk = property(lambda self: self.head_config.topk)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        x = features["sentence_embedding"]
        features[HEAD_INPUT] = x
        features["sentence_embedding"] = self.head(x)
        return features

    def get_embedding_dimension(self) -> int:
        return self.head.dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)
        # inside a model folder being saved (sentence-transformers writes its config before the
        # modules), this file goes to the folder's root too, where a reload with
        # trust_remote_code=True looks for it
        root = Path(output_path).resolve().parent
        if (root / "config_sentence_transformers.json").is_file():
            write_code_file(root)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        init_defaults: dict[str, Any] | None = None,  # the base signature's; the saved config names every argument
        **kwargs: Any,
    ) -> FractalHead:
        hub: dict[str, Any] = {  # where the folder is (a path or a hub id), for both reads below
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path, **hub)
        missing = [k for k in ("in_features", "n_classes") if k not in config]
        if missing:
            raise cls.head_config_class.error(
                f"{model_name_or_path}/{subfolder}: FractalHead config lacks {', '.join(missing)}; "
                f"the folder is not one fractal-embeddings wrote"
            )
        module = cls(**{k: v for k, v in config.items() if k in cls.config_keys})
        return cls.load_torch_weights(model_name_or_path, **hub, model=module)

    def __repr__(self) -> str:
        c = self.head_config
        return (
            f"FractalHead({self.in_features} -> {c.kind}, {c.n_blocks} x {c.block_dim}"
            f"{', block norm' if c.block_norm else ''}, levels {self.n_classes})"
        )


def code_bytes() -> bytes:
    """The bytes of this file (what a model folder's ``fractal_head.py`` must equal to be ours)."""
    return Path(__file__).read_bytes()


def write_code_file(folder: str | os.PathLike) -> Path:
    """Put this file at ``folder/fractal_head.py`` (a model folder's root); returns its path."""
    target = Path(folder) / CODE_FILE
    data = code_bytes()
    if not (target.is_file() and not target.is_symlink() and target.read_bytes() == data):
        if target.is_symlink():
            target.unlink()
        target.write_bytes(data)
    return target
