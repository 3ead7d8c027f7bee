"""``fractal datasets list|stats`` and ``fractal embed``: the datasets, their statistics, their vectors."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from ..data import get_data_home, list_datasets
from .common import (
    ConflictOpt,
    DeviceOpt,
    JsonOpt,
    LevelsOpt,
    ModelOpt,
    NameArg,
    TextOpt,
    app,
    datasets_app,
    device_of,
    load,
    out,
    print_json,
)


@datasets_app.command("list")
def datasets_list(as_json: bool = JsonOpt) -> None:
    """The built-in datasets, their levels, their data's license and whether their files are in the data home."""
    home = get_data_home()
    rows: list[dict[str, Any]] = []
    for s in list_datasets():
        present = all((home / s.folder / f.path).is_file() for f in s.files)
        rows.append(
            {
                "name": s.name,
                "title": s.title,
                "levels": list(s.default_levels),
                "all_levels": list(s.levels),
                "flat": s.is_flat,
                "online_only": s.online_only,
                "license": s.license or None,
                "files_present": present,
            }
        )
    if as_json:
        print_json({"data_home": str(home), "datasets": rows})
        return
    t = Table(title=f"datasets (data home: {home})")
    for c in ("name", "levels", "files", "license", "description"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["name"],
            " -> ".join(r["levels"]),
            "yes" if r["files_present"] else "no",
            r["license"] or ("see its source" if r["online_only"] else "none stated"),
            r["title"],
        )
    out.print(t)


def stats_table(st: dict) -> Table:
    t = Table(title=f"{st['name']}: {st['rows']} rows")
    t.add_column("level")
    t.add_column("classes", justify="right")
    t.add_column("entropy (bits)", justify="right")
    t.add_column("branching", justify="right")
    ent = list(st["entropy"].items())
    br = [None] + list(st["branching"].values())
    for i, lv in enumerate(st["levels"]):
        t.add_row(
            f"L{i} {lv['name']}",
            str(lv["n_classes"]),
            f"{ent[i][0]} = {ent[i][1]:.3f}",
            "" if br[i] is None else f"{br[i]:.2f}",
        )
    t.caption = "splits: " + ", ".join(f"{k}={v}" for k, v in st["splits"].items())
    return t


@datasets_app.command("stats")
def datasets_stats(
    name: str = NameArg,
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    include_oos: bool = typer.Option(False, "--include-oos", help="CLINC150: keep out-of-scope rows."),
    as_json: bool = JsonOpt,
) -> None:
    """Rows per split, classes per level, H(L0), H(Lk|Lk-1) and branching."""
    st = load(name, text, levels, on_conflict, include_oos).stats()
    if as_json:
        print_json(st)
    else:
        out.print(stats_table(st))


@app.command("embed")
def embed(
    name: str = NameArg,
    model: str = ModelOpt,
    backend: str = typer.Option("auto", "--backend", help="auto, onnx or sentence-transformers."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    as_json: bool = JsonOpt,
    executor: str | None = typer.Option(
        None, "--executor", help="Spread the encoding over workers: local (processes) or ray."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="With --executor: worker processes / CPUs of a local Ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="With --executor ray: an existing cluster."),
    device: str = DeviceOpt,
) -> None:
    """Fill the embedding cache for every split of a dataset; print sentences/s."""
    device = device_of(device)
    from ..encoders import Encoder, embed_sharded
    from ..executors import get_executor

    ds = load(name, text, levels, on_conflict)
    enc = Encoder(model, backend=backend, batch_size=batch_size, device=device)
    pool = get_executor(executor, workers=workers, ray_address=ray_address) if executor else None
    cached = {split: enc.is_cached(sp.texts) for split, sp in ds.splits.items()}
    t0 = time.perf_counter()
    if not all(cached.values()) and pool is None:
        enc.load()  # model load (and the one-time ONNX export) is not part of the throughput
    report: dict[str, Any] = {
        "dataset": ds.name,
        "encoder": enc.resolved.name,
        "backend": enc.backend,
        "device": enc.device,
        "load_seconds": round(time.perf_counter() - t0, 3),
        "splits": {},
    }
    if not as_json and not all(cached.values()):
        out.print(f"encoder {enc.resolved.name} ({enc.backend}) loaded in {report['load_seconds']:.1f} s")
    for split, sp in ds.splits.items():
        t0 = time.perf_counter()
        if pool is not None:
            X = embed_sharded(enc, sp.texts, pool, n_shards=4 * workers)
        else:
            X = enc.embed(sp.texts, show_progress=not as_json)
        dt = time.perf_counter() - t0
        report["splits"][split] = {
            "rows": len(sp),
            "dim": int(X.shape[1]),
            "seconds": round(dt, 3),
            "cached": cached[split],
            "sentences_per_s": round(len(sp) / dt, 1) if dt > 0 else None,
        }
        if not as_json:
            out.print(
                f"{split:>5}: {len(sp):>6} texts -> {X.shape[1]}-d in {dt:6.2f} s "
                f"({'from cache' if cached[split] else f'{len(sp) / max(dt, 1e-9):,.0f} sentences/s'})"
            )
    report["cache"] = str(enc.cache.root)
    if pool is not None:
        pool.close()
        report["executor"] = pool.name
    if as_json:
        print_json(report)
