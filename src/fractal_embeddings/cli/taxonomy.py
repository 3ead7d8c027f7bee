"""``fractal taxonomy induce``: group the classes of a level into K coarse groups."""

from __future__ import annotations

import typer

from ..errors import FractalError
from ..extras import require
from .common import (
    ConflictOpt,
    DeviceOpt,
    JsonOpt,
    LevelsOpt,
    ModelOpt,
    NameArg,
    TextOpt,
    device_of,
    load,
    out,
    print_json,
    taxonomy_app,
    writing,
)


def parse_k(k: str) -> int | str:
    """``--k``: ``auto`` or a whole number (its range is :func:`induce_level`'s rule)."""
    value = k.strip().lower()
    if value == "auto":
        return value
    try:
        return int(k)
    except ValueError:
        raise FractalError(f"--k must be a number of groups or 'auto', got {k!r}") from None


@taxonomy_app.command("induce")
def taxonomy_induce(
    name: str = NameArg,
    out_path: str = typer.Option(..., "--out", help="The .csv file to write (text, split, every level)."),
    k: str = typer.Option(..., "--k", help="Number of groups, or 'auto' (the stated silhouette rule)."),
    level: str | None = typer.Option(None, "--level", help="The level to group [default: the finest]."),
    method: str = typer.Option("ward", "--method", help="ward (on normalised centroids) or average (cosine)."),
    column: str | None = typer.Option(None, "--name", help="Name of the new column [default: LEVEL_groupK]."),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    on_conflict: str = ConflictOpt,
    model: str = ModelOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    as_json: bool = JsonOpt,
    device: str = DeviceOpt,
) -> None:
    """Group the classes of a level into K coarse groups by clustering their train-split centroids
    under the frozen encoder; write the dataset with the induced level as a new column."""
    device = device_of(device)
    require("data", "fractal taxonomy induce (it writes a CSV table)", ("pandas",))
    from ..encoders import Encoder
    from ..induce import check_induced_out, induce_level, induced_columns, with_induced_level, write_induced_csv

    k_value = parse_k(k)
    check_induced_out(out_path, overwrite, name)  # before the encoding
    ds = load(name, text, levels, on_conflict)
    enc = Encoder(model, device=device)
    induced = induce_level(ds, level=level, k=k_value, method=method, encoder=enc, name=column)
    info = with_induced_level(ds, induced).info["variant"]
    with writing(out_path):
        path = write_induced_csv(ds, induced, out_path, overwrite=overwrite)
    report = {
        "dataset": ds.name,
        "out": str(path),
        "rows": {s: len(sp) for s, sp in ds.splits.items()},
        "columns": induced_columns(ds, induced),
        **info,
    }
    if as_json:
        print_json(report)
        return
    auto = f" (auto: best mean silhouette {max(induced.auto['silhouette'].values()):.3f})" if induced.auto else ""
    out.print(
        f"{ds.name}: {induced.level} ({len(induced.fine_classes)} classes, {induced.train_rows:,} train rows) -> "
        f"{induced.name}: k = {induced.k}{auto}, {method} linkage; group sizes {induced.sizes()}",
        soft_wrap=True,
        markup=False,
    )
    for up, a in info["agreement"].items():
        out.print(f"  agreement with the published level {up}: ARI {a['ari']:.3f}, NMI {a['nmi']:.3f}", markup=False)
    for g, members in list(info["groups"].items())[:5]:
        more = f", ... (+{len(members) - 6})" if len(members) > 6 else ""
        out.print(f"  {g}: {', '.join(members[:6])}{more}", soft_wrap=True, markup=False)
    out.print(
        f"wrote {path} ({sum(report['rows'].values()):,} rows); train on it with `fractal train {path} "
        f"--levels {induced.name},{induced.level}`",
        soft_wrap=True,
        markup=False,
    )
