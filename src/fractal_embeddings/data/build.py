"""Building a :class:`~.taxonomy.TaxonomyDataset` from plain rows, in four checked steps: texts and
string labels (empty texts dropped or refused), one parent per class (or the majority parent, on
request), class lists and integer codes, and a seeded stratified ``val`` split when the source has none.
The rules are stated in :mod:`~fractal_embeddings.data.taxonomy`'s docstring."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import TaxonomyError
from ..validation import check_real, check_seed, quoted, shown
from .splits import stratified_split
from .taxonomy import SPLIT_ORDER, Level, Split, TaxonomyDataset, check_levels


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
    info = dict(info or {})
    texts, labels = _string_labels(name, rows, level_names, empty, info)
    all_lab = np.concatenate([labels[s] for s in labels], axis=0)
    for k in range(1, len(level_names)):
        all_lab = _resolve_parents(name, labels, all_lab, level_names, k, on_conflict, info)
    levels, codes = _encode(labels, all_lab, level_names, class_order)
    all_codes = np.concatenate([codes[s] for s in codes], axis=0)
    parents: list[np.ndarray | None] = [None]
    for k in range(1, len(level_names)):
        p = np.full(levels[k].n_classes, -1, dtype=np.int64)
        p[all_codes[:, k]] = all_codes[:, k - 1]
        parents.append(p)
    splits = _with_val_split(
        {s: Split(tuple(texts[s]), codes[s]) for s in codes}, level_names, val_fraction, seed, info
    )
    return TaxonomyDataset(name=name, levels=tuple(levels), splits=splits, parents=tuple(parents), info=info)


def _string_labels(
    name: str, rows: Mapping, level_names: tuple[str, ...], empty: str, info: dict
) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Step 1: the kept texts and their string labels (``(n, levels)`` object arrays) per split; empty
    texts dropped (counted in ``info`` and warned about) or refused."""
    n_levels = len(level_names)
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
            stacklevel=3,
        )
    return texts, labels


def _resolve_parents(
    name: str,
    labels: dict[str, np.ndarray],
    all_lab: np.ndarray,
    level_names: tuple[str, ...],
    k: int,
    on_conflict: str,
    info: dict,
) -> np.ndarray:
    """Step 2, for level ``k``: every class has one parent in level ``k - 1``. A class under two parents
    is an error, or under ``on_conflict="majority"`` is re-attached to its most frequent parent (ties:
    the name that sorts first), rewriting the coarser labels of the rows in ``labels`` in place.
    ``all_lab``: every split's labels stacked; returned as they are, or stacked again after a rewrite."""
    pairs = Counter(zip(all_lab[:, k], all_lab[:, k - 1], strict=True))
    by_child: dict[str, Counter] = {}
    for (child, parent), n in pairs.items():
        by_child.setdefault(child, Counter())[parent] = n
    conflicts = {c: cnt for c, cnt in by_child.items() if len(cnt) > 1}
    if not conflicts:
        return all_lab
    if on_conflict == "error":
        child, cnt = sorted(conflicts.items())[0]
        (p1, n1), (p2, n2) = cnt.most_common(2)
        more = f" (and {len(conflicts) - 1} more classes)" if len(conflicts) > 1 else ""
        raise TaxonomyError(
            f"{level_names[k]} class {quoted(child)} appears under two {level_names[k - 1]} parents: "
            f"{quoted(p1)} ({n1} rows) and {quoted(p2)} ({n2} rows){more}; fix the labels or pass "
            "on_conflict='majority' (--on-conflict majority)"
        )
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
        stacklevel=3,
    )
    info.setdefault("majority_parent_rows", {})[level_names[k]] = n_rows
    return np.concatenate([labels[s] for s in labels], axis=0)


def _encode(
    labels: dict[str, np.ndarray],
    all_lab: np.ndarray,
    level_names: tuple[str, ...],
    class_order: Sequence[Sequence[str] | None] | None,
) -> tuple[list[Level], dict[str, np.ndarray]]:
    """Step 3: every level's class list (``class_order``'s, or sorted names; >= 2 classes) and the
    integer codes of every split (``all_lab``: their labels stacked)."""
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
                f"level {quoted(lname)} has {len(classes)} class ({', '.join(map(quoted, classes))}); "
                "a level needs >= 2 classes: drop it from the levels or fix the column"
            )
        index = {c: i for i, c in enumerate(classes)}
        for s, lab in labels.items():
            codes[s][:, k] = [index[c] for c in lab[:, k]]
        levels.append(Level(lname, classes))
    return levels, codes


def _with_val_split(
    splits: dict[str, Split], level_names: tuple[str, ...], val_fraction: float, seed: int, info: dict
) -> dict[str, Split]:
    """Step 4: a seeded ``val`` split stratified by the finest level, cut from ``train`` when the source
    has none; the splits in train, val, test order."""
    if "val" not in splits and "train" in splits:
        tr = splits["train"]
        mask = stratified_split(tr.labels[:, -1], val_fraction, seed)
        splits["train"] = Split(tuple(t for t, m in zip(tr.texts, mask, strict=True) if not m), tr.labels[~mask])
        splits["val"] = Split(tuple(t for t, m in zip(tr.texts, mask, strict=True) if m), tr.labels[mask])
        info["val_split"] = {"from": "train", "fraction": val_fraction, "seed": seed, "stratified_by": level_names[-1]}
    ordered = {s: splits[s] for s in SPLIT_ORDER if s in splits}
    ordered.update({s: sp for s, sp in splits.items() if s not in ordered})
    return ordered
