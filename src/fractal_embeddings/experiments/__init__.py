"""Experiments: each module is a config (its grid of :class:`~.sweep.RunSpec`) + one function that
writes run records into ``<results>/<name>/`` (``<results>/<name>-quick/`` for ``--quick``).

An experiment module has ``NAME``, a docstring (its description), ``specs(quick, datasets, seeds)``
and optionally ``after(store_root, quick, log)`` (derived files, e.g. re-scores) and ``STORE`` (the
name of another experiment whose store it shares), or ``run(store_root, quick, log)`` when it
measures something other than training runs (``latency``, ``search``). ``all`` runs every
experiment but those in ``NOT_IN_ALL`` (the objective study, and the ``search`` measurement, whose
100,000-passage corpus takes half an hour to encode on a laptop CPU).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from ..errors import FractalError
from ..store import store_dir  # noqa: F401 - re-exported: where each experiment's store is

EXPERIMENTS = {
    "main": "main",
    "ablation": "ablation",
    "synthetic": "synthetic",
    "noise": "noise",
    "capacity": "capacity",
    "three-level": "three_level",
    "cross-encoder": "cross_encoder",
    "external": "external",
    "backbone-control": "backbone_control",
    "finetune": "finetune",
    "finetune-recipe": "recipe_selection",
    "retrieval": "retrieval",
    "pareto": "pareto",
    "dual-encoder": "dual_encoder",
    "latency": "latency",
    "search": "search",
    "objective-study": "objective_study",
    "induced": "induced",
}
# long measurements with their own command, left out of `all`
NOT_IN_ALL = ("objective-study", "search")


def get_experiment(name: str) -> ModuleType:
    if name == "all":
        raise FractalError("'all' is a list of experiments, not one; use run_experiment('all', ...)")
    if name not in EXPERIMENTS:
        raise FractalError(f"unknown experiment '{name}'; use one of {', '.join([*EXPERIMENTS, 'all'])}")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")


def run_experiment(
    name: str,
    out: str | Path = "results",
    *,
    quick: bool = False,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> list[Path]:
    """Run one experiment (or ``all`` of them, objective study excepted); returns the store dirs."""
    from ..executors import get_executor
    from .sweep import run_sweep

    names = [n for n in EXPERIMENTS if n not in NOT_IN_ALL] if name == "all" else [name]
    mods = [get_experiment(n) for n in names]
    ex = get_executor(executor, workers=workers, ray_address=ray_address)
    dirs = []
    try:
        for n, mod in zip(names, mods, strict=True):
            root = store_dir(out, getattr(mod, "STORE", n), quick)  # pareto reads the retrieval runs
            log(f"experiment {n} -> {root}")
            if hasattr(mod, "run"):  # a measurement, not a grid of training runs
                mod.run(root, quick=quick, log=log)
            else:
                run_sweep(mod.specs(quick=quick, datasets=datasets, seeds=seeds), root, ex, log=log, progress=progress)
            if hasattr(mod, "after"):
                mod.after(root, quick=quick, log=log)
            dirs.append(root)
    finally:
        ex.close()
    return dirs
