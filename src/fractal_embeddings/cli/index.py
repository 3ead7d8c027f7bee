"""``fractal index build`` and ``fractal search``: a zoom index over a corpus, and its queries."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from .common import (
    DeviceOpt,
    LevelsOpt,
    TextOpt,
    app,
    device_of,
    index_app,
    out,
    parse_levels,
    print_json,
    writing,
)


@index_app.command("build")
def index_build(
    run_dir: str = typer.Argument(..., help="A run directory written by `fractal train`."),
    corpus: str = typer.Argument(
        ..., help="A built-in dataset name, or a .txt (one text per line) / .csv / .tsv / .jsonl / .parquet file."
    ),
    out_dir: str = typer.Option(..., "--out", help="Index directory to write."),
    kind: str = typer.Option("flat", "--kind", help="flat (exact) or hnsw (approximate)."),
    layout: str = typer.Option(
        "shared", "--layout", help="faiss: shared (each item stored once) or per-prefix (an index per prefix)."
    ),
    quantize: str = typer.Option(
        "none", "--quantize", help="none (float32) or int8 (faiss: a byte per dim; qdrant: scalar quantisation)."
    ),
    m: int = typer.Option(32, "--m", min=2, help="hnsw: graph degree M."),
    ef_construction: int = typer.Option(200, "--ef-construction", min=1, help="hnsw: efConstruction."),
    ef_search: int = typer.Option(64, "--ef-search", min=1, help="hnsw: efSearch (default search breadth)."),
    split: str | None = typer.Option(
        None, "--split", help="Dataset split to index [default: train]; files: rows of this 'split' value."
    ),
    text: str = TextOpt,
    levels: str | None = LevelsOpt,
    id_column: str | None = typer.Option(None, "--id", help="Files: the id column [default: row number]."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an index already in --out (qdrant: and rebuild a collection of another run).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the index metadata as JSON."),
    device: str = DeviceOpt,
    backend: str = typer.Option("faiss", "--backend", help="faiss (files in --out) or qdrant (a Qdrant collection)."),
    qdrant_path: str | None = typer.Option(
        None, "--qdrant-path", help="qdrant: the folder of an embedded Qdrant (local mode, no server)."
    ),
    qdrant_url: str | None = typer.Option(
        None, "--qdrant-url", help="qdrant: a Qdrant server or cluster, e.g. http://localhost:6333."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", help="qdrant: the server's api key (default: $QDRANT_API_KEY); never written to --out."
    ),
    collection: str | None = typer.Option(
        None, "--collection", help="qdrant: the collection name (default: the name of --out)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="qdrant: points per upsert request."),
) -> None:
    """Encode a corpus with a trained run and write a zoom index (FAISS files storing each item once,
    or a Qdrant collection with a named vector per prefix: --backend qdrant)."""
    device = device_of(device)
    from ..index import build_from_source, prepare_build

    options = prepare_build(
        run_dir,
        out_dir,
        backend=backend,
        kind=kind,
        layout=layout,
        quantize=quantize,
        split=split,
        overwrite=overwrite,
        m=m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        qdrant_path=qdrant_path,
        qdrant_url=qdrant_url,
        api_key=api_key,
        collection=collection,
        batch_size=batch_size,
    )
    t0 = time.perf_counter()
    ix = build_from_source(
        run_dir,
        corpus,
        split=split,
        text=text,
        levels=parse_levels(levels),
        id_column=id_column,
        show_progress=not as_json,
        device=device,
        **options,
    )
    try:
        with writing(out_dir):
            path = ix.save(out_dir, overwrite=overwrite)  # after the collection is complete
        info = {**ix.info(), "path": str(path), "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        ix.close()
    if as_json:
        print_json(info)
        return
    params = ", ".join(f"{k}={v}" for k, v in ix.params.items())
    where = getattr(ix, "target", None)
    store = (
        f"{where.describe()}" if where is not None else f"{getattr(ix, 'faiss_type', '')}, {getattr(ix, 'layout', '')}"
    )
    out.print(
        f"indexed {len(ix)} texts with run {info['run']['run_id']}: {ix.kind} ({store}"
        f"{', ' + params if params else ''}) at {'/'.join(map(str, ix.dims))} dims; saved to {path} "
        f"({info['seconds']:.1f} s)",
        markup=False,
    )


@app.command("search")
def search_cmd(
    index_dir: str = typer.Argument(..., help="An index directory written by `fractal index build`."),
    query: str = typer.Argument(..., help="The query text."),
    zoom: str = typer.Option("fine", "--zoom", help="coarse (first block), fine (all dims) or a prefix length."),
    k: int = typer.Option(10, "-k", "--top-k", help="Hits to return."),
    mode: str = typer.Option(
        "zoom", "--mode", help="zoom (k-NN at --zoom), funnel (first block, re-ranked at --zoom) or routed."
    ),
    candidates: int | None = typer.Option(
        None, "--candidates", help="funnel: items re-ranked; routed: neighbours voting the class (default: 10 x k)."
    ),
    route_classes: int = typer.Option(
        1, "--route-classes", help="routed: 2 also searches the runner-up class when the vote is close."
    ),
    ef_search: int | None = typer.Option(None, "--ef-search", min=1, help="hnsw: search breadth for this query."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="A Qdrant index on a server: its api key (default: $QDRANT_API_KEY)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = DeviceOpt,
) -> None:
    """The nearest items of a query at a zoom level, with their labels (modes: zoom, funnel, routed)."""
    device = device_of(device)
    from rich.markup import escape

    from ..index import check_mode, load_index

    check_mode(mode)  # an unknown mode before the index is opened
    ix = load_index(index_dir, device=device, api_key=api_key)
    try:
        res = ix.search(
            query, k=k, zoom=zoom, mode=mode, candidates=candidates, route_classes=route_classes, ef_search=ef_search
        )
    finally:
        ix.close()
    route = res.routes[0] if res.routes else None
    if as_json:
        doc = {"index": index_dir, "query": query, "mode": res.mode, "zoom": res.zoom, "k": k}
        if res.candidates is not None:
            doc["candidates"] = res.candidates
        if route is not None:
            doc["predicted"] = route.as_dict()
        print_json({**doc, "hits": [h.as_dict() for h in res[0]]})
        return
    how = "" if res.mode == "zoom" else f", {res.mode} over {res.candidates} candidates"
    t = Table(title=escape(f"{query!r} at {res.zoom} dims ({ix.kind}, {len(ix)} items{how})"))
    if route is not None:
        t.caption = escape(
            f"routed to {' + '.join(route.classes)} ({route.level}; {route.votes} of {route.voters} votes"
            + (f", runner-up {route.runner_up}: {route.runner_up_votes})" if route.runner_up else ")")
        )
    for c in ("rank", "id", "score"):
        t.add_column(c, justify="right")
    t.add_column("text")
    for name in ix.level_names:
        t.add_column(escape(name))
    for h in res[0]:
        labels = [escape(str((h.labels or {}).get(n, ""))) for n in ix.level_names]
        t.add_row(str(h.rank), escape(str(h.id)), f"{h.score:.4f}", escape(h.text), *labels)
    out.print(t)
