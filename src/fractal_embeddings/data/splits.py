"""Seeded, stratified row samples and splits: the evaluation sample, the automatic ``val`` split and
the ``test`` split made for sources that publish none. Each depends only on the labels, the size
(or fraction) and the seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import TaxonomyError
from ..validation import check_int


def stratified_sample(strata: np.ndarray, max_rows: int | None = 2000, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified sample of ``max_rows`` rows (all rows when None or >= n).

    Each stratum gets ``max_rows * n_c / n`` rows rounded down; the rows left over go to the strata
    with the largest remainders (ties: lower class code). Rows within a stratum are drawn with
    ``numpy.random.default_rng(seed)``, strata visited in code order.
    """
    strata = np.asarray(strata)
    n = len(strata)
    if max_rows is not None:
        check_int(max_rows, "max_rows", lo=1, error=TaxonomyError, fix="or None for all rows")
    if max_rows is None or max_rows >= n:
        return np.arange(n)
    classes, counts = np.unique(strata, return_counts=True)
    quota = counts * (max_rows / n)
    take = np.floor(quota).astype(int)
    order = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take[i]), i))
    for i in order[: max_rows - int(take.sum())]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(np.flatnonzero(strata == c))[:t] for c, t in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(rows))


def stratified_split(strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the rows that go to the held-out part.

    Per stratum (class of the finest level), ``round(fraction * n)`` rows are drawn with a
    ``numpy.random.default_rng(seed)`` permutation, at most ``n - 1`` (a class with one row stays
    whole). Strata are visited in code order, so the result depends only on labels, fraction, seed.
    """
    if not 0.0 < fraction < 1.0:
        raise TaxonomyError(f"val_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(strata), dtype=bool)
    for c in np.unique(strata):
        rows = np.flatnonzero(strata == c)
        n_out = min(int(math.floor(fraction * len(rows) + 0.5)), len(rows) - 1)
        if n_out > 0:
            mask[rng.permutation(rows)[:n_out]] = True
    return mask


#: Sources that publish no test split (derived taxonomies, user files without a ``split`` column, some
#: online datasets) get a seeded stratified one: this fraction of the rows, by the finest label.
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def holdout_rows(
    texts: Sequence[str | None], labels: Sequence[Sequence[str]], fraction: float, seed: int, name: str = "test"
) -> dict[str, tuple[list, list]]:
    """``{"train": ..., name: ...}``: a seeded stratified split (by the finest label) of raw rows, for
    sources that publish no test split."""
    codes = np.unique([str(lab[-1]) for lab in labels], return_inverse=True)[1]
    out = stratified_split(codes, fraction, seed)
    return {
        "train": (
            [t for t, m in zip(texts, out, strict=True) if not m],
            [lab for lab, m in zip(labels, out, strict=True) if not m],
        ),
        name: (
            [t for t, m in zip(texts, out, strict=True) if m],
            [lab for lab, m in zip(labels, out, strict=True) if m],
        ),
    }
