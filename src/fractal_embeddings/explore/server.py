"""Serving the explorer: the ``Host`` guard in front of the app (DNS rebinding, over-long URLs, request
bodies), binding a port with one-line errors, and uvicorn in the foreground or a background thread."""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .logic import MAX_QUERY_CHARS, ExploreError

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_URL_BYTES = 8192


def host_name(value: str) -> str:
    """The host of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``), lower-cased, no trailing dot."""
    v = value.strip().lower()
    if v.startswith("["):
        v = v[1 : v.find("]")] if "]" in v else v[1:]
    elif v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


def allowed_host_names(allowed_hosts: Sequence[str] = ()) -> frozenset[str]:
    """The host names the explorer answers: the loopback names plus ``allowed_hosts`` (``*``: any)."""
    return frozenset(host_name(h) if h.strip() != "*" else "*" for h in (*LOOPBACK_HOSTS, *allowed_hosts) if h.strip())


class HostGuard:
    """ASGI layer before the app: a ``Host`` this server doesn't answer to (DNS rebinding) is a 400, an
    over-long URL a 414, a request body a 413 -- each a one-line JSON error, nothing read further."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    @staticmethod
    async def _refuse(send: Send, status: int, msg: str) -> None:
        body = json.dumps({"error": msg, "status": status}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers") or []:
            headers.setdefault(k.lower(), v)
        raw_host = headers.get(b"host", b"").decode("latin-1")
        host = host_name(raw_host)
        if "*" not in self.allowed and host not in self.allowed:
            shown = repr(raw_host[:60]) if raw_host else "missing"
            await self._refuse(
                send,
                400,
                f"host {shown} is not allowed: this explorer answers only "
                f"{', '.join(sorted(self.allowed))}; open it at http://127.0.0.1:PORT/, or "
                "start it with --allow-host NAME (allowed_hosts=[...]) for another name",
            )
            return
        size = len(scope.get("raw_path") or scope.get("path", "").encode()) + len(scope.get("query_string") or b"")
        if size > MAX_URL_BYTES:
            await self._refuse(
                send,
                414,
                f"the URL has {size} bytes; at most {MAX_URL_BYTES} are accepted (queries "
                f"are at most {MAX_QUERY_CHARS} characters)",
            )
            return
        length = headers.get(b"content-length", b"0").strip()
        if (length and length != b"0") or b"transfer-encoding" in headers:
            await self._refuse(
                send, 413, "request bodies are not accepted: the API answers GET with its input in the query string"
            )
            return
        await self.app(scope, receive, send)


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port`` 0: any free port), or a one-line error."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ExploreError(f"--port must be an integer from 0 to 65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ExploreError(
            f"cannot resolve host {host!r} ({e.strerror}); use 127.0.0.1 (default) or an address of this machine"
        ) from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ExploreError(
                f"port {port} on {host} is in use (another server, or an explorer already running); "
                "pass --port with another number, or --port 0 for any free port"
            ) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise ExploreError(
                f"not allowed to listen on {host}:{port} (ports below 1024 need privileges); "
                "pass --port 8765 or another port above 1023"
            ) from None
        raise ExploreError(f"cannot listen on {host}:{port} ({e.strerror}); pass another --host or --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _server(app: ASGIApp, sock: socket.socket, log_level: str = "warning") -> uvicorn.Server:
    try:
        import uvicorn
    except ImportError:
        raise ExploreError(
            "the explorer needs Starlette and uvicorn: pip install 'fractal-embeddings[explore]'"
        ) from None
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(app: ASGIApp, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on a socket from :func:`bind` until interrupted (Ctrl+C)."""
    _server(app, sock, log_level).run(sockets=[sock])


class ServerThread:
    """``app`` served by uvicorn in a background thread (for notebooks and tests)::

    with ServerThread(create_app(ex)) as url:   # port 0: a free port
        ...
    """

    def __init__(self, app: ASGIApp, host: str = DEFAULT_HOST, port: int = 0, log_level: str = "warning") -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = _server(app, self.sock, log_level)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True, name="fractal-explore"
        )

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        t0 = time.perf_counter()
        while not self.server.started:
            if not self.thread.is_alive() or time.perf_counter() - t0 > timeout:
                raise ExploreError(f"the explorer server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
