"""fractal-embeddings: steerable ("semantic zoom") text embeddings.

The public API is small and stable; everything else is an implementation detail.
"""

from typing import Any

from ._version import __version__
from .data import TaxonomyDataset, get_data_home, list_datasets, load_dataset
from .errors import FractalError

__all__ = [
    "EmbeddingCache",
    "Encoder",
    "FractalError",
    "TaxonomyDataset",
    "__version__",
    "embed_dataset",
    "evaluate",
    "get_data_home",
    "list_datasets",
    "list_methods",
    "load_dataset",
    "load_run",
    "train",
]


def __getattr__(name: str) -> Any:  # encoders import torch & friends lazily: `import fractal_embeddings` stays fast
    if name in ("Encoder", "embed_dataset"):
        from . import encoders

        return getattr(encoders, name)
    if name in ("train", "evaluate", "load_run"):
        from . import runs

        return getattr(runs, name)
    if name == "list_methods":
        from .objectives import list_methods

        return list_methods
    if name == "EmbeddingCache":
        from .cache import EmbeddingCache

        return EmbeddingCache
    raise AttributeError(f"module 'fractal_embeddings' has no attribute {name!r}")
