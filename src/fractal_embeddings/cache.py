"""The embedding cache: ``.npy`` arrays (memory-mappable) + JSON metadata, written atomically.

Key = sha256 of the encoder identity (model name + weight fingerprint, backend, pooling,
normalisation, max length, prompt) and of the texts' content. An entry is two files under
``<root>/embeddings/<key[:2]>/``: ``<key>.npy`` then ``<key>.json``; the JSON is written last and
is the commit marker. A reader checks the JSON against the request (identity, row count) and the
array against the JSON (shape, dtype, sha256 of the bytes). Anything that does not match is
reported with a warning naming the reason, deleted, and rebuilt by the caller — never used.

``$FRACTAL_CACHE`` overrides the root (default: the user cache dir of ``fractal-embeddings``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import platformdirs

CACHE_ENV = "FRACTAL_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("fractal-embeddings"))


def texts_sha256(texts: Sequence[str]) -> str:
    """Content hash of an ordered list of texts (length-prefixed, so boundaries are unambiguous)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", errors="surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class EmbeddingCache:
    """Content-addressed store of embedding matrices."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    def key(self, identity: dict, text_hash: str) -> str:
        blob = json.dumps({"v": FORMAT_VERSION, "encoder": identity, "texts": text_hash}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def paths(self, key: str) -> tuple[Path, Path]:
        d = self.root / "embeddings" / key[:2]
        return d / f"{key}.npy", d / f"{key}.json"

    def _reject(self, key: str, reason: str) -> None:
        warnings.warn(f"embedding cache entry {key[:12]} is unusable ({reason}); rebuilding it", stacklevel=3)
        for p in self.paths(key):
            p.unlink(missing_ok=True)

    def get(self, key: str, identity: dict, n_rows: int) -> np.ndarray | None:
        """The stored matrix as a read-only memory map, or ``None`` (missing, or rejected with a warning)."""
        npy, meta_path = self.paths(key)
        if not meta_path.exists():
            if npy.exists():  # array without its commit marker: an interrupted write
                self._reject(key, "incomplete write: array without metadata")
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._reject(key, "metadata is not valid JSON")
            return None
        if meta.get("encoder") != identity or meta.get("n_rows") != n_rows or meta.get("format") != FORMAT_VERSION:
            self._reject(key, "metadata does not match the request")
            return None
        try:
            digest = hashlib.sha256(npy.read_bytes()).hexdigest()
        except OSError:
            self._reject(key, "array file is missing")
            return None
        if digest != meta.get("sha256"):
            self._reject(key, "array bytes do not match their sha256")
            return None
        try:
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):
            self._reject(key, "array file cannot be read")
            return None
        if arr.shape != (n_rows, meta.get("dim")) or arr.dtype != np.float32:
            self._reject(key, f"array shape {arr.shape} does not match the metadata")
            return None
        return arr

    def put(self, key: str, array: np.ndarray, identity: dict, n_rows: int, **extra) -> None:
        array = np.asarray(array, dtype=np.float32)
        if array.shape[0] != n_rows:
            raise ValueError(f"array has {array.shape[0]} rows for {n_rows} texts")
        npy, meta_path = self.paths(key)
        data = _npy_bytes(array)
        atomic_write_bytes(npy, data)
        meta = {"format": FORMAT_VERSION, "key": key, "encoder": identity, "n_rows": n_rows,
                "dim": int(array.shape[1]), "dtype": "float32", "sha256": hashlib.sha256(data).hexdigest(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
