"""The taxonomy data model: texts with N label levels (coarse -> fine), validated parent maps, splits.

A :class:`TaxonomyDataset` is built once from plain rows by :func:`~.build.build_dataset`, which

* drops empty / whitespace-only texts (and reports how many) or refuses them (``empty="error"``),
* encodes every level's labels as integer codes over a fixed class list,
* derives the parent map of every level from the data and validates it: a class of level k seen
  under two parents in level k-1 is an error naming the class and both parents, unless the caller
  opts into ``on_conflict="majority"`` (each such class is re-attached to its most frequent parent,
  the coarse labels of the rows that disagreed are rewritten, and a warning counts those rows),
* refuses a level with fewer than two classes,
* creates a ``val`` split when the source has none: a deterministic, seeded split of ``train``,
  stratified by the finest level (see :func:`~.splits.stratified_split`).

Statistics (:meth:`TaxonomyDataset.stats`) are computed over the rows of all splits together:
``H(L0)`` and ``H(Lk | Lk-1)`` in bits and the mean branching factor of every level.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TaxonomyError
from ..validation import check_int, check_seed, is_int, quoted, shown
from .splits import stratified_sample

SPLIT_ORDER = ("train", "val", "test")
DUPLICATES = ("warn", "error")  # what a reader does with rows that repeat a text: on_duplicates


@dataclass(frozen=True)
class Level:
    """One label level: its name and its class names (index = integer code)."""

    name: str
    classes: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Split:
    """Texts of one split and their integer labels, shape ``(n_rows, n_levels)``."""

    texts: tuple[str, ...]
    labels: np.ndarray
    # (the split these rows were drawn from, their row indices in it): lets a subset reuse the
    # cached vectors of the full split (see ``source_rows``)
    origin: tuple[Split, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def source_rows(self) -> tuple[Split, np.ndarray | None]:
        """The outermost split these rows come from and their indices in it (``None``: all rows)."""
        if self.origin is None:
            return self, None
        parent, rows = self.origin
        root, parent_rows = parent.source_rows()
        return root, (rows if parent_rows is None else parent_rows[rows])

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TaxonomyDataset:
    """Texts + label levels (coarse -> fine) + splits, with validated parent maps.

    ``parents[k]`` (k >= 1) maps each class code of level k to the code of its parent in level k-1;
    ``parents[0]`` is ``None``.
    """

    name: str
    levels: tuple[Level, ...]
    splits: dict[str, Split]
    parents: tuple[np.ndarray | None, ...]
    info: dict = field(default_factory=dict)

    # ----------------------------------------------------------------- access
    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    @property
    def is_hierarchical(self) -> bool:
        return self.n_levels >= 2

    def split(self, name: str) -> Split:
        try:
            return self.splits[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise TaxonomyError(
                f"{self.name} has no split {shown(name)}; available: {', '.join(self.splits)}"
            ) from None

    def label_names(self, split: str) -> list[list[str]]:
        """The class names of every row of ``split``, one per level (coarse -> fine)."""
        classes = [lv.classes for lv in self.levels]
        return [[classes[k][c] for k, c in enumerate(row)] for row in self.split(split).labels.tolist()]

    def level_index(self, level: str | int) -> int:
        if is_int(level):
            level = int(level)
            if not -self.n_levels <= level < self.n_levels:
                raise TaxonomyError(f"{self.name} has {self.n_levels} levels; level {level} is out of range")
            return level % self.n_levels
        if not isinstance(level, str):
            raise TaxonomyError(f"a level is a name or a number (0 = the coarsest), got {type(level).__name__}")
        if level in self.level_names:
            return self.level_names.index(level)
        if level.upper().startswith("L") and level[1:].isdigit():
            return self.level_index(int(level[1:]))
        raise TaxonomyError(f"{self.name} has no level {shown(level)}; available: {', '.join(self.level_names)}")

    def parent_map(self, level: str | int) -> dict[str, str]:
        """``{class name: parent class name}`` for a level below the coarsest."""
        k = self.level_index(level)
        if k == 0:
            raise TaxonomyError(f"level '{self.levels[0].name}' is the coarsest level; it has no parents")
        parents = self.parents[k]
        assert parents is not None  # every level below the coarsest has its parent map
        up = self.levels[k - 1].classes
        return {c: up[int(parents[i])] for i, c in enumerate(self.levels[k].classes)}

    def require_hierarchy(self) -> None:
        """Raise a one-line error when the dataset is flat (one level): it cannot be trained on."""
        if not self.is_hierarchical:
            raise TaxonomyError(
                f"{self.name} is flat (one level, {self.levels[0].n_classes} classes, no published coarse "
                "level); hierarchical training needs >= 2 levels: give it a coarse column in a user file "
                "(--levels coarse,fine)"
            )

    def select_levels(self, levels: Sequence[str | int]) -> TaxonomyDataset:
        """A view with a subset of the levels, kept in coarse -> fine order (parents re-derived)."""
        idx = [self.level_index(lv) for lv in check_levels(levels, allow_index=True) or ()]
        if not idx:
            raise TaxonomyError(f"no levels given; name them, coarse -> fine ({', '.join(self.level_names)})")
        if len(set(idx)) != len(idx):
            raise TaxonomyError(f"levels {list(levels)} name the same level twice")
        if idx != sorted(idx):
            raise TaxonomyError(
                f"levels {list(levels)} must go from coarse to fine (order in {self.name}: "
                f"{', '.join(self.level_names)})"
            )
        if idx == list(range(self.n_levels)):
            return self
        parents: list[np.ndarray | None] = [None]
        for a, b in zip(idx, idx[1:], strict=False):  # consecutive pairs
            p = np.arange(self.levels[b].n_classes)
            for k in range(b, a, -1):
                up = self.parents[k]
                assert up is not None  # k > a >= 0: a level below the coarsest
                p = up[p]
            parents.append(p)
        return TaxonomyDataset(
            name=self.name,
            levels=tuple(self.levels[i] for i in idx),
            splits={s: Split(sp.texts, sp.labels[:, idx]) for s, sp in self.splits.items()},
            parents=tuple(parents),
            info=dict(self.info),
        )

    def subset(self, rows: Mapping[str, int | None], seed: int = 0) -> TaxonomyDataset:
        """A copy with at most ``rows[split]`` rows per split (stratified by the finest level, see
        :func:`stratified_sample`); splits not named are kept whole. Handy for quick runs."""
        if not isinstance(rows, Mapping):
            raise TaxonomyError(f"rows must map split names to row counts, e.g. {{'train': 1000}}, got {shown(rows)}")
        for s, n in rows.items():
            if n is not None:
                check_int(n, f"rows[{shown(s)}]", lo=1, error=TaxonomyError, fix="or None for the whole split")
        check_seed(seed, error=TaxonomyError)
        unknown = sorted(map(str, set(rows) - set(self.splits)))
        if unknown:
            raise TaxonomyError(f"{self.name} has no split {', '.join(unknown)}; splits: {', '.join(self.splits)}")
        splits = {}
        for s, sp in self.splits.items():
            keep = stratified_sample(sp.labels[:, -1], rows.get(s), seed)
            splits[s] = Split(tuple(sp.texts[i] for i in keep), sp.labels[keep], origin=(sp, keep))
        info = {**self.info, "subset": {"rows": dict(rows), "seed": seed}}
        return TaxonomyDataset(self.name, self.levels, splits, self.parents, info)

    # ------------------------------------------------------------- statistics
    def all_labels(self) -> np.ndarray:
        return np.concatenate([sp.labels for sp in self.splits.values()], axis=0)

    def stats(self) -> dict:
        """Rows per split, classes per level, entropies (bits) and branching; JSON-ready."""
        labels = self.all_labels()
        entropy = {"H_L0": entropy_bits(labels[:, 0])}
        branching: dict[str, float] = {}
        for k in range(1, self.n_levels):
            entropy[f"H_L{k}|L{k - 1}"] = conditional_entropy_bits(labels[:, k], labels[:, k - 1])
            branching[f"L{k}|L{k - 1}"] = self.levels[k].n_classes / self.levels[k - 1].n_classes
        return {
            "name": self.name,
            "levels": [{"name": lv.name, "n_classes": lv.n_classes} for lv in self.levels],
            "splits": {s: len(sp) for s, sp in self.splits.items()},
            "rows": int(labels.shape[0]),
            "entropy": entropy,
            "branching": branching,
            "info": self.info,
        }

    def fingerprint(self) -> str:
        """sha256 of the level names, class names, and every split's texts and labels."""
        h = hashlib.sha256()
        for lv in self.levels:
            h.update(json.dumps([lv.name, list(lv.classes)]).encode())
        for name in sorted(self.splits):
            sp = self.splits[name]
            h.update(name.encode())
            for t in sp.texts:
                h.update(t.encode("utf-8", "surrogatepass") + b"\0")
            h.update(np.ascontiguousarray(sp.labels, dtype=np.int64).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        lv = " -> ".join(f"{lv.name}({lv.n_classes})" for lv in self.levels)
        sp = ", ".join(f"{s}={len(x)}" for s, x in self.splits.items())
        return f"TaxonomyDataset({self.name!r}: {lv}; {sp})"


# ----------------------------------------------------------------- entropies
def entropy_bits(codes: np.ndarray) -> float:
    """Shannon entropy (bits) of the empirical distribution of integer codes."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def conditional_entropy_bits(child: np.ndarray, parent: np.ndarray) -> float:
    """H(child | parent) in bits = sum_p P(p) H(child | parent = p)."""
    child = np.asarray(child, dtype=np.int64)
    parent = np.asarray(parent, dtype=np.int64)
    n = len(child)
    total = 0.0
    for p in np.unique(parent):
        mask = parent == p
        total += mask.sum() / n * entropy_bits(child[mask])
    return float(total)


def check_levels(levels: Any, *, allow_index: bool = False) -> tuple[str | int, ...] | None:
    """``levels`` (level or column names, coarse -> fine) as a tuple, ``None`` when not given.

    One string is refused, comma-separated or not: it would be read as its characters (columns
    'd', 'o', 'm', ...); the error names the list to pass instead. Refused too: an item that is not a
    non-empty string (or, with ``allow_index``, a level number) and a name given twice."""
    if levels is None:
        return None
    if isinstance(levels, (str, bytes)):
        text = levels.decode(errors="replace") if isinstance(levels, bytes) else levels
        example = [x.strip() for x in text.split(",") if x.strip()] or ["coarse", "fine"]
        raise TaxonomyError(
            f"levels must be a list of level names, coarse -> fine, not one string ({quoted(text)}); pass {example}"
        )
    if not isinstance(levels, Iterable):
        raise TaxonomyError(f"levels must be a list of level names, coarse -> fine, got {type(levels).__name__}")
    out = tuple(levels)
    for lv in out:
        if allow_index and is_int(lv):
            continue
        if not isinstance(lv, str) or not lv.strip():
            what = "an empty name" if isinstance(lv, str) else f"a {type(lv).__name__} ({lv!r})"
            raise TaxonomyError(f"levels {list(out)!r} hold {what}; give each level by its (column) name")
    seen = [lv for i, lv in enumerate(out) if lv in out[:i]]
    if seen:
        raise TaxonomyError(f"levels {list(out)!r} name {quoted(seen[0])} twice; give each level once, coarse -> fine")
    return out
