"""``fractal explore``: a local web page over a run (or an index) and its corpus."""

from __future__ import annotations

import typer

from .common import DeviceOpt, LevelsOpt, TextOpt, app, device_of, err, log, parse_levels


@app.command("explore")
def explore_cmd(
    path: str = typer.Argument(
        ..., help="A run directory (`fractal train --out`) or an index directory (`fractal index build --out`)."
    ),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."),
    corpus: str | None = typer.Option(
        None,
        "--corpus",
        help="Run directory only: a built-in dataset name or a .txt / .csv / .tsv / .jsonl / .parquet file "
        "(default: the run's dataset).",
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Dataset split (default: test); files: the rows of this 'split' value (default: all rows).",
    ),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    run_dir: str | None = typer.Option(
        None, "--run", help="Index directory only: refuse it unless it was built with this run."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Run directory: encode the corpus again instead of reusing the cached index."
    ),
    device: str = DeviceOpt,
    allow_host: list[str] | None = typer.Option(
        None,
        "--allow-host",
        metavar="NAME",
        help="Also answer requests for this host name (repeatable; '*': any). "
        "By default only 127.0.0.1, localhost, ::1 and --host.",
    ),
) -> None:
    """Serve a local web page over a trained run and its corpus: search at every zoom, a corpus map, accuracy per
    prefix."""
    device = device_of(device)
    from ..explore import Explorer, bind, check_installed, create_app, open_index, serve, url_of

    check_installed()
    sock = bind(host, port)  # before any encoding: a port in use fails at once
    try:
        ix, source = open_index(
            path,
            corpus=corpus,
            split=split,
            text=text,
            levels=parse_levels(levels),
            run=run_dir,
            use_cache=not no_cache,
            show_progress=True,
            log_fn=log,
            device=device,
        )
        explorer = Explorer(ix, source)
        explorer.warm()
        web = create_app(explorer, allowed_hosts=[host, *(allow_host or [])])
        if host not in ("127.0.0.1", "localhost", "::1"):
            err.print(
                f"[yellow]warning:[/yellow] listening on {host}: the explorer has no authentication, anyone who "
                "can reach this address can query it"
            )
        err.print(
            f"fractal explore: {len(ix)} items, run {ix.run.record.run_id}; open {url_of(sock)} (Ctrl+C to stop)",
            markup=False,
            soft_wrap=True,
        )
        serve(web, sock)
    finally:
        sock.close()
