"""Datasets: the taxonomy data model, built-in loaders, user files and the data home."""

from .build import build_dataset
from .catalog import DatasetSpec, get_spec, list_datasets, load_dataset
from .home import get_data_home
from .taxonomy import Level, Split, TaxonomyDataset, conditional_entropy_bits, entropy_bits

__all__ = [
    "DatasetSpec",
    "Level",
    "Split",
    "TaxonomyDataset",
    "build_dataset",
    "conditional_entropy_bits",
    "entropy_bits",
    "get_data_home",
    "get_spec",
    "list_datasets",
    "load_dataset",
]
