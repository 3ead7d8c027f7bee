"""The objective study: which way of shaping the prefix geometry gives steerability at no accuracy cost.

Config: the variants below x ``DATASETS`` x ``SEEDS``. Every aligned variant is paired with its
matched MRL control (same objective, head, trainer and data; the finest level at every prefix).
``run`` writes one run record per grid point into ``<out>/<dataset>/<variant>/seed<N>/`` and skips
points already done (a killed study resumes where it stopped). ``docs/objective-study.md`` is
generated from those records only (:mod:`fractal_embeddings.report.objective_study`).

Selection rule (written here before the grid was run; variants were designed from single-seed CLINC150 probes):
the winner is the aligned variant with the highest mean S over the five datasets, subject to its full-length
fine-level k-NN accuracy being within 1 pp of its matched MRL control on every dataset (means over seeds); ties go
to the cheaper one (median training seconds). The winner's configuration is the library's default method
``fractal``; ``v5-paper`` stays available unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sweep import RunSpec, slug

NAME = "objective-study"
DATASETS = ("clinc150", "trec", "hwu64", "goemotions", "newsgroups20")
SEEDS = (42, 123, 456, 789, 1024)
QUICK: dict[str, Any] = {
    "datasets": ("clinc150", "trec"),
    "seeds": (42,),
    "subset": {"train": 2000, "val": 500, "test": 500},
}


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    objective_options: dict = field(default_factory=dict)
    train_options: dict = field(default_factory=dict)
    control_of: str | None = None  # the aligned variant this one is the matched MRL control of
    datasets: tuple[str, ...] | None = None  # None: every study dataset
    note: str = ""


def _pair(name: str, method: str, control: str, note: str, **options: Any) -> list[Variant]:
    train = options.pop("train_options", {})
    return [
        Variant(name, method, dict(options), dict(train), None, None, note),
        Variant(f"{name} [mrl]", control, dict(options), dict(train), name, None, "matched MRL control"),
    ]


TUNED = {"lr": 1e-3, "batch_size": 128, "epochs": 10}
# every switch spelled out, so a later change of the `fractal` defaults can't change a variant
FRACTAL_OFF = {
    "contrastive_weight": 0.0,
    "contrastive_on": "all",
    "contrastive": "supcon",
    "stop_grad": False,
    "refine": False,
    "head": "linear",
    "block_norm": False,
}
BEST = {**FRACTAL_OFF, "contrastive_weight": 1.0, "stop_grad": True, "block_norm": True, "head": "mlp"}
VARIANTS: tuple[Variant, ...] = tuple(
    _pair("v5-paper", "v5-paper", "mrl", "the seed's recipe as written (CE, one sampled prefix per batch)")
    + _pair(
        "v5-paper lr1e-3 b128 e10",
        "v5-paper",
        "mrl",
        "the recipe with the study's trainer settings",
        train_options=TUNED,
    )
    + _pair(
        "supcon",
        "fractal",
        "fractal-mrl",
        "all prefixes in expectation + supervised contrastive per prefix",
        **{**FRACTAL_OFF, "contrastive_weight": 1.0},
    )
    + _pair(
        "ce + stop-grad",
        "fractal",
        "fractal-mrl",
        "fine losses can't write into the coarse block; CE only",
        **{**FRACTAL_OFF, "stop_grad": True},
    )
    + _pair(
        "supcon + stop-grad",
        "fractal",
        "fractal-mrl",
        "supcon per prefix + stop-gradient",
        **{**FRACTAL_OFF, "contrastive_weight": 1.0, "stop_grad": True},
    )
    + _pair(
        "supcon + stop-grad + block-norm",
        "fractal",
        "fractal-mrl",
        "+ each 64-d block L2-normalised",
        **{**FRACTAL_OFF, "contrastive_weight": 1.0, "stop_grad": True, "block_norm": True},
    )
    + _pair(
        "supcon(ends) + stop-grad + block-norm",
        "fractal",
        "fractal-mrl",
        "contrastive only on the 64-d prefix and the full vector (cheaper)",
        **{**FRACTAL_OFF, "contrastive_weight": 1.0, "stop_grad": True, "block_norm": True, "contrastive_on": "ends"},
    )
    + _pair(
        "supcon + stop-grad + block-norm + mlp head",
        "fractal",
        "fractal-mrl",
        "a deeper head: Linear(384, 512) -> GELU -> Linear(512, 256)",
        **BEST,
    )
    + _pair(
        "infonce-margin + stop-grad + block-norm + mlp head",
        "fractal",
        "fractal-mrl",
        "the seed code's contrastive loss (InfoNCE to one same-class row + margin ranking) instead of supcon",
        **{**BEST, "contrastive": "infonce-margin"},
    )
    + _pair(
        "supcon + refine + block-norm + mlp head",
        "fractal",
        "fractal-mrl",
        "successive refinement: each prefix term trains only its newest block (earlier blocks detached)",
        **{**BEST, "stop_grad": False, "refine": True},
    )
    + [
        Variant(
            "heal", "heal", datasets=("clinc150",), note="HEAL-style baseline (CLINC150 only: the beat-heal target)"
        )
    ]
)


def variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise KeyError(name)


def grid(
    datasets: Sequence[str] = DATASETS, seeds: Sequence[int] = SEEDS, variants: Sequence[Variant] = VARIANTS
) -> list[tuple[str, Variant, int]]:
    """Seed by seed (so a study cut short still covers every dataset), the largest corpus last."""
    points = [(d, v, s) for s in seeds for d in datasets for v in variants if v.datasets is None or d in v.datasets]
    return sorted(points, key=lambda p: p[0] == "newsgroups20")  # stable: keeps the seed-major order


def specs(
    quick: bool = False, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> list[RunSpec]:
    """The grid as run specs for the sweep runner (``<results>/objective-study/<dataset>/<variant>/seed<N>``)."""
    ds = datasets or (QUICK["datasets"] if quick else DATASETS)
    sd = seeds or (QUICK["seeds"] if quick else SEEDS)
    cap = QUICK["subset"] if quick else None
    return [
        RunSpec(
            NAME,
            d,
            v.method,
            s,
            variant=v.name,
            objective_options=v.objective_options,
            train_options=v.train_options,
            cap=cap,
            tags={"control_of": v.control_of},
        )
        for d, v, s in grid(ds, sd)
    ]


def run_dir(out: Path, dataset: str, v: Variant, seed: int) -> Path:
    return Path(out) / dataset / slug(v.name) / f"seed{seed}"


def after(root: str | Path, quick: bool = False, log: Callable[[str], None] = print) -> None:
    """After the grid: re-score the CLINC150 runs under each evaluation protocol."""
    if not quick:
        protocol(root, "clinc150", log=log)


PROTOCOLS = {
    "first 500 rows (the seed's)": (500, "first"),
    "stratified 2,000 (ours)": (2000, "stratified"),
    "full test split": (None, "stratified"),
}


def protocol(
    out: str | Path = "results/objective-study", dataset: str = "clinc150", log: Callable[[str], None] = print
) -> Path:
    """Re-score every finished run of ``dataset`` under each of ``PROTOCOLS``; one JSON file per run
    in ``<out>/protocol/<dataset>/<variant>/seed<N>.json`` (skipped when present)."""
    from ..atomic import atomic_write_bytes
    from ..encoders import Encoder
    from ..records import canonical_json
    from ..runs import evaluate, load_run

    out = Path(out)
    ds, enc = None, None
    for v in VARIANTS:
        for rec_path in sorted((out / dataset / slug(v.name)).glob("seed*/record.json")):
            target = out / "protocol" / dataset / slug(v.name) / f"{rec_path.parent.name}.json"
            if target.exists():
                continue
            if ds is None:
                from ..data import load_dataset

                ds, enc = load_dataset(dataset), Encoder()
            run = load_run(rec_path.parent)
            res: dict[str, Any] = {
                "variant": v.name,
                "seed": run.record.seed,
                "dataset": dataset,
                "run_id": run.record.run_id,
                "protocols": {},
            }
            for name, (rows, sample) in PROTOCOLS.items():
                r = evaluate(run, ds, enc, eval_rows=rows, eval_seed=0, sample=sample)
                res["protocols"][name] = {
                    "n_rows": r["eval"]["n_rows"],
                    "accuracy": r["accuracy"],
                    "steerability": r["steerability"],
                }
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, canonical_json(res).encode())
            log(f"protocol: {dataset} / {v.name} / seed {run.record.seed}")
    return out / "protocol" / dataset
