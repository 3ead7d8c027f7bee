"""Derived taxonomies for controlled experiments: noisy coarse labels and synthetic coarse levels.

Each function returns a new :class:`TaxonomyDataset` with the same texts (so cached vectors are
reused) and records what it did in ``info["variant"]``, which run records keep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import TaxonomyError
from ..validation import check_labels, check_real, check_seed, check_texts, is_int, shown
from .taxonomy import Level, Split, TaxonomyDataset


def with_coarse_noise(
    ds: TaxonomyDataset, fraction: float, seed: int, splits: Sequence[str] = ("train",)
) -> TaxonomyDataset:
    """Replace the coarsest label of a random ``fraction`` of the rows of ``splits`` by another
    coarse class drawn uniformly (the finer labels are kept, so those rows disagree with the
    parent map: that is the noise). Validation and test rows stay clean."""
    check_real(fraction, "label noise fraction", lo=0.0, hi=1.0, error=TaxonomyError)
    check_seed(seed, error=TaxonomyError)
    if isinstance(splits, str):
        raise TaxonomyError(f"splits must be a list of split names, got the string {splits!r}; pass [{splits!r}]")
    splits = check_texts(splits, "splits", error=TaxonomyError)
    n0 = ds.levels[0].n_classes
    if n0 < 2:
        raise TaxonomyError("coarse label noise needs >= 2 coarse classes")
    rng = np.random.default_rng(seed)
    new = {}
    for name, sp in ds.splits.items():
        if name not in splits or fraction == 0.0:
            new[name] = sp
            continue
        labels = sp.labels.copy()
        hit = rng.random(len(sp)) < fraction
        shift = rng.integers(1, n0, size=int(hit.sum()))  # never the true class
        labels[hit, 0] = (labels[hit, 0] + shift) % n0
        new[name] = Split(sp.texts, labels, origin=sp.origin)
    info = {**ds.info, "variant": {"kind": "coarse-noise", "fraction": fraction, "seed": seed, "splits": list(splits)}}
    return TaxonomyDataset(ds.name, ds.levels, new, ds.parents, info)


def with_random_coarse(ds: TaxonomyDataset, n_groups: int, seed: int) -> TaxonomyDataset:
    """A two-level taxonomy: a random partition of the finest classes into ``n_groups`` coarse
    groups (sizes differ by at most one) above the unchanged finest level."""
    fine = ds.levels[-1]
    check_seed(seed, error=TaxonomyError)
    if not is_int(n_groups) or not 2 <= n_groups < fine.n_classes:
        raise TaxonomyError(
            f"n_groups must be an integer in [2, {fine.n_classes - 1}] for {fine.n_classes} classes, got "
            f"{shown(n_groups)}"
        )
    rng = np.random.default_rng(seed)
    parent = np.empty(fine.n_classes, dtype=np.int64)
    parent[rng.permutation(fine.n_classes)] = np.arange(fine.n_classes) % n_groups
    coarse = Level(f"group{n_groups}", tuple(f"g{i}" for i in range(n_groups)))
    return with_coarse_level(ds, coarse, parent, {"kind": "random-coarse", "n_groups": n_groups, "seed": seed})


def with_coarse_level(
    ds: TaxonomyDataset, coarse: Level, parent: np.ndarray, variant: dict, level: int = -1
) -> TaxonomyDataset:
    """A two-level taxonomy: ``coarse`` above level ``level`` of ``ds`` (default: the finest), whose
    class ``c`` goes to coarse class ``parent[c]``; same texts and splits (cached vectors are reused),
    ``variant`` recorded in ``info["variant"]``."""
    li = ds.level_index(level)
    fine = ds.levels[li]
    try:
        parent = check_labels(parent, [coarse.n_classes], name="parent map")[:, 0]
    except TaxonomyError:
        parent = np.empty(0, dtype=np.int64)  # refused below, with what the map must be
    if parent.shape != (fine.n_classes,):
        raise TaxonomyError(
            f"parent map must give each of the {fine.n_classes} '{fine.name}' classes a code in "
            f"[0, {coarse.n_classes - 1}]"
        )
    new = {}
    for name, sp in ds.splits.items():
        f = sp.labels[:, li]
        new[name] = Split(sp.texts, np.stack([parent[f], f], axis=1), origin=sp.origin)
    info = {**ds.info, "variant": variant}
    return TaxonomyDataset(ds.name, (coarse, fine), new, (None, parent), info)
