"""`fractal explore`: the web app's JSON API (Starlette's TestClient), the CLI's one-line errors, a
real headless Chromium (Debian's package, driven by playwright) on the served page, and the server's
hardening: only its own host names are answered (DNS rebinding), URL and body size limits, and a
bounded load test on a real uvicorn server. A real small run: CLINC150 subset (3,000 train / 600 val /
600 test rows), the offline default encoder."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the explore extra is not installed: pip install 'fractal-embeddings[explore]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient

from conftest import explore_server
from fractal_embeddings.explore import (
    MAX_QUERY_CHARS,
    MAX_URL_BYTES,
    ExploreError,
    Explorer,
    ServerThread,
    create_app,
    open_index,
)
from fractal_embeddings.runs import train

pytestmark = pytest.mark.slow
# where the browser test saves its screenshot: a temporary folder, or the path in this variable
# (docs/explorer.png, the README's picture, was made with FRACTAL_EXPLORER_SCREENSHOT=docs/explorer.png)
SCREENSHOT_ENV = "FRACTAL_EXPLORER_SCREENSHOT"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def run_dir(clinc_3k_run, tmp_path_factory):
    return clinc_3k_run.save(tmp_path_factory.mktemp("explore") / "run")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("explore-cache")


@pytest.fixture(scope="module")
def explorer(run_dir, zoom_encoder, cache_root):
    ix, source = open_index(run_dir, encoder=zoom_encoder, cache_dir=cache_root)
    return Explorer(ix, source)


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_app(explorer), base_url="http://127.0.0.1:8765")  # a Host the app answers


@pytest.fixture(scope="module")
def queries(clinc_3k):
    """One validation text per intent (not in the corpus), with its domain and intent."""
    sp, seen, out = clinc_3k.split("val"), set(), []
    dom, intent = clinc_3k.levels[0].classes, clinc_3k.levels[1].classes
    for t, (d, i) in zip(sp.texts, sp.labels.tolist(), strict=True):
        if i not in seen:
            seen.add(i)
            out.append((t, dom[d], intent[i]))
    return out


# ------------------------------------------------------------------ opening an index
def test_run_dir_builds_the_test_split_index_then_reuses_the_cache(
    run_dir, explorer, clinc_3k, zoom_encoder, cache_root, tmp_path
):
    ix, src = explorer.index, explorer.source
    sp = clinc_3k.split("test")
    assert src["kind"] == "run" and src["corpus"]["kind"] == "run-dataset" and src["corpus"]["split"] == "test"
    assert len(ix) == len(sp) == 600 and ix.texts == list(sp.texts) and ix.level_names == ("domain", "intent")
    assert ix.labels[0] == [clinc_3k.levels[0].classes[sp.labels[0, 0]], clinc_3k.levels[1].classes[sp.labels[0, 1]]]
    again, src2 = open_index(run_dir, encoder=zoom_encoder, cache_dir=cache_root)  # the second start loads the cache
    assert src2["cached"] is True and src2["cache_dir"] == src["cache_dir"] and again.texts == ix.texts
    np.testing.assert_array_equal(again.vectors, ix.vectors)
    # a damaged cached index is reported and rebuilt, never used
    faiss_file = Path(src["cache_dir"]) / "prefix-64.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-8])
    with pytest.warns(UserWarning, match="cached index is unusable .*rebuilding"):
        rebuilt, src3 = open_index(run_dir, encoder=zoom_encoder, cache_dir=cache_root)
    assert src3["cached"] is False and len(rebuilt) == 600
    # another corpus (a dataset split, a file) gets its own cache entry
    (tmp_path / "c.txt").write_text("cancel my card\nbook a table for two\n")
    other, src4 = open_index(run_dir, corpus=str(tmp_path / "c.txt"), encoder=zoom_encoder, cache_dir=cache_root)
    assert len(other) == 2 and src4["cache_dir"] != src["cache_dir"] and other.labels == [None, None]
    assert Explorer(other, src4).search("lost card", "coarse", 5)["predicted"] is None  # no labels: no prediction
    # an index directory is loaded as it is
    path = ix.save(tmp_path / "ix")
    loaded, src5 = open_index(path, encoder=zoom_encoder)
    assert src5["kind"] == "index" and loaded.texts == ix.texts


def test_open_index_errors_are_one_line(run_dir, clinc_3k, zoom_encoder, tmp_path, explorer):
    for path, msg in [
        (tmp_path / "nope", "no such directory; pass a run directory"),
        (tmp_path, r"neither a run directory \(no record.json\) nor an index directory"),
    ]:
        with pytest.raises(ExploreError, match=msg):
            open_index(path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ExploreError, match="is a file"):
        open_index(tmp_path / "f.txt")
    with pytest.raises(ExploreError, match="has no 'dev' split; pass --split"):
        open_index(run_dir, split="dev", encoder=zoom_encoder, use_cache=False)
    path = explorer.index.save(tmp_path / "ix")
    with pytest.raises(ExploreError, match="holds its own corpus, so --corpus does not apply"):
        open_index(path, corpus="clinc150")
    other = train(clinc_3k, "flat", encoder=zoom_encoder, eval_rows=50).save(tmp_path / "flat-run")
    from fractal_embeddings.index import ZoomIndexError

    with pytest.raises(ZoomIndexError, match=r"built with run clinc150-fractal-.* not run clinc150-flat-"):
        open_index(path, run=other)


# ------------------------------------------------------------------ the API
def test_api_search_returns_labelled_hits_and_the_predicted_coarse_class(client, explorer):
    r = client.get("/api/search", params={"q": "what is my checking account balance", "zoom": "coarse", "k": 10})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    res = r.json()
    assert res["zoom"] == 64 and res["zoom_name"] == "coarse" and res["k"] == 10 and len(res["hits"]) == 10
    assert [h["rank"] for h in res["hits"]] == list(range(1, 11))
    assert all(set(h["labels"]) == {"domain", "intent"} and h["text"] for h in res["hits"])
    scores = [h["score"] for h in res["hits"]]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0
    pred = res["predicted"]
    assert pred["label"] == "banking" and pred["level"] == "domain" and pred["k"] == 10 and pred["zoom"] == 64
    assert "majority coarse label of the query's k nearest neighbours at the coarse zoom" in pred["rule"]
    # the vote, recomputed from the coarse hits (the same rows here: zoom=coarse)
    votes = [h["labels"]["domain"] for h in res["hits"]]
    assert pred["votes"] == votes.count(pred["label"]) == max(votes.count(v) for v in set(votes))
    assert [h["in_predicted"] for h in res["hits"]] == [v == pred["label"] for v in votes]
    assert res["n_in_predicted"] == pred["votes"]
    assert set(res["point"]) == {"x", "y"}
    # the prediction does not depend on the zoom of the listed hits
    fine = client.get("/api/search", params={"q": "what is my checking account balance", "zoom": 256, "k": 10}).json()
    assert fine["zoom"] == 256 and fine["zoom_name"] == "fine" and fine["predicted"] == pred
    assert client.get("/api/search", params={"q": "hi", "zoom": "128"}).json()["k"] == 10  # default k


def test_api_shows_semantic_zoom_over_many_queries(client, queries):
    """One query per intent (150 validation texts). The corpus (600 test rows) holds 4 rows per
    intent, so with k=20 most hits are other intents and the coarse zoom keeps them in the query's
    domain far more often; with k=4 the fine zoom finds the query's own intent far more often."""

    def share(zoom, k, level, which):
        out = []
        for text, domain, intent in queries:
            hits = client.get("/api/search", params={"q": text, "zoom": zoom, "k": k}).json()["hits"]
            want = domain if which == "domain" else intent
            out.append(np.mean([h["labels"][level] == want for h in hits]))
        return float(np.mean(out))

    assert share(64, 20, "domain", "domain") > share(256, 20, "domain", "domain") + 0.1
    assert share(256, 4, "intent", "intent") > share(64, 4, "intent", "intent") + 0.2


def test_api_map_is_a_cached_pca_per_prefix(client, explorer):
    ix = explorer.index
    for zoom in (64, 256):
        m = client.get("/api/map", params={"zoom": zoom, "color": "coarse"}).json()
        assert (
            m["zoom"] == zoom and m["method"] == "pca" and m["n"] == m["total"] == len(ix) == len(m["x"]) == len(m["y"])
        )
        X = ix.vectors[:, :zoom].astype(np.float64)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        Xc = X - X.mean(axis=0)
        _, s, vt = np.linalg.svd(Xc, full_matrices=False)
        for i, coord in enumerate((m["x"], m["y"])):  # the first two principal components, up to sign
            ref = Xc @ vt[i]
            assert abs(abs(np.corrcoef(ref, coord)[0, 1]) - 1) < 1e-6
        assert m["explained"][0] == pytest.approx(s[0] ** 2 / (s**2).sum(), abs=1e-4)
        assert m["level"] == "domain" and len(m["classes"]) == 10 and max(m["c"]) < 10
        fine = client.get("/api/map", params={"zoom": zoom, "color": "fine"}).json()
        assert fine["level"] == "intent" and len(fine["classes"]) == 150 and fine["x"] == m["x"]
    assert set(explorer._maps) >= {64, 256}  # computed once per prefix, then served from memory
    cached = explorer._maps[64]
    client.get("/api/map", params={"zoom": "coarse"})
    assert explorer._maps[64] is cached
    c = client.get("/api/corpus").json()
    assert c["texts"] == ix.texts and c["levels"] == ["domain", "intent"] and not c["sampled"]
    assert c["classes"]["domain"][c["codes"]["domain"][0]] == ix.labels[0][0]


def test_api_run_reports_the_record(client, run_dir):
    rec = json.loads((run_dir / "record.json").read_text())
    info = client.get("/api/run").json()
    assert info["run_id"] == rec["run_id"] and info["method"] == "fractal" and info["levels"] == ["domain", "intent"]
    assert info["accuracy"] == rec["accuracy"] and info["baseline_accuracy"] == rec["baseline"]["accuracy"]
    assert info["steerability"]["S"] == rec["steerability"]["S"] and info["dims"] == [64, 128, 192, 256]
    assert info["index"]["size"] == 600 and info["index"]["has_labels"] and info["eval"]["rows"] == 600


@pytest.mark.parametrize(
    "url, status, msg",
    [
        ("/api/search?zoom=64", 400, "q is missing or empty"),
        ("/api/search?q=%20%20&zoom=64", 400, "q is missing or empty"),
        ("/api/search?q=" + "a" * (MAX_QUERY_CHARS + 1), 400, f"at most {MAX_QUERY_CHARS} are accepted"),
        ("/api/search?q=hi&k=0", 400, "k must be an integer from 1 to 100"),
        ("/api/search?q=hi&k=101", 400, "k must be an integer from 1 to 100"),
        ("/api/search?q=hi&k=abc", 400, "k must be an integer from 1 to 100"),
        ("/api/search?q=hi&k=2.5", 400, "k must be an integer from 1 to 100"),
        ("/api/search?q=hi&k=-3", 400, "k must be an integer from 1 to 100"),
        ("/api/search?q=hi&k=%C2%B2", 400, "k must be an integer from 1 to 100"),  # a superscript two
        ("/api/search?q=hi&k=" + "9" * 5000, 400, "k must be an integer from 1 to 100"),
        ("/api/search?q=hi&zoom=%C2%B2", 400, "is not one of this index's zooms"),
        ("/api/search?q=hi&zoom=" + "6" * 5000, 400, "is not one of this index's zooms"),
        (
            "/api/search?q=hi&zoom=100",
            400,
            "zoom 100 is not one of this index's zooms; use coarse, fine or a prefix length (64, 128, 192, 256)",
        ),
        ("/api/search?q=hi&zoom=medium", 400, "is not one of this index's zooms"),
        ("/api/search?q=hi&zoom=", 400, "zoom is missing"),
        ("/api/map?zoom=65", 400, "is not one of this index's zooms"),
        ("/api/map?zoom=64&color=purple", 400, "color must be coarse or fine"),
        ("/api/nothing", 404, "not found"),
        ("/static/secrets.py", 404, "not found"),
    ],
)
def test_api_rejects_bad_input_with_json(client, url, status, msg):
    r = client.get(url)
    assert r.status_code == status and r.headers["content-type"].startswith("application/json"), (url, r.text)
    assert msg in r.json()["error"] and r.json()["status"] == status


def test_unexpected_errors_are_json_500_without_traceback(explorer, monkeypatch):
    client = TestClient(create_app(explorer), base_url="http://127.0.0.1:8765")
    assert client.post("/api/search").status_code == 405 and "GET" in client.post("/api/search").json()["error"]

    def boom(*a, **k):
        raise RuntimeError("secret internals at /home/user/thing.py line 3")

    monkeypatch.setattr(explorer, "search", boom)
    r = client.get("/api/search", params={"q": "hi"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal error; the server log has one line about it", "status": 500}
    assert "Traceback" not in r.text and "secret" not in r.text


def test_page_and_assets_are_served_and_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'id="zoom"' in html and 'type="range"' in html and 'id="q"' in html and 'id="map"' in html
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        # nothing from the network: no absolute URLs (the page must work offline)
        assert "http://" not in r.text.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in r.text
    assert "http://" not in html and "https://" not in html


# ------------------------------------------------------------------ the command line
def test_cli_errors_are_one_line(run_dir, clinc_3k, zoom_encoder, explorer, tmp_path, capsys):
    from fractal_embeddings.cli import main

    ix_dir = explorer.index.save(tmp_path / "ix")
    other = train(clinc_3k, "flat", encoder=zoom_encoder, eval_rows=50).save(tmp_path / "flat-run")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        cases = [
            (["explore", str(tmp_path / "missing"), "--port", "0"], "no such directory"),
            (["explore", str(ix_dir), "--run", str(other), "--port", "0"], "built with run clinc150-fractal-"),
            (["explore", str(run_dir), "--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
            (
                ["explore", str(run_dir), "--port", "70000"],
                "Invalid value for '--port': Input should be less than or equal to 65535",
            ),
            (["explore", str(ix_dir), "--corpus", "clinc150", "--port", "0"], "--corpus does not apply"),
        ]
        for args, msg in cases:
            t0 = time.perf_counter()
            assert main(args) == 2, args
            e = capsys.readouterr().err.strip()
            assert e.startswith("error: ") and msg in e and "\n" not in e, e
            assert time.perf_counter() - t0 < 30  # fails before encoding anything
    finally:
        busy.close()


def test_cli_serves_the_app(run_dir, zoom_encoder, explorer, tmp_path):
    """`fractal explore RUN_DIR` in a subprocess: it reuses the explorer's cached index (the
    encoder's cache is shared) and answers the API on the port it prints."""
    import httpx

    with explore_server(run_dir, zoom_encoder.cache.root) as (_, base):
        r = httpx.get(f"{base}/api/search", params={"q": "play some jazz", "zoom": "fine", "k": 3}, timeout=60)
        assert r.status_code == 200 and len(r.json()["hits"]) == 3
        assert httpx.get(f"{base}/api/run", timeout=30).json()["index"]["size"] == 600


# ------------------------------------------------------------------ a real browser
def _browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "no `chromium` on PATH: install Debian's package (apt-get install chromium) to run the browser test"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "the playwright package is not importable (pip install 'fractal-embeddings[test]'); "
            "the browser test needs it"
        )
    return chromium, sync_playwright


def test_browser_zoom_changes_the_neighbours(explorer, queries, tmp_path):
    """Headless Chromium on the served page: type a query, move the zoom slider, and the hits change.
    Over one validation query per domain with k=20 (more than the 4 rows each intent has in this
    600-row corpus, so hits cannot all be same-intent rows), the hits listed at 64 dims share the
    query's domain more often than those at 256 dims. Ends with a 1200 x 800 screenshot of a banking
    query at the coarse zoom (into $FRACTAL_EXPLORER_SCREENSHOT when set, so `make test` never
    rewrites the README's docs/explorer.png)."""
    chromium, sync_playwright = _browser()
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "explorer.png")
    by_domain = {}
    for text, domain, intent in queries:
        by_domain.setdefault(domain, (text, domain, intent))
    picked = list(by_domain.values())[:8]
    with ServerThread(create_app(explorer)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            results, box, slider = page.locator("#results"), page.locator("#q"), page.locator("#zoom")
            page.locator("#k").fill("20")
            page.locator("#k").dispatch_event("change")

            def hits_at(text, zoom):
                page.wait_for_function(
                    "([q, z]) => { const r = document.getElementById('results');"
                    " return r.dataset.q === q && r.dataset.zoom === z && r.dataset.k === '20'; }",
                    arg=[text.strip(), str(zoom)],
                    timeout=30_000,
                )
                return [li.get_attribute("data-coarse") for li in results.locator("li").all()], results.locator(
                    "li .text"
                ).all_inner_texts()

            same = {64: [], 256: []}
            changed = 0
            for text, domain, _ in picked:
                slider.focus()
                slider.press("Home")  # zoomed out: 64 dims
                box.fill(text)
                coarse_labels, coarse_texts = hits_at(text, 64)
                slider.press("End")  # zoomed in: 256 dims
                fine_labels, fine_texts = hits_at(text, 256)
                assert len(coarse_labels) == len(fine_labels) == 20
                changed += coarse_texts != fine_texts
                same[64].append(np.mean([d == domain for d in coarse_labels]))
                same[256].append(np.mean([d == domain for d in fine_labels]))
            assert changed == len(picked)  # the list changes when the slider moves
            assert np.mean(same[64]) > np.mean(same[256]) + 0.05, same
            assert page.locator("#zoom-label").inner_text().startswith("256 dims")
            assert "majority" in page.locator("#rule").inner_text()

            # the screenshot: a banking query at the coarse zoom, the map coloured by domain
            page.locator("#k").fill("10")
            page.locator("#k").dispatch_event("change")
            slider.press("Home")
            box.fill("what is my checking account balance")
            page.wait_for_function(
                "() => { const r = document.getElementById('results');"
                " return r.dataset.zoom === '64' && r.dataset.k === '10'"
                " && r.dataset.q === 'what is my checking account balance'; }",
                timeout=30_000,
            )
            page.wait_for_timeout(300)
            assert page.locator("#predicted-label").inner_text() == "banking"
            page.hover("#map", position={"x": 5, "y": 5})
            assert not errors, errors
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


# ------------------------------------------------------------------ Host header (DNS rebinding), size limits
def _client(explorer, **kw) -> TestClient:
    return TestClient(create_app(explorer, **kw), base_url="http://127.0.0.1:8765")


def _json_error(r, status: int) -> str:
    assert r.status_code == status and r.headers["content-type"].startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and "\n" not in body["error"]
    return body["error"]


def test_only_the_servers_own_host_names_are_answered(explorer):
    client = _client(explorer)
    for host in ("127.0.0.1:8765", "127.0.0.1", "localhost:8765", "LOCALHOST", "localhost.", "[::1]:8765", "::1"):
        assert client.get("/api/run", headers={"host": host}).status_code == 200, host
    for host in (
        "evil.example",
        "evil.example:8765",
        "127.0.0.1.evil.example",
        "localhost.evil.example:8765",
        "attacker.example:80@127.0.0.1",
        "0.0.0.0:8765",
    ):
        for path in ("/", "/api/search?q=hi", "/static/app.js", "/nope"):
            msg = _json_error(client.get(path, headers={"host": host}), 400)
            assert "is not allowed" in msg and "--allow-host" in msg, msg
    # a name the user allows (a --host address, a LAN name); '*' allows any
    mine = _client(explorer, allowed_hosts=["My-Box.lan", "10.1.2.3"])
    assert mine.get("/api/run", headers={"host": "my-box.lan:8765"}).status_code == 200
    assert mine.get("/api/run", headers={"host": "10.1.2.3"}).status_code == 200
    assert mine.get("/api/run", headers={"host": "localhost"}).status_code == 200
    _json_error(mine.get("/api/run", headers={"host": "other.lan"}), 400)
    assert _client(explorer, allowed_hosts=["*"]).get("/api/run", headers={"host": "any.example"}).status_code == 200


def test_url_and_body_size_limits(explorer):
    client = _client(explorer)
    longest = "€" * MAX_QUERY_CHARS  # the longest query accepted: 500 three-byte characters, 4,500 bytes encoded
    r = client.get("/api/search", params={"q": longest, "zoom": "coarse", "k": 3})
    assert r.status_code == 200 and len(r.json()["hits"]) == 3
    assert "at most 500" in _json_error(client.get("/api/search", params={"q": "a" * (MAX_QUERY_CHARS + 1)}), 400)
    msg = _json_error(client.get("/api/search", params={"q": "hi", "pad": "x" * MAX_URL_BYTES}), 414)
    assert f"at most {MAX_URL_BYTES}" in msg
    _json_error(client.get("/" + "a" * (MAX_URL_BYTES + 1)), 414)
    for method in ("GET", "POST", "PUT"):
        msg = _json_error(client.request(method, "/api/search?q=hi", content=b"x" * 100), 413)
        assert "bodies are not accepted" in msg
    assert client.post("/api/search").status_code == 405  # no body: still the method error


# ------------------------------------------------------------------ the real server (CLI) under load
@pytest.fixture(scope="module")
def served(run_dir, explorer, zoom_encoder):
    """`fractal explore RUN_DIR --allow-host my-box.lan` in a subprocess on a free port."""
    with explore_server(run_dir, zoom_encoder.cache.root, "--allow-host", "my-box.lan") as server:
        yield server


def _get(url: str, host: str | None = None, timeout: float = 120) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_served_explorer_answers_its_hosts_and_the_allowed_one(served):
    _, base = served
    assert _get(f"{base}/api/run")[0] == 200
    assert _get(f"{base}/api/run", host="my-box.lan")[0] == 200  # --allow-host
    status, body = _get(f"{base}/api/run", host="rebound.attacker.example")
    assert status == 400 and "is not allowed" in body["error"]
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:  # HTTP/1.0 without a Host header
        s.sendall(b"GET /api/run HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and b"not allowed" in reply, reply[:200]


def test_200_concurrent_searches_are_all_answered_with_bounded_memory(served, clinc_3k):
    psutil = pytest.importorskip("psutil")
    proc, base = served
    server = psutil.Process(proc.pid)
    texts = list(clinc_3k.split("val").texts)
    zooms = ("coarse", "128", "192", "fine")

    def search(i: int):
        q = urllib.parse.urlencode({"q": texts[i % len(texts)], "zoom": zooms[i % 4], "k": 1 + i % 20})
        return _get(f"{base}/api/search?{q}")

    def burst(start: int, n: int = 200) -> list:
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(search, range(start, start + n)))

    burst(0, 20)  # warm: maps computed, thread pool up
    rss0 = server.memory_info().rss
    t0 = time.perf_counter()
    first = burst(20)
    rss1 = server.memory_info().rss
    second = burst(220)  # new queries again: a leak would grow the server as much again
    rss2 = server.memory_info().rss
    took = time.perf_counter() - t0
    for status, body in first + second:
        assert status == 200 and 1 <= len(body["hits"]) <= 20, (status, body)
    assert proc.poll() is None  # still serving
    mb = 1 << 20
    assert rss1 - rss0 < 150 * mb, (rss0 / mb, rss1 / mb)
    assert rss2 - rss1 < 30 * mb, (rss1 / mb, rss2 / mb)  # bounded: the second burst adds ~nothing
    print(
        f"400 concurrent searches in {took:.1f} s; server RSS {rss0 / mb:.0f} -> {rss1 / mb:.0f} -> {rss2 / mb:.0f} MB"
    )
