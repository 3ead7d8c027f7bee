"""``induced``: coarse levels induced from the frozen encoder (``fractal taxonomy induce``) vs published ones.

Config (fixed before the grid was run): method ``fractal``, seeds 42, 123, 456, the seed's caps (at most
10,000 train and 2,000 test rows, stratified by the finest level). On each dataset with a published
coarse level (CLINC150, HWU64, TREC, 20 Newsgroups, GoEmotions; default two levels) three groupings
of the fine classes are trained: ``published`` (the dataset as is), ``induced`` (Ward linkage of the
train-split class centroids cut at K = the published level's class count) and ``random`` (a random
grouping of the fine classes with the induced groups' sizes, seeded by the run seed). On BANKING77
(flat) the induced level is trained with K chosen by the ``k="auto"`` rule (``induced auto``) and with
K = 10 (``induced k10``), whatever the rule picks, each with its random control of the same sizes.

``after`` re-scores every stored run of a dataset with a published coarse level on the same test rows
(stratified by the fine level, the record's settings) against the **published** (coarse, fine)
labels: ``<store>/published/<dataset>/<variant>/seed<N>.json``, skipped when present. For a
``published`` run this repeats the record's own numbers (a check). ``--quick``: CLINC150 and
BANKING77, one seed, the quick subsets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .sweep import QUICK_CAP, RunSpec, slug

NAME = "induced"
DATASETS = ("clinc150", "hwu64", "trec", "newsgroups20", "goemotions")
FLAT = ("banking77",)
METHOD = "fractal"
LINKAGE = "ward"
SEEDS = (42, 123, 456)
CAP = {"train": 10_000, "test": 2_000}
FLAT_K: tuple[int | str, ...] = ("auto", 10)  # BANKING77: both, decided before the runs
QUICK: dict[str, Any] = {"datasets": ("clinc150", "banking77"), "seeds": (42,), "cap": QUICK_CAP}
OUT_DIR = "published"  # the after-hook's files, under the store


def published_k(dataset: str, cap: dict | None) -> int:
    """The class count of a dataset's published coarse level (its default levels, after the cap)."""
    from .sweep import load_spec_dataset

    return load_spec_dataset(RunSpec(NAME, dataset, METHOD, 0, cap=cap)).levels[0].n_classes


def _is_flat(dataset: str) -> bool:
    from ..data.catalog import get_spec

    return get_spec(dataset).is_flat


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    ds = tuple(datasets or (QUICK["datasets"] if quick else (*DATASETS, *FLAT)))
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["cap"] if quick else CAP
    out = []
    for d in ds:
        if _is_flat(d):
            groupings: list[tuple[str, dict | None, dict]] = []
            for k in FLAT_K:
                ic = {"k": k, "method": LINKAGE, "control": None}
                groupings.append((f"induced k{k}", ic, {"grouping": "induced", "k": k}))
                groupings.append((f"random k{k}", {**ic, "control": "random"}, {"grouping": "random", "k": k}))
        else:
            k = published_k(d, cap)
            ic = {"k": k, "method": LINKAGE, "control": None}
            groupings = [
                ("published", None, {"grouping": "published", "k": k}),
                ("induced", ic, {"grouping": "induced", "k": k}),
                ("random", {**ic, "control": "random"}, {"grouping": "random", "k": k}),
            ]
        for s in sd:
            for variant, induced, tags in groupings:
                out.append(
                    RunSpec(NAME, d, METHOD, s, variant=variant, cap=cap, induced_coarse=induced, tags=dict(tags))
                )
    return out


def spec_from_record(spec: dict) -> RunSpec:
    """The :class:`RunSpec` a record's ``tags["spec"]`` was written from (JSON lists back to tuples)."""
    d = dict(spec)
    if d.get("levels") is not None:
        d["levels"] = tuple(d["levels"])
    return RunSpec(**d)


def published_file(root: str | Path, dataset: str, variant: str, seed: int) -> Path:
    return Path(root) / OUT_DIR / dataset / slug(variant) / f"seed{seed}.json"


def after(root: str | Path, quick: bool = False, log: Callable[[str], None] = print) -> None:
    """Score every stored run of a dataset with a published coarse level against that level."""
    from ..atomic import atomic_write_bytes
    from ..encoders import embed_split
    from ..errors import FractalError
    from ..evaluation import score
    from ..recording import eval_row_sample
    from ..records import canonical_json
    from ..runs import load_run
    from ..store import RunStore
    from .sweep import load_spec_dataset, shared_encoder

    store = RunStore(root)
    n = 0
    for key, rec in store.records():
        tags = rec.tags or {}
        if tags.get("experiment") != NAME or "spec" not in tags:
            continue
        spec = spec_from_record(tags["spec"])
        if _is_flat(spec.dataset):
            continue
        target = published_file(root, spec.dataset, spec.name, spec.seed)
        if target.exists():
            continue
        own = load_spec_dataset(spec)
        if own.fingerprint() != rec.dataset.fingerprint:
            raise FractalError(f"{key}: the dataset rebuilt from the spec differs from the record's; rerun the point")
        pub = load_spec_dataset(RunSpec(NAME, spec.dataset, spec.method, spec.seed, levels=spec.levels, cap=spec.cap))
        ev = rec.eval
        rows = eval_row_sample(pub, ev.split, ev.max_rows, ev.sample_seed)
        if hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest() != ev.rows_sha256:
            raise FractalError(f"{key}: the published dataset's scored rows differ from the record's")
        run = load_run(store.path(key))
        X = np.asarray(embed_split(shared_encoder(spec.encoder), pub.split(ev.split)))
        h, labels = rec.head, pub.split(ev.split).labels[rows]
        res = score(run.transform(X[rows]), labels, h.block_dim, h.n_blocks, ev.k, pub.level_names)
        variant = rec.dataset.variant or {}
        out = {
            "experiment": NAME,
            "dataset": spec.dataset,
            "variant": spec.name,
            "grouping": tags.get("grouping"),
            "seed": rec.seed,
            "run_id": rec.run_id,
            "trained_levels": list(rec.level_names),
            "scored_levels": list(pub.level_names),
            "eval": {"split": ev.split, "n_rows": len(rows), "k": ev.k, "rows_sha256": ev.rows_sha256},
            "agreement": variant.get("agreement"),
            "record_S": rec.steerability["S"],
            **res,
        }
        atomic_write_bytes(target, canonical_json(out).encode())
        n += 1
        s_pub = res["steerability"]["S"]
        log(f"{spec.dataset} / {spec.name} / seed {rec.seed}: S on {pub.level_names[0]} = {s_pub:+.4f}")
    log(f"induced: {n} runs scored against the published coarse level")
