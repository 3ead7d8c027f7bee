"""Where a Qdrant zoom index lives: :class:`QdrantTarget`, a collection name and either an embedded
folder (``path``; Qdrant's local mode, no server) or a server (``url``, with an optional ``api_key``
that is never written to disk).

A target is checked when it is made, each problem a one-line
:class:`~fractal_embeddings.errors.ZoomIndexError`: a collection name Qdrant would refuse, both or
neither of path and URL, a URL that is not ``http(s)://host[:port]`` with a port in 1..65535
(:func:`~fractal_embeddings.validation.check_url`), a path under a file, an api key for a folder, a
timeout that is not a positive integer. :meth:`QdrantTarget.connect` opens a client, checked: an
embedded folder takes one client per process (shared here, closed with its last user: another
process holding the folder is a one-line error), a server must answer a listing of collections
(:func:`server_error` puts a failed request in one line).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ZoomIndexError
from ..extras import require
from ..validation import check_int, check_url

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = ["API_KEY_ENV", "QdrantTarget", "api_key_or_env", "server_error"]

API_KEY_ENV = "QDRANT_API_KEY"


def api_key_or_env(api_key: str | None) -> str | None:
    """A server's api key: ``api_key``, else ``$QDRANT_API_KEY`` (unset or empty: none)."""
    return api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None


_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
_INSTALL = "the Qdrant backend needs qdrant-client: pip install 'fractal-embeddings[qdrant]'"


# ------------------------------------------------------------------ embedded clients, shared per folder
_LOCAL_CLIENTS: dict[str, list] = {}  # resolved folder -> [client, users]


def _close_local_clients() -> None:
    for client, _ in list(_LOCAL_CLIENTS.values()):
        with contextlib.suppress(Exception):  # closing at exit: nothing left to report to
            client.close()
    _LOCAL_CLIENTS.clear()


atexit.register(_close_local_clients)


@dataclass(frozen=True)
class QdrantTarget:
    """Where a collection lives: its ``collection`` name and either an embedded folder (``path``;
    ``":memory:"`` for a collection that lives only in this process) or a server (``url``, with an
    optional ``api_key``, never written to disk). ``timeout``: seconds per server request."""

    collection: str
    path: str | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False, compare=False)
    timeout: int = 60

    def __post_init__(self) -> None:
        require("qdrant", "the Qdrant backend")
        if not isinstance(self.collection, str) or not _NAME.match(self.collection):
            raise ZoomIndexError(
                f"collection name {self.collection!r} is not valid; use 1-255 letters, digits, '_', '-' or '.'"
            )
        if (self.path is None) == (self.url is None):
            raise ZoomIndexError(
                "give a Qdrant folder (--qdrant-path DIR, embedded) or a server (--qdrant-url URL), exactly one of them"
            )
        if self.url is not None:  # before qdrant-client parses it (a bad port or host: a urllib3 traceback)
            check_url(self.url, "--qdrant-url", ZoomIndexError)
        if self.path is not None:
            if not str(self.path).strip():
                raise ZoomIndexError("--qdrant-path is empty; give the folder of the embedded Qdrant")
            p = Path(self.path)
            if self.path != ":memory:" and any(q.is_file() for q in (p, *p.parents)):
                raise ZoomIndexError(f"--qdrant-path {self.path}: a file is in the way; give a folder")
            if self.api_key:
                raise ZoomIndexError("--api-key applies to a server (--qdrant-url), not to an embedded folder")
        check_int(self.timeout, "timeout", lo=1, error=ZoomIndexError, fix="give it in seconds")

    @property
    def embedded(self) -> bool:
        return self.path is not None

    @property
    def where(self) -> str:
        """The folder (absolute) or the URL."""
        if self.path is None:
            return str(self.url)
        return self.path if self.path == ":memory:" else os.path.abspath(self.path)

    def describe(self) -> str:
        return f"Qdrant collection {self.collection!r} {'in' if self.embedded else 'at'} {self.where}"

    def to_dict(self) -> dict:
        """What ``index.json`` records: the name and the absolute folder or the URL (never the api key)."""
        return (
            {"name": self.collection, "path": self.where}
            if self.embedded
            else {"name": self.collection, "url": self.url}
        )

    @classmethod
    def from_dict(cls, d: dict, api_key: str | None = None) -> QdrantTarget:
        key = api_key_or_env(api_key)
        if d.get("url"):
            return cls(str(d["name"]), url=str(d["url"]), api_key=key)
        return cls(str(d["name"]), path=str(d["path"]))

    def connect(self) -> QdrantClient:
        """A client, checked: an embedded folder is opened (one client per folder and process, shared),
        a server answers a listing of collections; otherwise a one-line error naming the fix."""
        try:
            from qdrant_client import QdrantClient
        except ImportError:
            raise ZoomIndexError(_INSTALL) from None
        if self.path is not None:
            if self.path == ":memory:":
                return QdrantClient(location=":memory:")
            key = self.where
            if key in _LOCAL_CLIENTS:
                _LOCAL_CLIENTS[key][1] += 1
                return _LOCAL_CLIENTS[key][0]
            try:
                client = QdrantClient(path=key)
            except RuntimeError as e:  # the folder's lock is held by another client
                raise ZoomIndexError(
                    f"{key}: {' '.join(str(e).split())[:160]} (an embedded Qdrant folder takes one client at a time); "
                    "close the other process or serve the folder with a Qdrant server (--qdrant-url)"
                ) from None
            except (OSError, ValueError) as e:
                raise ZoomIndexError(f"{key}: cannot open an embedded Qdrant here ({str(e)[:120]})") from None
            _LOCAL_CLIENTS[key] = [client, 1]
            return client
        client = QdrantClient(url=self.url, api_key=self.api_key, timeout=self.timeout, check_compatibility=False)
        try:
            client.get_collections()
        except Exception as e:  # every failure to reach the server is reported the same way
            client.close()
            raise ZoomIndexError(f"{self.describe()}: {server_error(e)}") from None
        return client

    def release(self, client: QdrantClient) -> None:
        """Done with a client from :meth:`connect` (an embedded folder's is closed with its last user)."""
        if self.path is not None and self.path != ":memory:":
            entry = _LOCAL_CLIENTS.get(self.where)
            if entry is not None and entry[0] is client:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _LOCAL_CLIENTS[self.where]
        client.close()


def server_error(e: BaseException) -> str:
    """One line for a failed server request: unreachable, refused api key, or the server's message."""
    status = getattr(e, "status_code", None)
    if status in (401, 403):
        return f"the server refused the request (HTTP {status}); check --api-key (or ${API_KEY_ENV})"
    if status is not None:
        content = getattr(e, "content", b"") or b""
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        return f"the server answered HTTP {status} ({' '.join(text.split())[:160]})"
    reason = " ".join(str(e).split())[:160] or type(e).__name__
    return f"cannot reach the server ({reason}); start it, or check --qdrant-url"
