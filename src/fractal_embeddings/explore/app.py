"""The explorer's web app: the Starlette routes over an :class:`~.logic.Explorer`, their JSON answers
and errors, and the page (``static/``). The ``Host`` guard in front of it lives in :mod:`.server`."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..extras import require
from .logic import BadRequest, ExploreError, Explorer
from .server import HostGuard, allowed_host_names

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}

log = logging.getLogger("fractal_embeddings.explore")


class JsonErrors:
    """Outermost ASGI layer: an exception that escapes the app becomes a JSON 500 without traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:  # the catch-all the API promises
            log.error(
                "explore: %s %s failed: %s: %s",
                scope.get("method"),
                scope.get("path"),
                type(e).__name__,
                str(e).splitlines()[0][:200] if str(e) else "",
            )
            if started:
                raise
            body = json.dumps({"error": "internal error; the server log has one line about it", "status": 500}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


def check_installed() -> None:
    """Raise a one-line error unless the ``explore`` extra (Starlette, uvicorn) is installed."""
    require("explore", "the explorer")


def static_page(name: str) -> bytes:
    """A file of the page (``static/``), or a one-line error when the package was installed without them."""
    path = STATIC_DIR / name
    if not path.is_file():
        raise ExploreError(f"{path}: missing; the package was installed without its explore/static files")
    return path.read_bytes()


def api_answers(explorer: Explorer) -> dict[str, Callable[[Mapping[str, str]], dict]]:
    """The API: path -> the :class:`Explorer` call answering a request's query parameters."""
    return {
        "/api/search": lambda p: explorer.search(
            p.get("q"), p.get("zoom", "fine"), p.get("k"), p.get("mode"), p.get("candidates")
        ),
        "/api/map": lambda p: explorer.map(p.get("zoom", "coarse"), p.get("color", "coarse")),
        "/api/corpus": lambda p: explorer.corpus(),
        "/api/run": lambda p: explorer.run_info(),
    }


def create_app(explorer: Explorer, *, allowed_hosts: Sequence[str] = ()) -> Starlette:
    """The Starlette app over an :class:`Explorer` (needs the ``explore`` extra).

    It answers requests whose ``Host`` is ``127.0.0.1``, ``localhost`` or ``::1`` (any port), or a name
    in ``allowed_hosts`` (``"*"``: any host; for a server reached under another name or address);
    other hosts get a 400 (DNS rebinding)."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError:
        raise ExploreError(
            "the explorer needs Starlette and uvicorn: pip install 'fractal-embeddings[explore]'"
        ) from None

    index_html = static_page("index.html")
    static = {name: (static_page(name), ctype) for name, ctype in STATIC_FILES.items()}
    nocache = {"cache-control": "no-store"}

    def api(fn: Callable[[Any], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await run_in_threadpool(fn, request.query_params)
            except BadRequest as e:
                return JSONResponse({"error": str(e), "status": 400}, status_code=400)
            return JSONResponse(data, headers=nocache)

        return endpoint

    async def home(request: Request) -> Response:
        return Response(index_html, media_type="text/html; charset=utf-8", headers=nocache)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            raise HTTPException(404)
        body, ctype = static[name]
        return Response(body, media_type=ctype, headers=nocache)

    async def http_error(request: Request, exc: Any) -> Response:  # exc: an HTTPException
        msg = {
            404: "not found: the API is /api/search, /api/map, /api/corpus and /api/run",
            405: "method not allowed: the API answers GET",
        }.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": msg, "status": exc.status_code}, status_code=exc.status_code)

    routes = [
        Route("/", home),
        Route("/static/{name}", asset),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        *[Route(path, api(answer)) for path, answer in api_answers(explorer).items()],
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(JsonErrors), Middleware(HostGuard, allowed=allowed_host_names(allowed_hosts))],
    )
    app.state.explorer = explorer
    return app
