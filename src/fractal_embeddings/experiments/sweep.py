"""The sweep runner: a grid of :class:`RunSpec` points -> a :class:`~fractal_embeddings.store.RunStore`.

Every experiment is a list of run specs plus (optionally) a summary step; this module runs them
the same way on one machine or on Ray:

1. points already in the store are skipped (a killed sweep resumes; nothing finished is redone);
2. each (dataset, encoder) the remaining points need is encoded once, here, into the embedding
   cache -- workers then only read it (``prepare``);
3. the points go to the executor; each worker loads its dataset (cached per process), trains,
   scores, and saves the run atomically into the store; the driver prints one line per run and a
   progress bar with ETA. Workers die with the driver (see :mod:`~fractal_embeddings.executors`): a
   killed sweep leaves no process behind that would go on storing runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..executors import LocalExecutor, RayExecutor, get_executor, orphaned
from ..store import RunStore

if TYPE_CHECKING:
    from ..data.taxonomy import TaxonomyDataset
    from ..encoders import Encoder


@dataclass(frozen=True)
class RunSpec:
    """One grid point. ``key`` names its directory in the experiment's store
    (``<results>/<experiment>/<dataset>/<variant>/seed<N>``)."""

    experiment: str
    dataset: str
    method: str
    seed: int
    variant: str = ""  # the grid's name for this configuration (default: the method)
    objective_options: dict = field(default_factory=dict)
    train_options: dict = field(default_factory=dict)
    levels: tuple[str, ...] | None = None
    cap: dict | None = None  # max rows per split, stratified (e.g. the seed's 10,000 train / 2,000 test)
    coarse_noise: float | None = None  # fraction of training rows with a wrong coarse label
    random_coarse: int | None = None  # replace the coarse level by a random partition into this many groups
    # replace the coarse level by one induced from the finest (data/induce.py): {"k": int | "auto",
    # "method": "ward" | "average", "control": None | "random" (a seeded random grouping of the same sizes)}
    induced_coarse: dict | None = None
    encoder: str | None = None
    n_blocks: int = 4
    block_dim: int = 64
    finetune_layers: int = 0  # > 0: the encoder's last layers train with the head (backbone control)
    retrieval: bool = False  # also score retrieval per prefix (test rows as queries, train split as corpus)
    finetune: dict = field(default_factory=dict)  # non-empty: `fractal finetune` (whole encoder), these options
    eval_split: str = "test"  # the split the run is scored on (a recipe is chosen on "val")
    tags: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.variant or self.method

    @property
    def key(self) -> str:
        return f"{self.dataset}/{slug(self.name)}/seed{self.seed}"

    def data_key(self) -> tuple:
        return (
            self.dataset,
            self.levels,
            tuple(sorted((self.cap or {}).items())),
            self.coarse_noise,
            self.random_coarse,
            self.seed if (self.coarse_noise or self.random_coarse) else None,
            *self._induced_key(),
        )

    def _induced_key(self) -> tuple:
        ic = self.induced_coarse
        if not ic:
            return ()
        return (tuple(sorted(ic.items())), self.encoder, self.seed if ic.get("control") else None)

    def as_dict(self) -> dict:
        return asdict(self)


def methods_grid(
    experiment: str, seeds_by_dataset: Mapping[str, Iterable[int]], methods: Iterable[str], cap: dict | None
) -> list[RunSpec]:
    """Every method on every dataset with that dataset's seeds (seed-major within a dataset)."""
    return [
        RunSpec(experiment, d, m, s, cap=cap) for d, seeds in seeds_by_dataset.items() for s in seeds for m in methods
    ]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-.=" else "_" for c in name)


# rows per split of a --quick grid point (a smoke run: minutes for a whole experiment on 2 cores)
QUICK_CAP = {"train": 1_000, "val": 300, "test": 600}

_DATA: dict = {}
_ENCODERS: dict = {}


def load_spec_dataset(spec: RunSpec) -> TaxonomyDataset:
    """The dataset of a spec, after its cap / noise / synthetic coarse level (cached per process)."""
    from ..data import load_dataset
    from ..data.variants import with_coarse_noise, with_random_coarse

    key = spec.data_key()
    if key not in _DATA:
        base = (spec.dataset, spec.levels)
        if base not in _DATA:
            _DATA[base] = load_dataset(spec.dataset, levels=spec.levels)
        ds = _DATA[base]
        if spec.cap:
            ds = ds.subset(spec.cap, seed=0)
        if spec.random_coarse:
            ds = with_random_coarse(ds, spec.random_coarse, seed=spec.seed)
        if spec.induced_coarse:
            ds = induced_dataset(ds, spec)
        if spec.coarse_noise:
            ds = with_coarse_noise(ds, spec.coarse_noise, seed=spec.seed)
        _DATA[key] = ds
    return _DATA[key]


def induced_dataset(ds: TaxonomyDataset, spec: RunSpec) -> TaxonomyDataset:
    """``spec.induced_coarse`` applied to ``ds`` (already capped): its finest level grouped from the
    train split's vectors of the sweep's shared encoder, or (``control: "random"``) a seeded random
    grouping of the same sizes."""
    from ..induce import induce_level, random_grouping_like, with_induced_level

    ic = dict(spec.induced_coarse or {})
    unknown = sorted(set(ic) - {"k", "method", "control"})
    if unknown or ic.get("control") not in (None, "random"):
        raise ValueError(f"induced_coarse takes k, method and control (None or 'random'), got {ic}")
    induced = induce_level(ds, k=ic["k"], method=ic.get("method", "ward"), encoder=shared_encoder(spec.encoder))
    if ic.get("control") == "random":
        return random_grouping_like(ds, induced, seed=spec.seed)
    return with_induced_level(ds, induced)


def shared_encoder(name: str | None) -> Encoder:
    """The encoder ``name`` (default: the library's default encoder), built once per process and shared."""
    from ..encoders import Encoder

    if name not in _ENCODERS:
        _ENCODERS[name] = Encoder(name) if name else Encoder()
    return _ENCODERS[name]


def run_spec(store_root: str, spec: RunSpec) -> dict:
    """Train, score and store one point (runs in a worker); returns a small summary."""
    from ..runs import train

    store = RunStore(store_root)
    if store.has(spec.key):
        return {"key": spec.key, "status": "done before"}
    ds = load_spec_dataset(spec)
    if spec.finetune:
        from ..finetune import finetune

        run = finetune(
            ds,
            spec.method,
            model=spec.encoder or "minilm-l6",
            seed=spec.seed,
            n_blocks=spec.n_blocks,
            block_dim=spec.block_dim,
            objective_options=spec.objective_options,
            eval_split=spec.eval_split,
            show_progress=False,
            **spec.finetune,
        )
    else:
        run = train(
            ds,
            spec.method,
            seed=spec.seed,
            encoder=shared_encoder(spec.encoder),
            n_blocks=spec.n_blocks,
            block_dim=spec.block_dim,
            objective_options=spec.objective_options,
            train_options=spec.train_options,
            finetune_layers=spec.finetune_layers,
            retrieval=spec.retrieval,
            eval_split=spec.eval_split,
        )
    run.record.tags = {"experiment": spec.experiment, "variant": spec.name, "spec": spec.as_dict(), **spec.tags}
    if orphaned():  # the driver was killed meanwhile: store nothing more (a resumed sweep redoes this point)
        os._exit(1)
    stored = store.put(spec.key, run)
    return {
        "key": spec.key,
        "status": "stored" if stored else "taken by another sweep",
        "S": run.record.steerability["S"],
        "train_s": run.record.timing["train_s"],
    }


def prepare(specs: list[RunSpec], log: Callable[[str], None] = print) -> None:
    """Encode, once and here, every split the specs will read (fills the cache for the workers)."""
    from ..encoders import embed_split

    seen = set()
    for spec in specs:
        key = (spec.dataset, spec.levels, tuple(sorted((spec.cap or {}).items())), spec.encoder, spec.finetune_layers)
        if key in seen:
            continue
        seen.add(key)
        ds = load_spec_dataset(spec)
        enc = shared_encoder(spec.encoder)
        for name, sp in ds.splits.items():
            root, rows = sp.source_rows()
            if not enc.is_cached(sp.texts) and not enc.is_cached(root.texts):
                log(f"encoding {spec.dataset}/{name} ({len(sp.texts):,} texts) with {enc.resolved.name}")
                embed_split(enc, sp)
            if spec.finetune_layers:
                from ..backbone import split_states

                split_states(enc, sp, spec.finetune_layers)  # cached token states for the workers


def run_sweep(
    specs: list[RunSpec],
    store: RunStore | str | Path,
    executor: LocalExecutor | RayExecutor | None = None,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> list[dict]:
    """Run every spec not yet in ``store``; returns the summaries of the runs done now."""
    from tqdm.auto import tqdm

    store = store if isinstance(store, RunStore) else RunStore(store)
    executor = executor or LocalExecutor()
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"grid has duplicate keys: {dup[:3]}")
    store.clean()
    todo = [s for s in specs if not store.has(s.key)]
    log(
        f"{len(specs) - len(todo)} of {len(specs)} runs already in {store.root}; {len(todo)} to do "
        f"({executor.name} executor)"
    )
    if not todo:
        return []
    prepare(todo, log=log)
    done = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="run", disable=not progress, smoothing=0.1)
    for res in executor.imap_unordered(run_spec, [(str(store.root), s) for s in todo]):
        done.append(res)
        line = f"{res['key']}: {res['status']}"
        if "S" in res:
            line += f", S = {res['S']:+.4f}, train {res['train_s']:.1f} s"
        (bar.write if progress else log)(line)
        bar.update()
    bar.close()
    log(f"{len(done)} runs in {time.perf_counter() - t0:.0f} s")
    return done


def sweep(
    specs: list[RunSpec],
    out: RunStore | str | Path,
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> list[dict]:
    """:func:`run_sweep` with an executor built from its name (and closed afterwards)."""
    ex = get_executor(executor, workers=workers, ray_address=ray_address)
    try:
        return run_sweep(specs, out, ex, log=log, progress=progress)
    finally:
        ex.close()
