"""``fractal export``: a run as a sentence-transformers model folder."""

from __future__ import annotations

import json

import typer

from .common import app, out, writing


@app.command("export")
def export_cmd(
    run_dir: str = typer.Argument(..., help="A run directory written by `fractal train`."),
    out_dir: str = typer.Argument(..., help="The sentence-transformers model folder to write."),
    dims: int | None = typer.Option(
        None,
        "--dims",
        help="Export the first DIMS dims only, a multiple of the block "
        "dim (default: all; a block-normed head exports exactly only "
        "at its first block: --dims 64).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model exported to OUT_DIR before."),
    portable: bool = typer.Option(
        False,
        "--portable",
        help="Built-in sentence-transformers modules only (no "
        "trust_remote_code); exact only where Dense layers can be.",
    ),
) -> None:
    """Write a run as a sentence-transformers model folder (encoder + head, model card from the record),
    exact at every prefix (load with trust_remote_code=True), checked against the run before it is
    moved into place."""
    from ..export import EXPORT_FILE, export_sentence_transformers

    with writing(out_dir):
        path = export_sentence_transformers(run_dir, out_dir, overwrite=overwrite, dims=dims, portable=portable)
    info = json.loads((path / EXPORT_FILE).read_text())
    worst = max(v for k, v in info["check"].items() if k != "raw")
    load = "" if portable else ", trust_remote_code=True"
    out.print(
        f"exported {info['run_id']} to {path}: {info['dims']}-d (truncate_dim = a multiple of "
        f"{info['block_dim']}); matches the run to {worst:.1e} (normalised prefixes); load with "
        f"SentenceTransformer({str(path)!r}{load}); model card in {path / 'README.md'}",
        soft_wrap=True,
    )
