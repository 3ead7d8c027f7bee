"""Induced hierarchies for flat labels: group the classes of one level into K coarse groups.

>>> from fractal_embeddings.data import load_dataset
>>> from fractal_embeddings.induce import induce_level, with_induced_level
>>> ds = load_dataset("banking77")                      # flat: one level, 77 intents
>>> induced = induce_level(ds, k="auto")                # K picked by the rule below
>>> two_level = with_induced_level(ds, induced)         # intent_group<K> -> intent: trainable

How: the frozen encoder embeds the **train** split only (cached vectors); each class of the level gets
its centroid (the mean of its rows' vectors); the centroids are clustered hierarchically with scipy
(``ward``: Ward linkage on the L2-normalised centroids; ``average``: average linkage on cosine
distances) and the tree is cut into exactly K groups. Nothing is random: the same vectors give the
same groups. Groups are numbered by their first class (class code order) and named
``g<i>:<the group's most central class>`` (highest cosine to the group's mean normalised centroid;
ties: the lower class code), e.g. ``g03:transfer_into_account``.

``k="auto"`` picks K by this rule (stated before any result was looked at): **the K in
[2, min(n - 1, 2 * ceil(sqrt(n)))] (n: classes of the level) that maximises the mean silhouette, with
cosine distance, of the class centroids grouped by the chosen linkage cut at K; ties go to the smaller
K.** The scores of every candidate K are kept in :attr:`InducedLevel.auto`.

Agreement with a published coarser level (:func:`agreement`) is computed over the **classes** of the
grouped level, one item per class: its induced group vs its published ancestor (sklearn's
``adjusted_rand_score`` and ``normalized_mutual_info_score``), not over rows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write_bytes
from .data.taxonomy import Level, TaxonomyDataset
from .data.variants import with_coarse_level
from .encoders import Encoder, as_encoder, embed_split
from .errors import OutputPathError, TaxonomyError
from .validation import check_output_file

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("ward", "average")
RESERVED_COLUMNS = ("text", "split")  # columns of the written file besides the levels
AUTO_RULE = (
    "K in [2, min(n-1, 2*ceil(sqrt(n)))] maximising the mean cosine silhouette of the class centroids "
    "under the chosen linkage; ties -> smaller K"
)


@dataclass(frozen=True)
class InducedLevel:
    """A grouping of the classes of level ``level`` into ``k`` groups (see the module docstring).

    ``parent[c]`` is the group of class ``c`` (code order of ``fine_classes``); ``groups`` are the
    group names; ``auto`` (``k="auto"`` only) holds the rule, the candidate Ks and their silhouettes."""

    name: str
    level: str
    k: int
    method: str
    fine_classes: tuple[str, ...]
    groups: tuple[str, ...]
    parent: np.ndarray = field(compare=False, repr=False)
    auto: dict | None = field(default=None, compare=False)
    encoder: dict = field(default_factory=dict, compare=False)
    train_rows: int = 0

    def sizes(self) -> list[int]:
        """Classes per group, in group order."""
        return np.bincount(self.parent, minlength=self.k).astype(int).tolist()

    def members(self) -> dict[str, list[str]]:
        """``{group name: [class names]}`` (classes in code order)."""
        return {g: [self.fine_classes[c] for c in np.flatnonzero(self.parent == i)] for i, g in enumerate(self.groups)}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what a record's ``info["variant"]`` and ``fractal taxonomy induce --json`` keep."""
        return {
            "name": self.name,
            "level": self.level,
            "k": self.k,
            "method": self.method,
            "sizes": self.sizes(),
            "groups": self.members(),
            "auto": self.auto,
            "encoder": self.encoder,
            "train_rows": self.train_rows,
        }


def _check_k(k: int | str, n: int, level: str) -> None:
    if isinstance(k, str):
        if k != "auto":
            raise TaxonomyError(f"k must be an integer or 'auto', got {k!r}")
        return
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TaxonomyError(f"k must be an integer or 'auto', got {k!r}")
    if not 2 <= k < n:
        raise TaxonomyError(f"k must be in [2, {n - 1}] for the {n} classes of level '{level}', got {k}")


def check_level_name(name: str, dataset: TaxonomyDataset) -> None:
    """Refuse (one line, before any encoding) a name the induced level can't have: empty, padded with
    spaces, holding a comma (``--levels a,b`` splits on commas), a column of the written file (text,
    split), or a level the dataset already has (its own levels are checked against text and split too)."""
    if not name.strip():
        raise TaxonomyError("the induced level's name is empty; give a name (--name)")
    if name != name.strip() or "," in name:
        raise TaxonomyError(
            f"the induced level's name {name!r} has a comma or surrounding spaces, which --levels can't name; "
            "give another name (--name)"
        )
    if name in dataset.level_names:
        raise TaxonomyError(
            f"{dataset.name} already has a level '{name}'; give the induced level another name (--name)"
        )
    check_not_reserved(dataset, name, fix=" (--name)")


def check_not_reserved(dataset: TaxonomyDataset, name: str, fix: str = "") -> None:
    """Refuse (one line) a level of ``dataset`` or the induced level ``name`` named like a column of the
    written file besides the levels (:data:`RESERVED_COLUMNS`); ``fix`` ends the message."""
    clash = [c for c in (*dataset.level_names, name) if c in RESERVED_COLUMNS]
    if clash:
        raise TaxonomyError(
            f"level name {clash[0]!r} is also a column of the written file (text, split); rename the level{fix}"
        )


def auto_range(n: int) -> range:
    """The candidate Ks of ``k="auto"`` for ``n`` classes: 2 .. min(n - 1, 2 * ceil(sqrt(n)))."""
    return range(2, min(n - 1, 2 * math.ceil(math.sqrt(n))) + 1)


def induce_level(
    dataset: TaxonomyDataset,
    *,
    level: str | int | None = None,
    k: int | str,
    method: str = "ward",
    encoder: Encoder | str | None = None,
    name: str | None = None,
) -> InducedLevel:
    """Group the classes of ``level`` (default: the finest) into ``k`` groups (an integer, or
    ``"auto"``: the rule in the module docstring) by ``method`` (``ward`` or ``average``) linkage of
    their train-split centroids under the frozen ``encoder`` (default: the library's default encoder).
    ``name``: the new level's name (default ``<level>_group<K>``). Every argument is checked before
    anything is encoded (one-line :class:`~fractal_embeddings.errors.TaxonomyError`)."""
    from scipy.cluster.hierarchy import linkage

    if method not in METHODS:
        raise TaxonomyError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    li = dataset.level_index(-1 if level is None else level)
    lv = dataset.levels[li]
    n = lv.n_classes
    if n < 3:
        raise TaxonomyError(f"level '{lv.name}' has {n} classes; grouping them needs at least 3")
    _check_k(k, n, lv.name)
    new_name = name if name is not None else f"{lv.name}_group{k}"
    check_level_name(str(new_name), dataset)
    if "train" not in dataset.splits or len(dataset.split("train")) == 0:
        raise TaxonomyError(f"{dataset.name} has no train rows; the induced level is computed from the train split")
    train = dataset.split("train")
    codes = train.labels[:, li]
    counts = np.bincount(codes, minlength=n)
    if (counts == 0).any():
        missing = [lv.classes[c] for c in np.flatnonzero(counts == 0)]
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise TaxonomyError(
            f"level '{lv.name}' classes {', '.join(map(repr, missing[:3]))}{more} have no train rows; every "
            "class needs train rows for its centroid"
        )

    enc = as_encoder(encoder)
    unit = _unit_centroids(np.asarray(embed_split(enc, train), dtype=np.float64), codes, counts)
    Z = linkage(unit, method="ward", metric="euclidean") if method == "ward" else linkage(unit, "average", "cosine")
    auto = None
    if k == "auto":
        auto = _choose_k(Z, unit)
        k_int = auto["chosen"]
        if name is None:
            new_name = f"{lv.name}_group{k_int}"
            check_level_name(new_name, dataset)
    else:
        k_int = int(k)
    parent, groups = _cut(Z, unit, k_int, lv.classes)
    ident = enc.identity()
    return InducedLevel(
        name=str(new_name),
        level=lv.name,
        k=k_int,
        method=method,
        fine_classes=lv.classes,
        groups=tuple(groups),
        parent=parent,
        auto=auto,
        encoder={"name": ident.name, "fingerprint": ident.fingerprint},
        train_rows=len(train),
    )


def _unit_centroids(X: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The L2-normalised mean vector of every class (rows of ``X`` grouped by ``codes``)."""
    centroids = np.zeros((len(counts), X.shape[1]))
    np.add.at(centroids, codes, X)
    centroids /= counts[:, None]
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return centroids / np.where(norms > 0, norms, 1.0)


def _choose_k(Z: np.ndarray, unit: np.ndarray) -> dict[str, Any]:
    """``k="auto"``: the K of :func:`auto_range` whose cut of the linkage ``Z`` has the highest mean
    cosine silhouette of the centroids (ties -> the smaller K), with every candidate's score."""
    from scipy.cluster.hierarchy import cut_tree
    from sklearn.metrics import silhouette_score

    ks = list(auto_range(len(unit)))
    cuts = cut_tree(Z, n_clusters=ks)
    scores = [float(silhouette_score(unit, cuts[:, i], metric="cosine")) for i in range(len(ks))]
    best = ks[int(np.argmax(scores))]  # argmax: the first maximum, i.e. ties -> the smaller K
    return {
        "rule": AUTO_RULE,
        "candidates": [ks[0], ks[-1]],
        "silhouette": {str(kk): v for kk, v in zip(ks, scores, strict=True)},  # JSON keys
        "chosen": int(best),
    }


def _cut(Z: np.ndarray, unit: np.ndarray, k: int, classes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The linkage ``Z`` cut into ``k`` groups: every class's group (numbered by its first class in code
    order) and every group's name (``g<i>:<its most central class>``)."""
    from scipy.cluster.hierarchy import cut_tree

    raw = cut_tree(Z, n_clusters=k).ravel()
    order = sorted(np.unique(raw).tolist(), key=lambda g: int(np.flatnonzero(raw == g)[0]))
    parent = np.empty(len(unit), dtype=np.int64)
    for i, g in enumerate(order):
        parent[raw == g] = i
    width = len(str(k - 1))
    groups = []
    for i in range(k):
        members = np.flatnonzero(parent == i)
        mean = unit[members].mean(axis=0)
        central = int(members[int(np.argmax(unit[members] @ mean))])  # argmax: ties -> the lower code
        groups.append(f"g{i:0{width}d}:{classes[central]}")
    return parent, groups


def _fine_index(dataset: TaxonomyDataset, induced: InducedLevel) -> int:
    li = dataset.level_index(induced.level)
    if dataset.levels[li].classes != induced.fine_classes:
        raise TaxonomyError(
            f"the induced level groups other '{induced.level}' classes than {dataset.name} has; "
            "induce it on this dataset"
        )
    return li


def ancestors(dataset: TaxonomyDataset, level: int, above: int) -> np.ndarray:
    """The class of level ``above`` (< ``level``) each class of ``level`` descends from."""
    p = np.arange(dataset.levels[level].n_classes)
    for kk in range(level, above, -1):
        up = dataset.parents[kk]
        assert up is not None  # kk > above >= 0: a level below the coarsest
        p = up[p]
    return p


def agreement(dataset: TaxonomyDataset, induced: InducedLevel) -> dict[str, dict[str, float]]:
    """``{coarser published level: {"ari", "nmi"}}``: the induced groups vs each level above the grouped
    one, over its classes (one item per class), by sklearn's adjusted Rand index and NMI."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    li = _fine_index(dataset, induced)
    out = {}
    for up in range(li):
        pub = ancestors(dataset, li, up)
        out[dataset.levels[up].name] = {
            "ari": float(adjusted_rand_score(pub, induced.parent)),
            "nmi": float(normalized_mutual_info_score(pub, induced.parent)),
        }
    return out


def with_induced_level(dataset: TaxonomyDataset, induced: InducedLevel) -> TaxonomyDataset:
    """A two-level dataset: the induced groups above the level they group; same texts and splits.
    ``info["variant"]``: kind ``induced``, the grouping (:meth:`InducedLevel.as_dict`: k, method,
    level, the classes of every group) and ``agreement`` with each published coarser level."""
    li = _fine_index(dataset, induced)
    variant = {"kind": "induced", **induced.as_dict(), "agreement": agreement(dataset, induced)}
    return with_coarse_level(dataset, Level(induced.name, induced.groups), induced.parent, variant, li)


def random_grouping_like(dataset: TaxonomyDataset, induced: InducedLevel, seed: int) -> TaxonomyDataset:
    """The control: a random partition (``numpy.random.default_rng(seed)``) of the same classes into
    groups of the same sizes as ``induced``'s, as a two-level dataset (level ``<level>_random<K>``,
    groups ``r0..``); ``info["variant"]`` laid out as :func:`with_induced_level`'s, kind
    ``random-like-induced``."""
    li = _fine_index(dataset, induced)
    sizes = induced.sizes()
    perm = np.random.default_rng(seed).permutation(len(induced.fine_classes))
    parent = np.empty(len(perm), dtype=np.int64)
    parent[perm] = np.repeat(np.arange(induced.k), sizes)
    width = len(str(induced.k - 1))
    groups = tuple(f"r{i:0{width}d}" for i in range(induced.k))
    random = InducedLevel(
        name=f"{induced.level}_random{induced.k}",
        level=induced.level,
        k=induced.k,
        method=induced.method,
        fine_classes=induced.fine_classes,
        groups=groups,
        parent=parent,
        encoder=induced.encoder,
        train_rows=induced.train_rows,
    )
    variant = {
        "kind": "random-like-induced",
        **random.as_dict(),
        "seed": seed,
        "like": induced.name,
        "agreement": agreement(dataset, random),
    }
    return with_coarse_level(dataset, Level(random.name, groups), parent, variant, li)


# ------------------------------------------------------------------ the file `fractal taxonomy induce` writes


def induced_columns(dataset: TaxonomyDataset, induced: InducedLevel) -> list[str]:
    """The columns of :func:`induced_frame`: text, split, the levels with the induced one before its level."""
    li = _fine_index(dataset, induced)
    check_not_reserved(dataset, induced.name)  # a grouping built without induce_level was never checked
    return ["text", "split", *dataset.level_names[:li], induced.name, *dataset.level_names[li:]]


def induced_frame(dataset: TaxonomyDataset, induced: InducedLevel) -> pd.DataFrame:
    """Every row of ``dataset`` as a table: ``text``, ``split`` and every level (coarse -> fine), the
    induced column inserted just before the level it groups. Read back as a user file (its ``split``
    column keeps the splits the grouping was computed on), e.g. ``--levels <induced>,<level>``."""
    import pandas as pd

    li = _fine_index(dataset, induced)
    cols: dict[str, list[str]] = {c: [] for c in induced_columns(dataset, induced)}
    for split, sp in dataset.splits.items():
        cols["text"] += list(sp.texts)
        cols["split"] += [split] * len(sp)
        for j, lv in enumerate(dataset.levels):
            cols[lv.name] += [lv.classes[c] for c in sp.labels[:, j]]
        cols[induced.name] += [induced.groups[g] for g in induced.parent[sp.labels[:, li]]]
    return pd.DataFrame(cols)


def check_induced_out(
    path: str | os.PathLike, overwrite: bool = False, source: str | os.PathLike | None = None
) -> Path:
    """Raise (one line) unless ``path`` may become the induced CSV: :func:`check_output_file`'s rule,
    and not the file the dataset was read from (``source``). Creates nothing; made before any encoding."""
    try:
        same = source is not None and Path(source).is_file() and Path(path).resolve() == Path(source).resolve()
    except (OSError, ValueError, TypeError):
        same = False
    if same:
        raise OutputPathError(f"--out {path} is the input file; write the induced file under another name")
    return check_output_file(path, overwrite)


def write_induced_csv(
    dataset: TaxonomyDataset, induced: InducedLevel, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """:func:`induced_frame` written to ``path`` (UTF-8 CSV) in one step: a temporary file in the same
    folder, renamed into place (:func:`~fractal_embeddings.atomic.atomic_write_bytes`)."""
    out = check_induced_out(path, overwrite, dataset.info.get("file"))
    data = induced_frame(dataset, induced).to_csv(index=False).encode("utf-8")
    target = Path(os.path.abspath(out))
    if overwrite:
        atomic_write_bytes(target, data)
        return out
    # no replacing: write a temporary file, then link it to the name (fails if the name appeared meanwhile)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        atomic_write_bytes(tmp, data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise OutputPathError(
                f"{out} already exists; choose another --out or pass --overwrite to replace it"
            ) from None
        except OSError:  # a file system without hard links: the check above is all there is
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return out
