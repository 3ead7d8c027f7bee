"""The zoom index on a real trained run: a CLINC150 subset, the offline default encoder, FAISS."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import fractal_embeddings
from fractal_embeddings import load_dataset
from fractal_embeddings.encoders import embed_split
from fractal_embeddings.errors import FractalError
from fractal_embeddings.index import ZoomIndex, ZoomIndexError, read_corpus
from fractal_embeddings.runs import train

pytestmark = pytest.mark.slow
HNSW = {"m": 16, "ef_construction": 64, "ef_search": 64}  # smaller graph than the defaults: a quick build


@pytest.fixture(scope="module")
def run(clinc_3k_run):
    return clinc_3k_run


@pytest.fixture(scope="module")
def corpus(clinc_3k_corpus):
    return clinc_3k_corpus


@pytest.fixture(scope="module")
def queries(clinc_3k, zoom_encoder, run):
    sp = clinc_3k.split("test")
    return {"texts": list(sp.texts), "codes": sp.labels, "vectors": run.transform(embed_split(zoom_encoder, sp))}


@pytest.fixture(scope="module")
def flat(run, corpus, zoom_encoder):
    return ZoomIndex.build(
        run, corpus["texts"], labels=corpus["labels"], vectors=corpus["vectors"], encoder=zoom_encoder
    )


@pytest.fixture(scope="module")
def hnsw(run, corpus, zoom_encoder):
    return ZoomIndex.build(
        run,
        corpus["texts"],
        labels=corpus["labels"],
        vectors=corpus["vectors"],
        kind="hnsw",
        encoder=zoom_encoder,
        **HNSW,
    )


def _unit(X):
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_flat_search_is_exact_cosine_on_every_prefix(flat, corpus, queries):
    V, Q = corpus["vectors"], queries["vectors"]
    assert flat.dims == (64, 128, 192, 256) and len(flat) == len(V)
    for d in flat.dims:
        res = flat.search(Q, k=10, zoom=d)
        sims = _unit(Q[:, :d]) @ _unit(V[:, :d]).T  # brute force, float64
        top = -np.sort(-sims, axis=1)[:, :10]
        np.testing.assert_allclose(res.scores, top, atol=1e-5)  # the 10 best cosines, in order
        # every returned row really has the score reported (ties may swap equal-score rows)
        np.testing.assert_allclose(np.take_along_axis(sims, res.rows, axis=1), res.scores, atol=1e-5)
        ref = np.argsort(-sims, axis=1, kind="stable")[:, :10]
        assert (res.rows == ref).mean() > 0.99
        assert res.zoom == d and res.ids == res.rows.tolist()  # default ids: the row numbers
    # named zooms, and a query already cut to the zoom's length
    np.testing.assert_array_equal(flat.search(Q, 5, zoom="coarse").rows, flat.search(Q, 5, zoom=64).rows)
    np.testing.assert_array_equal(flat.search(Q, 5, zoom="fine").rows, flat.search(Q, 5, zoom=256).rows)
    np.testing.assert_array_equal(flat.search(Q[:, :64], 5, zoom="coarse").rows, flat.search(Q, 5, zoom=64).rows)
    hit = flat.search(Q[0], 3)[0][0]  # a single 1-d vector: a batch of one
    assert hit.rank == 1 and hit.labels == dict(zip(("domain", "intent"), corpus["labels"][hit.row], strict=True))


def test_text_queries_equal_vector_queries(flat, queries, run, zoom_encoder):
    texts = queries["texts"][:4]
    by_text = flat.search(texts, k=5, zoom="coarse")
    by_vec = flat.search(run.transform(zoom_encoder.encode(texts)), k=5, zoom="coarse")
    np.testing.assert_array_equal(by_text.rows, by_vec.rows)
    np.testing.assert_allclose(by_text.scores, by_vec.scores, atol=1e-5)
    one = flat.search(texts[0], k=5, zoom="coarse")
    assert len(one) == 1 and [h.row for h in one[0]] == by_text.rows[0].tolist()


def test_hnsw_recall_against_flat(flat, hnsw, queries):
    Q = queries["vectors"]
    info = hnsw.info()["index"]
    assert info["faiss_type"] == "IndexHNSWFlat" and info["params"] == {"M": 16, "ef_construction": 64, "ef_search": 64}
    for d in hnsw.dims:
        exact = flat.search(Q, k=10, zoom=d).rows
        approx = hnsw.search(Q, k=10, zoom=d).rows
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
        assert recall > 0.98, (d, recall)
    assert hnsw.search(Q, k=10, zoom="coarse", ef_search=10).rows.shape == (len(Q), 10)  # per-call breadth


def test_coarse_zoom_keeps_the_domain_fine_zoom_the_intent(flat, corpus, queries):
    """Semantic zoom on real data. At k=50 (more rows than any intent has in this 3,000-row corpus,
    about 20 each) the coarse zoom's hits share the query's domain more often than the fine zoom's;
    at k=10 the fine zoom's hits share its intent far more often. (At k <= ~20 the fine zoom also
    wins on domain: its hits are same-intent rows, which share the domain too.)"""
    Q, y, c = queries["vectors"], queries["codes"], corpus["codes"]

    def share(zoom, k, level):
        rows = flat.search(Q, k=k, zoom=zoom).rows
        return (c[rows, level] == y[:, None, level]).mean()

    assert share("coarse", 50, 0) > share("fine", 50, 0) + 0.03
    assert share("fine", 10, 1) > share("coarse", 10, 1) + 0.2


def test_save_load_round_trip_gives_identical_results(flat, hnsw, queries, run, tmp_path):
    Q = queries["vectors"][:100]
    for ix in (flat, hnsw):
        path = ix.save(tmp_path / ix.kind)
        assert sorted(p.name for p in path.iterdir()) == [  # the shared layout: each item stored once
            "full.faiss",
            "index.json",
            "norms.npy",
            "prefix-64.faiss",
            "run",
        ]
        back = ZoomIndex.load(path, run=run)
        assert back.kind == ix.kind and back.params == ix.params and back.level_names == ("domain", "intent")
        assert back.ids == ix.ids and back.texts == ix.texts and back.labels == ix.labels
        np.testing.assert_array_equal(back.vectors, ix.vectors)
        for zoom, mode in [("coarse", "zoom"), (128, "zoom"), ("fine", "zoom"), ("fine", "funnel"), (192, "routed")]:
            a, b = ix.search(Q, k=10, zoom=zoom, mode=mode), back.search(Q, k=10, zoom=zoom, mode=mode)
            np.testing.assert_array_equal(a.rows, b.rows)
            np.testing.assert_array_equal(a.scores, b.scores)
            assert a.ids == b.ids and a.routes == b.routes
        # saved again from the loaded index: the same index.json (but the time) and the same files
        again = back.save(tmp_path / f"{ix.kind}-again")
        first, second = (json.loads((p / "index.json").read_text()) for p in (path, again))
        assert first.pop("created_at") and second.pop("created_at") and first == second
    meta = json.loads((tmp_path / "hnsw" / "index.json").read_text())
    assert meta["run"]["run_id"] == run.record.to_dict()["run_id"]
    assert meta["encoder"]["fingerprint"] == run.record.to_dict()["encoder"]["fingerprint"]
    assert meta["head"] == {"n_blocks": 4, "block_dim": 64, "dim": 256, "kind": "mlp"}
    assert meta["index"]["params"] == {"M": 16, "ef_construction": 64, "ef_search": 64}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary dirs left


def test_ids_payloads_add_and_overwrite(run, corpus, tmp_path):
    V = corpus["vectors"]
    ix = ZoomIndex.build(
        run,
        corpus["texts"][:20],
        ids=[f"doc-{i}" for i in range(20)],
        payloads=[{"n": i, "tags": ["a"]} for i in range(20)],
        vectors=V[:20],
    )
    rows = ix.add(corpus["texts"][20:30], ids=[f"doc-{i}" for i in range(20, 30)], vectors=V[20:30])
    assert rows.tolist() == list(range(20, 30)) and len(ix) == 30
    hit = ix.search(V[3], k=1)[0][0]
    assert hit.id == "doc-3" and hit.payload == {"n": 3, "tags": ["a"]} and hit.labels is None
    path = ix.save(tmp_path / "ix")
    with pytest.raises(ZoomIndexError, match="already holds an index; .*--overwrite"):
        ix.save(path)
    ix.add(corpus["texts"][30:31], ids=["doc-30"], vectors=V[30:31])
    ix.save(path, overwrite=True)
    back = ZoomIndex.load(path)
    assert len(back) == 31 and back.search(V[3], k=1)[0][0].payload == {"n": 3, "tags": ["a"]}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ZoomIndexError, match="not empty and holds no index"):
        ix.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_errors_are_one_line_and_name_the_fix(flat, run, corpus, clinc_3k, zoom_encoder, tmp_path):
    V = corpus["vectors"]
    with pytest.raises(ZoomIndexError, match="query vectors have 100 dims; this index expects 256-d head vectors"):
        flat.search(np.zeros(100), k=5)
    with pytest.raises(ZoomIndexError, match="384-d looks like raw encoder vectors"):
        flat.search(np.ones((2, 384)), k=5)
    for zoom in (100, "medium", 0):
        with pytest.raises(
            ZoomIndexError, match=r"is not one of this index's zooms; use coarse, fine or .*64, 128, 192, 256"
        ):
            flat.search(V[:2], k=5, zoom=zoom)
    for k in (0, -1, 2.5):
        with pytest.raises(ZoomIndexError, match="k must be an integer >= 1"):
            flat.search(V[:2], k=k)
    with pytest.raises(ZoomIndexError, match="empty corpus"):
        ZoomIndex.build(run, [])
    with pytest.raises(ZoomIndexError, match="unknown index kind 'ivf'"):
        ZoomIndex.build(run, ["a"], kind="ivf")
    with pytest.raises(ZoomIndexError, match="duplicate id 'x'"):
        ZoomIndex.build(run, ["a", "b"], ids=["x", "x"], vectors=V[:2])
    with pytest.raises(ZoomIndexError, match="label row 0 has 1 names for 2 levels"):
        ZoomIndex.build(run, ["a"], labels=[["banking"]], vectors=V[:1])
    with pytest.raises(ZoomIndexError, match="not JSON-serialisable"):
        ZoomIndex.build(run, ["a"], payloads=[{1, 2}], vectors=V[:1])

    # another model: a run with another id, or another encoder
    path = ZoomIndex.build(run, corpus["texts"][:50], vectors=V[:50]).save(tmp_path / "ix")
    other = train(clinc_3k, "flat", encoder=zoom_encoder, eval_rows=50)
    with pytest.raises(
        ZoomIndexError, match=r"built with run clinc150-fractal-.* not run clinc150-flat-.*rebuild the index"
    ):
        ZoomIndex.load(path, run=other)
    from fractal_embeddings.encoders import Encoder

    with pytest.raises(ZoomIndexError, match="trained on encoder .* not .*paraphrase-MiniLM-L3.*encoder=None"):
        ZoomIndex.load(path, encoder=Encoder("paraphrase-minilm-l3", cache_dir=tmp_path / "c"))

    # missing or corrupt index directories
    with pytest.raises(ZoomIndexError, match="no such index directory; build one with `fractal index build"):
        ZoomIndex.load(tmp_path / "nope")
    with pytest.raises(ZoomIndexError, match=r"not a zoom index \(no index.json\)"):
        ZoomIndex.load(tmp_path)
    faiss_file = path / "prefix-64.faiss"
    good = faiss_file.read_bytes()
    faiss_file.write_bytes(good[:100] + b"x" + good[101:])
    with pytest.raises(ZoomIndexError, match="prefix-64.faiss: does not match the sha256 .*rebuild it"):
        ZoomIndex.load(path)
    faiss_file.unlink()
    with pytest.raises(ZoomIndexError, match="prefix-64.faiss: missing"):
        ZoomIndex.load(path)
    faiss_file.write_bytes(good)
    ZoomIndex.load(path)  # restored: loads again
    (path / "index.json").write_text('{"schema": ')
    with pytest.raises(ZoomIndexError, match="index.json: corrupt"):
        ZoomIndex.load(path)


def test_empty_or_blank_text_query_is_refused(flat):
    """An empty text was encoded and answered with k hits like any other query; now a one-line error."""
    for q, msg in [("", "query is empty"), (" \t\n", "query is empty"), (["a flight", "  "], r"queries\[1\] is empty")]:
        for mode in ("zoom", "funnel", "routed"):
            with pytest.raises(ZoomIndexError, match=msg) as e:
                flat.search(q, k=5, mode=mode)
            assert "\n" not in str(e.value) and "give the text to search for" in str(e.value)


def test_read_corpus_from_dataset_and_files(data_home, tmp_path):
    c = read_corpus("clinc150", split="test")
    assert len(c) == 4500 and c.level_names == ("domain", "intent") and c.ids[:3] == [0, 1, 2]
    assert len(c.labels[0]) == 2 and c.labels[0][0] in load_dataset("clinc150").levels[0].classes
    (tmp_path / "c.txt").write_text("first line\n\n  \nsecond line\n")
    with pytest.warns(UserWarning, match="dropped 2 empty"):
        t = read_corpus(str(tmp_path / "c.txt"))
    assert t.texts == ["first line", "second line"] and t.ids == [0, 3] and t.labels is None
    (tmp_path / "c.jsonl").write_text('{"text": "a", "key": "k1", "n": 1}\n{"text": "b", "key": "k2", "n": 2}\n')
    j = read_corpus(str(tmp_path / "c.jsonl"), id_column="key")
    assert j.ids == ["k1", "k2"] and j.payloads == [{"n": 1}, {"n": 2}]
    with pytest.raises(FractalError, match="no column 'body'"):
        read_corpus(str(tmp_path / "c.jsonl"), text="body")


def test_cli_index_build_and_search(run, clinc_3k, zoom_encoder, tmp_path, capsys):
    import pandas as pd
    from typer.testing import CliRunner

    from fractal_embeddings.cli import app, main

    run_dir = run.save(tmp_path / "run")
    sp = clinc_3k.split("test")
    names = clinc_3k.label_names("test")[:200]
    pd.DataFrame(
        {
            "text": sp.texts[:200],
            "domain": [n[0] for n in names],
            "intent": [n[1] for n in names],
            "source": "clinc_3k-test",
        }
    ).to_csv(tmp_path / "corpus.csv", index=False)
    env = {"FRACTAL_CACHE": str(zoom_encoder.cache.root)}
    cli = CliRunner()
    r = cli.invoke(
        app,
        [
            "index",
            "build",
            str(run_dir),
            str(tmp_path / "corpus.csv"),
            "--levels",
            "domain,intent",
            "--out",
            str(tmp_path / "ix"),
            "--kind",
            "hnsw",
            "--m",
            "8",
            "--ef-search",
            "32",
            "--json",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["size"] == 200 and info["index"]["params"] == {"M": 8, "ef_construction": 200, "ef_search": 32}
    assert info["level_names"] == ["domain", "intent"] and info["run"]["run_id"] == run.record.to_dict()["run_id"]

    r = cli.invoke(
        app,
        [
            "search",
            str(tmp_path / "ix"),
            "what is my checking account balance",
            "--zoom",
            "coarse",
            "-k",
            "5",
            "--json",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["zoom"] == 64 and [h["rank"] for h in res["hits"]] == [1, 2, 3, 4, 5]
    assert all(h["labels"]["domain"] == "banking" for h in res["hits"][:3])
    assert res["hits"][0]["payload"] == {"source": "clinc_3k-test"} and isinstance(res["hits"][0]["id"], int)
    r = cli.invoke(
        app, ["search", str(tmp_path / "ix"), "book a flight to paris", "-k", "3"], env=env, terminal_width=200
    )
    assert r.exit_code == 0 and "rank" in r.stdout and "intent" in r.stdout and "travel" in r.stdout, r.output

    # errors: one line through the CLI's handler, exit status 2
    ix = str(tmp_path / "ix")
    for args, msg in [
        (["search", ix, "hi", "--zoom", "100"], "zoom 100 is not one of this index's zooms"),
        (["search", ix, "hi", "-k", "0"], "k must be an integer >= 1"),
        (["search", ix, ""], "query is empty; give the text to search for"),
        (["search", ix, "   "], "query is empty; give the text to search for"),
        (["search", str(tmp_path / "nope"), "hi"], "no such index directory"),
        (["index", "build", str(run_dir), str(tmp_path / "corpus.csv"), "--out", ix], "already holds an index"),
        (["index", "build", str(run_dir), "no-such-dataset", "--out", ix + "2"], "unknown dataset"),
        (["index", "build", str(tmp_path), "clinc150", "--out", ix + "2"], "no record.json"),
    ]:
        assert main(args) == 2, args
        e = capsys.readouterr().err.strip()
        assert e.startswith("error: ") and msg in e and "\n" not in e, e


# ------------------------------------------------------------------ the package's layering
SRC = Path(fractal_embeddings.__file__).parent
ABOVE_INDEX = {"cli", "explore", "export", "predictor", "experiments", "report", "index"}  # may import index


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(absolute module, at module level)`` of every ``fractal_embeddings`` import in a source file."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])  # the package a relative import starts from (an __init__'s own)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body} | {
        id(m)
        for n in tree.body
        if isinstance(n, ast.If)
        for m in n.body  # `if TYPE_CHECKING:` blocks
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            out += [(n, id(node) in top) for n in names]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out += [(m, id(node) in top) for m in mods if m.startswith("fractal_embeddings")]
    return out


def test_index_package_has_no_cycle_no_late_imports_and_nothing_below_imports_it():
    pkg = SRC / "index"
    graph: dict[str, set[str]] = {}
    for f in sorted(pkg.glob("*.py")):
        name = f"fractal_embeddings.index.{f.stem}" if f.stem != "__init__" else "fractal_embeddings.index"
        deps = _imports(f)
        # the one late import: the user-file reader needs pandas (the data extra), so a core install imports the package
        late = [m for m, top in deps if not top and m != "fractal_embeddings.data.tabular"]
        assert not late, f"{f.name}: late imports of {late}"
        graph[name] = {m for m, _ in deps if m.startswith("fractal_embeddings.index.")}
        if f.stem != "__init__":  # a module never imports the package's __init__ (the re-exports)
            assert "fractal_embeddings.index" not in {m for m, _ in deps}, f.name
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for dep in graph.get(node, ()):
            visit(dep, (*path, node))
        done.add(node)

    for node in graph:
        visit(node, ())
    for f in SRC.rglob("*.py"):
        top = f.relative_to(SRC).parts[0].removesuffix(".py")
        if top in ABOVE_INDEX or "explore_static" in f.parts:
            continue
        wrong = [m for m, _ in _imports(f) if (m + ".").startswith("fractal_embeddings.index.")]
        assert not wrong, f"{f.relative_to(SRC)} (below the index) imports {wrong}"
