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
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from .atomic import atomic_write_bytes
from .errors import FractalError
from .validation import nearest_existing

CACHE_ENV = "FRACTAL_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$FRACTAL_CACHE`` (checked: not a file) or the user cache dir of ``fractal-embeddings``."""
    env = os.environ.get(CACHE_ENV)
    if not env:
        return Path(platformdirs.user_cache_dir("fractal-embeddings"))
    root = Path(env).expanduser()
    check_cache_root(root, f"${CACHE_ENV} ({env})", f"point {CACHE_ENV} at a folder, or unset it")
    return root


def check_cache_root(root: Path, what: str, fix: str) -> None:
    """Raise (one line) when ``root`` or a folder above it is a file: the cache could not be written."""
    found = nearest_existing(Path(os.path.abspath(root)))
    if not found.is_dir():
        where = "is a file" if found == Path(os.path.abspath(root)) else f"is under {found}, a file"
        raise FractalError(f"the embedding cache {what} {where}, not a folder; {fix}")


def texts_sha256(texts: Sequence[str]) -> str:
    """Content hash of an ordered list of texts (length-prefixed, so boundaries are unambiguous)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", errors="surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class EmbeddingCache:
    """Content-addressed store of embedding matrices."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        check_cache_root(self.root, str(self.root), "give the cache a folder (cache_dir)")

    def key(self, identity: dict, text_hash: str) -> str:
        blob = json.dumps({"v": FORMAT_VERSION, "encoder": identity, "texts": text_hash}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def paths(self, key: str) -> tuple[Path, Path]:
        d = self.root / "embeddings" / key[:2]
        return d / f"{key}.npy", d / f"{key}.json"

    def _reject(self, key: str, reason: str) -> None:
        left = []
        for p in self.paths(key):
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
            except OSError as e:
                left.append(f"{p.name}: {e.strerror or e}")
        note = f"; could not delete {', '.join(left)}: remove it by hand" if left else ""
        warnings.warn(f"embedding cache entry {key[:12]} is unusable ({reason}); rebuilding it{note}", stacklevel=3)

    def get(self, key: str, identity: dict, n_rows: int) -> np.ndarray | None:
        """The stored matrix as a read-only memory map, or ``None`` (missing, or rejected with a warning).

        Any malformed entry -- metadata that is not a JSON object or lacks / mistypes a field, an array
        file that is truncated, unreadable, of another dtype or shape -- is reported, deleted and
        left for the caller to rebuild; a cache entry never raises."""
        npy, meta_path = self.paths(key)
        if not meta_path.exists() and not meta_path.is_symlink():
            if npy.exists() or npy.is_symlink():  # array without its commit marker: an interrupted write
                self._reject(key, "incomplete write: array without metadata")
            return None
        reason = None
        try:
            reason, arr = self._check(npy, meta_path, identity, n_rows)
        except Exception as e:  # noqa: BLE001 - whatever a damaged entry raises, it is rebuilt, not fatal
            reason = f"unreadable: {type(e).__name__}"
        if reason is not None:
            self._reject(key, reason)
            return None
        return arr

    @staticmethod
    def _check(npy: Path, meta_path: Path, identity: dict, n_rows: int) -> tuple[str | None, np.ndarray | None]:
        """``(None, array)`` for a sound entry, else ``(reason, None)``."""
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "metadata is not valid JSON", None
        if not isinstance(meta, dict):
            return f"metadata is a JSON {type(meta).__name__}, not an object", None
        if (
            type(meta.get("format")) is not int
            or meta["format"] != FORMAT_VERSION
            or meta.get("encoder") != identity
            or type(meta.get("n_rows")) is not int
            or meta["n_rows"] != n_rows
        ):
            return "metadata does not match the request", None
        dim, dtype, sha = meta.get("dim"), meta.get("dtype"), meta.get("sha256")
        if type(dim) is not int or dim < 0 or dtype != "float32" or not isinstance(sha, str):
            return "metadata lacks a valid dim, dtype or sha256", None
        try:
            digest = hashlib.sha256(npy.read_bytes()).hexdigest()
        except OSError:
            return "array file is missing or unreadable", None
        if digest != sha:
            return "array bytes do not match their sha256", None
        try:
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return "array file cannot be read (truncated or not an .npy file)", None
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
            return f"array dtype {getattr(arr, 'dtype', type(arr).__name__)} is not float32", None
        if arr.shape != (n_rows, dim):
            return f"array shape {arr.shape} does not match the metadata ({n_rows}, {dim})", None
        return None, arr

    def put(self, key: str, array: np.ndarray, identity: dict, n_rows: int, **extra: Any) -> None:
        array = np.asarray(array, dtype=np.float32)
        if array.shape[0] != n_rows:
            raise ValueError(f"array has {array.shape[0]} rows for {n_rows} texts")
        npy, meta_path = self.paths(key)
        data = _npy_bytes(array)
        atomic_write_bytes(npy, data)
        meta = {
            "format": FORMAT_VERSION,
            "key": key,
            "encoder": identity,
            "n_rows": n_rows,
            "dim": int(array.shape[1]),
            "dtype": "float32",
            "sha256": hashlib.sha256(data).hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra,
        }
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
