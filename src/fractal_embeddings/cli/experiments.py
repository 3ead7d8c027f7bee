"""``fractal experiment|report|demo``: the experiment grids and the reports made from their records."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from ..errors import FractalError
from ..extras import require
from .common import app, err, log, out
from .datasets import datasets_list


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 42,123`` as a tuple of seeds, each checked by :func:`~fractal_embeddings.validation.check_seed`."""
    from ..validation import check_seed

    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise FractalError(f"--seeds must be comma-separated integers, e.g. 42,123; got {text!r}") from None
    return tuple(check_seed(v, "each of --seeds") for v in values)


@app.command("experiment")
def experiment_cmd(
    name: str = typer.Argument(..., help="main, ablation, objective-study, ... or all (`fractal experiment list`)."),
    out_dir: str = typer.Option("results", "--out", help="Results directory; runs go to OUT/NAME (OUT/NAME-quick)."),
    quick: bool = typer.Option(False, "--quick", help="A small grid on subsets (minutes): a smoke run."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (local) or CPUs of a local Ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="An existing Ray cluster (e.g. auto)."),
    datasets: str | None = typer.Option(None, "--datasets", help="Comma-separated subset of the datasets."),
    seeds: str | None = typer.Option(None, "--seeds", help="Comma-separated seeds."),
) -> None:
    """Run an experiment's grid into a resumable run store (a killed run resumes where it stopped)."""
    from ..experiments import EXPERIMENTS, get_experiment, run_experiment

    if name == "list":
        for n in EXPERIMENTS:
            doc = (get_experiment(n).__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            doc = doc.replace(f"``{n}``: ", "").replace("``", "")
            out.print(f"[bold]{n}[/bold]: {doc}", soft_wrap=True)
        return
    # the programme's grids encode with the offline encoders; the search-side ones search with FAISS
    require("encoders", f"fractal experiment {name}")
    if name in ("all", "retrieval", "pareto", "search", "latency"):
        require("index", f"fractal experiment {name}")
    ds = tuple(x.strip() for x in datasets.split(",")) if datasets else None
    sd = parse_seeds(seeds) if seeds else None
    run_experiment(
        name,
        out_dir,
        quick=quick,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
        datasets=ds,
        seeds=sd,
        log=log,
    )


@app.command("report")
def report_cmd(
    target: str = typer.Argument("results", help="A results directory, or objective-study."),
    out_path: str | None = typer.Option(None, "--out", help="Where to write (default: TARGET/REPORT.md)."),
    results: str = typer.Option(
        "results/objective-study", "--results", help="objective-study only: the study's results directory."
    ),
    fmt: str = typer.Option("md", "--format", help="md, or latex: also every table as LaTeX (booktabs) in tables/."),
) -> None:
    """Write a report (tables + figures) generated from run records only."""
    require("report", "fractal report")
    if target == "objective-study":
        from ..report.objective_study import write_report

        path = write_report(results, out_path or "docs/objective-study.md")
        err.print(f"wrote {path} (and {path.with_suffix('.png').name})")
        return
    from ..report import write_report as write_main_report

    if fmt not in ("md", "latex"):
        raise FractalError(f"--format must be md or latex, got {fmt!r}")
    path = write_main_report(target, out_path, formats=("md", "latex") if fmt == "latex" else ("md",))
    err.print(f"wrote {path} (figures in {path.parent / 'figures'})")


@app.command("demo")
def demo(
    out_dir: str = typer.Option("runs/demo", "--out", help="Where the runs, REPORT.md and figures go."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes."),
) -> None:
    """A quick main benchmark: CLINC150 and TREC, 2 seeds, fractal / v5-paper vs mrl; prints the table
    and writes a report with figures (a few minutes on a laptop CPU, encoding included)."""
    from ..experiments import run_experiment
    from ..report import write_report
    from ..report.frame import load_frame
    from ..report.tables import pm

    datasets_list(as_json=False)
    t0 = time.perf_counter()
    run_experiment("main", out_dir, quick=True, workers=workers, log=log)
    path = write_report(out_dir)
    df = load_frame(out_dir, experiments=("main-quick",))
    nb = int(df["n_blocks"].max())
    t = Table(title="quick main benchmark: steerability S and k-NN accuracy (mean ± SD over seeds)")
    for c in ("dataset", "method", "seeds", "S", "L0@j1", f"L1@j{nb}"):
        t.add_column(c, justify="left" if c in ("dataset", "method") else "right", no_wrap=True)
    rank = {"fractal": 0, "v5-paper": 1, "mrl": 2}
    df = df.assign(_r=df["method"].map(rank).fillna(9)).sort_values(["dataset", "_r"])
    for (d, m), g in df.groupby(["dataset", "method"], sort=False):
        t.add_row(d, m, str(len(g)), pm(g["S"]), pm(g["L0@j1"], signed=False), pm(g[f"L1@j{nb}"], signed=False))
    out.print(t)
    out.print(f"L0@j1: coarse k-NN accuracy of the first block; L1@j{nb}: fine accuracy of the full vector.")
    out.print(f"report: {path} (figures in {path.parent / 'figures'}); {time.perf_counter() - t0:.0f} s")
