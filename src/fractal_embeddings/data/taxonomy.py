"""The taxonomy data model: texts with N label levels (coarse -> fine), validated parent maps, splits.

A :class:`TaxonomyDataset` is built once from plain rows by :func:`build_dataset`, which

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
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TaxonomyError
from ..validation import check_int, check_real, check_seed, is_int, shown
from .splits import stratified_sample, stratified_split

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


# ------------------------------------------------------------------- builder
def _clean_texts(split: str, texts: Sequence, empty: str) -> tuple[list[str], np.ndarray]:
    keep = np.ones(len(texts), dtype=bool)
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            if t is None or (isinstance(t, float) and math.isnan(t)):
                t = ""
            else:
                raise TaxonomyError(f"{split} row {i}: text must be a string, got {type(t).__name__}")
        if not t.strip():
            keep[i] = False
        out.append(t)
    n_empty = int((~keep).sum())
    if n_empty and empty == "error":
        first = int(np.flatnonzero(~keep)[0])
        raise TaxonomyError(
            f"{split}: {n_empty} empty or whitespace-only texts (first at row {first}); remove them or "
            "pass empty='drop'"
        )
    return [t for t, k in zip(out, keep, strict=True) if k], keep


def _q(value: Any, limit: int = 60) -> str:
    """A user's label or name inside a one-line message: quoted, escaped (no raw newlines), shortened."""
    r = repr(str(value))
    return r if len(r) <= limit else r[: limit - 4] + "...'"


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
            f"levels must be a list of level names, coarse -> fine, not one string ({_q(text)}); pass {example}"
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
        raise TaxonomyError(f"levels {list(out)!r} name {_q(seen[0])} twice; give each level once, coarse -> fine")
    return out


def _check_build_args(
    rows: Any, level_names: Any, on_conflict: Any, empty: Any, val_fraction: Any, seed: Any
) -> tuple[str, ...]:
    """:func:`build_dataset`'s arguments, checked before any row is read; returns the level names."""
    for opt, value, allowed in (
        ("on_conflict", on_conflict, ("error", "majority")),
        ("empty", empty, ("drop", "error")),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise TaxonomyError(f"{opt} must be {' or '.join(map(repr, allowed))}, got {shown(value)}")
    names = check_levels(level_names)
    if not names:
        raise TaxonomyError("a dataset needs at least one label level")
    check_real(val_fraction, "val_fraction", lo=0.0, lo_open=True, error=TaxonomyError)
    if not val_fraction < 1.0:
        raise TaxonomyError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    check_seed(seed, error=TaxonomyError)
    if not isinstance(rows, Mapping):
        raise TaxonomyError(f"rows must map each split name to (texts, label_rows), got {type(rows).__name__}")
    for split, pair in rows.items():
        if not isinstance(split, str):
            raise TaxonomyError(f"split names must be strings, got {shown(split)}")
        if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
            raise TaxonomyError(f"rows[{split!r}] must be a (texts, label_rows) pair")
        for what, seq in zip(("texts", "label_rows"), pair, strict=True):
            if isinstance(seq, (str, bytes)) or not isinstance(seq, (Sequence, np.ndarray)):
                raise TaxonomyError(f"rows[{split!r}]: {what} must be a list, got {type(seq).__name__}")
        for i, row in enumerate(pair[1]):
            if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
                raise TaxonomyError(
                    f"{split} row {i}: the labels must be a list (one label per level), got {shown(row)}"
                )
    return tuple(str(n) for n in names)


def build_dataset(
    name: str,
    rows: Mapping[str, tuple[Sequence[str | None], Sequence[Sequence]]],
    level_names: Sequence[str],
    *,
    class_order: Sequence[Sequence[str] | None] | None = None,
    on_conflict: str = "error",
    empty: str = "drop",
    val_fraction: float = 0.1,
    seed: int = 0,
    info: dict | None = None,
) -> TaxonomyDataset:
    """Build and validate a dataset from ``{split: (texts, label_rows)}``.

    ``label_rows[i]`` holds one label per level, coarse -> fine. ``class_order`` optionally fixes the
    class list (code order) of a level; by default classes are sorted by name.
    ``on_conflict``: ``"error"`` (default) or ``"majority"``; ``empty``: ``"drop"`` (default,
    counted in ``info["dropped_empty"]`` and warned about) or ``"error"``.
    """
    level_names = _check_build_args(rows, level_names, on_conflict, empty, val_fraction, seed)
    n_levels = len(level_names)
    info = dict(info or {})

    # 1. texts and string labels per split
    texts: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    for split, (split_texts, split_labels) in rows.items():
        if len(split_texts) != len(split_labels):
            raise TaxonomyError(f"{split}: {len(split_texts)} texts but {len(split_labels)} label rows")
        kept_texts, keep = _clean_texts(split, split_texts, empty)
        lab = np.empty((len(split_labels), n_levels), dtype=object)
        for i, row in enumerate(split_labels):
            if len(row) != n_levels:
                raise TaxonomyError(f"{split} row {i}: {len(row)} labels for {n_levels} levels")
            for k, v in enumerate(row):
                empty_label = v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""
                if empty_label and keep[i]:
                    raise TaxonomyError(
                        f"{split} row {i}: empty label at level '{level_names[k]}'; every row needs a "
                        "label at every level"
                    )
                lab[i, k] = str(v).strip() if v is not None else ""
        texts[split] = kept_texts
        labels[split] = lab[keep]
        if (~keep).any():
            dropped[split] = int((~keep).sum())
    if not texts or sum(len(t) for t in texts.values()) == 0:
        raise TaxonomyError(f"{name}: no rows with text")
    if dropped:
        info["dropped_empty"] = dropped
        warnings.warn(
            f"{name}: dropped {sum(dropped.values())} empty or whitespace-only texts ({dropped})",
            stacklevel=2,
        )

    # 2. parent maps, validated level by level (coarse labels may be rewritten under "majority")
    all_lab = np.concatenate([labels[s] for s in labels], axis=0)
    for k in range(1, n_levels):
        pairs = Counter(zip(all_lab[:, k], all_lab[:, k - 1], strict=True))
        by_child: dict[str, Counter] = {}
        for (child, parent), n in pairs.items():
            by_child.setdefault(child, Counter())[parent] = n
        conflicts = {c: cnt for c, cnt in by_child.items() if len(cnt) > 1}
        if not conflicts:
            continue
        if on_conflict == "error":
            child, cnt = sorted(conflicts.items())[0]
            (p1, n1), (p2, n2) = cnt.most_common(2)
            more = f" (and {len(conflicts) - 1} more classes)" if len(conflicts) > 1 else ""
            raise TaxonomyError(
                f"{level_names[k]} class {_q(child)} appears under two {level_names[k - 1]} parents: "
                f"{_q(p1)} ({n1} rows) and {_q(p2)} ({n2} rows){more}; fix the labels or pass "
                "on_conflict='majority' (--on-conflict majority)"
            )
        # majority parent (ties -> the parent name that sorts first), rewrite every coarser level
        fixed = {c: sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for c, cnt in conflicts.items()}
        # levels above k-1 are already consistent: a rewritten parent brings its own ancestors
        ancestors = [dict(zip(all_lab[:, kk], all_lab[:, kk - 1], strict=True)) for kk in range(1, k)]
        n_rows = 0
        for lab in labels.values():
            for lab_row in lab:
                if lab_row[k] in fixed and lab_row[k - 1] != fixed[lab_row[k]]:
                    n_rows += 1
                    lab_row[k - 1] = fixed[lab_row[k]]
                    for kk in range(k - 1, 0, -1):
                        lab_row[kk - 1] = ancestors[kk - 1][lab_row[kk]]
        warnings.warn(
            f"{name}: {len(fixed)} {level_names[k]} classes had several {level_names[k - 1]} parents; "
            f"kept the majority parent and relabelled {n_rows} rows",
            stacklevel=2,
        )
        info.setdefault("majority_parent_rows", {})[level_names[k]] = n_rows
        all_lab = np.concatenate([labels[s] for s in labels], axis=0)

    # 3. class lists and integer codes
    levels = []
    codes = {s: np.zeros(lab.shape, dtype=np.int64) for s, lab in labels.items()}
    for k, lname in enumerate(level_names):
        present = set(all_lab[:, k].tolist())
        order = class_order[k] if class_order is not None and class_order[k] is not None else None
        if order is not None:
            missing = present - set(order)
            if missing:
                raise TaxonomyError(f"level '{lname}': labels {sorted(missing)[:5]} are not in the class list")
            classes = tuple(c for c in order if c in present)
        else:
            classes = tuple(sorted(present))
        if len(classes) < 2:
            raise TaxonomyError(
                f"level {_q(lname)} has {len(classes)} class ({', '.join(map(_q, classes))}); "
                "a level needs >= 2 classes: drop it from the levels or fix the column"
            )
        index = {c: i for i, c in enumerate(classes)}
        for s, lab in labels.items():
            codes[s][:, k] = [index[c] for c in lab[:, k]]
        levels.append(Level(lname, classes))

    parents: list[np.ndarray | None] = [None]
    all_codes = np.concatenate([codes[s] for s in codes], axis=0)
    for k in range(1, n_levels):
        p = np.full(levels[k].n_classes, -1, dtype=np.int64)
        p[all_codes[:, k]] = all_codes[:, k - 1]
        parents.append(p)

    # 4. splits (a seeded stratified val split from train when the source has none)
    splits = {s: Split(tuple(texts[s]), codes[s]) for s in codes}
    if "val" not in splits and "train" in splits:
        tr = splits["train"]
        mask = stratified_split(tr.labels[:, -1], val_fraction, seed)
        splits["train"] = Split(tuple(t for t, m in zip(tr.texts, mask, strict=True) if not m), tr.labels[~mask])
        splits["val"] = Split(tuple(t for t, m in zip(tr.texts, mask, strict=True) if m), tr.labels[mask])
        info["val_split"] = {"from": "train", "fraction": val_fraction, "seed": seed, "stratified_by": level_names[-1]}
    ordered = {s: splits[s] for s in SPLIT_ORDER if s in splits}
    ordered.update({s: sp for s, sp in splits.items() if s not in ordered})
    return TaxonomyDataset(name=name, levels=tuple(levels), splits=ordered, parents=tuple(parents), info=info)
