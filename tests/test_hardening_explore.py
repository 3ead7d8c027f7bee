"""Hardening of `fractal explore`: only its own host names are answered (DNS rebinding), URL and body
size limits, and a bounded load test on a real uvicorn server. Reuses the shared CLINC150 subset run."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import stat
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("starlette", reason="the explore extra is not installed: pip install 'fractal-embeddings[explore]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient

from conftest import explore_server
from fractal_embeddings.explore import MAX_QUERY_CHARS, MAX_URL_BYTES, Explorer, create_app, open_index

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(clinc_3k_run, tmp_path_factory):
    return clinc_3k_run.save(tmp_path_factory.mktemp("hardening-explore") / "run")


@pytest.fixture(scope="module")
def explorer(run_dir, zoom_encoder, tmp_path_factory):
    ix, source = open_index(run_dir, encoder=zoom_encoder, cache_dir=tmp_path_factory.mktemp("explore-cache"))
    return Explorer(ix, source)


def _client(explorer, **kw) -> TestClient:
    return TestClient(create_app(explorer, **kw), base_url="http://127.0.0.1:8765")


def _json_error(r, status: int) -> str:
    assert r.status_code == status and r.headers["content-type"].startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and "\n" not in body["error"]
    return body["error"]


# ------------------------------------------------------------------ Host header (DNS rebinding)
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


# ------------------------------------------------------------------ index and run files follow the umask
def test_index_and_run_folders_get_the_umask_default_modes(explorer, clinc_3k_run, tmp_path):
    old = os.umask(0o027)
    try:
        ix_dir = explorer.index.save(tmp_path / "ix")
        run = clinc_3k_run.save(tmp_path / "run")
    finally:
        os.umask(old)
    paths = [ix_dir, *ix_dir.rglob("*"), run, *run.rglob("*")]
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o750 if p.is_dir() else 0o640), (p, oct(mode))
