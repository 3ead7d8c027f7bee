"""One validation contract: the checks the Python API and the CLI share.

Every public function and config checks its arguments here, before any work, and raises a
:class:`~fractal_embeddings.errors.FractalError` (or the subclass the caller names) whose message is
one line naming the problem and the fix. The CLI maps flags to these parameters and does not check
them again. One rule each:

* integers: :func:`is_int` / :func:`check_int` (Python and numpy integers, never ``bool``);
  :func:`check_seed` (``[0, 2**32)``, what numpy and torch take); reals: :func:`check_real`;
* texts: :func:`check_texts` (a list of strings, never one string read as its characters) and
  :func:`check_query` (a search query with a character that is not white space);
* labels: :func:`check_labels` (whole numbers in ``[0, n_classes)`` per level, no silent
  truncation of floats, every fine class under one coarse class);
* arrays: :func:`check_matrix` (2-D, finite, of the width asked);
* addresses: :func:`check_url` (``http(s)://host[:port]`` with a port in ``1..65535``);
* output paths: :func:`check_output_dir` (a folder a writer replaces in one step) and
  :func:`check_output_file` (one file written in one step).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import FractalError, OutputPathError

SEED_LIMIT = 2**32  # numpy's seeds are 32-bit

Error = type[FractalError]


# ------------------------------------------------------------------ numbers
def is_int(v: object) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v: object) -> bool:
    """A finite-or-not Python or numpy real number, not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def shown(v: Any, limit: int = 60) -> str:
    """``repr(v)`` on one line and at most ``limit`` characters: a value quoted inside a one-line error
    (an array's or a long string's repr would span lines or pages)."""
    r = " ".join(repr(v).split())
    return r if len(r) <= limit else r[: limit - 3] + "..."


def quoted(value: Any, limit: int = 60) -> str:
    """A user's label or name inside a one-line message: its text quoted and escaped (no raw newline
    or control character), shortened to ``limit`` characters."""
    r = repr(str(value))
    return r if len(r) <= limit else r[: limit - 4] + "...'"


def _range_text(lo: int | float | None, hi: int | float | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def check_int(
    v: Any, name: str, *, lo: int | None = None, hi: int | None = None, error: Error = FractalError, fix: str = ""
) -> int:
    """``v`` as an ``int`` when it is an integer in ``[lo, hi]`` (either bound optional); else ``error``."""
    if not is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        tail = f"; {fix}" if fix else ""
        raise error(f"{name} must be an integer{_range_text(lo, hi)}, got {shown(v)}{tail}")
    return int(v)


def check_real(
    v: Any,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    error: Error = FractalError,
) -> float:
    """``v`` as a finite ``float`` in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); else ``error``."""
    ok = is_real(v) and bool(np.isfinite(v))
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        rng = (f" > {lo}" if lo_open else f" >= {lo}") if lo is not None else ""
        if hi is not None:
            rng += f"{' and' if rng else ''} <= {hi}"
        raise error(f"{name} must be a finite number{rng}, got {shown(v)}")
    return float(v)


def check_seed(seed: Any, name: str = "seed", error: Error = FractalError) -> int:
    """``seed`` as an ``int`` when it is an integer in ``[0, 2**32)`` (what numpy and torch take)."""
    if not is_int(seed) or not 0 <= seed < SEED_LIMIT:
        raise error(f"{name} must be an integer in [0, 2**32) (0 to {SEED_LIMIT - 1}), got {shown(seed)}")
    return int(seed)


_SCALARS: dict[type, tuple[str, typing.Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, (bool, np.bool_))),
    int: ("an integer", is_int),
    float: ("a finite number", lambda v: is_real(v) and math.isfinite(float(v))),
    str: ("a string", lambda v: isinstance(v, str)),
}


def check_fields(obj: Any, what: str, error: Error = FractalError) -> None:
    """Raise unless every field of the dataclass ``obj`` holds a value of its annotated scalar type:
    ``bool``, ``int`` (an integer), ``float`` (a finite real number; an integer too), ``str``, each
    ``| None`` where the annotation says so. Fields of other types are left to their owner's checks.
    ``what`` names the object in the message (e.g. ``method fractal``)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        hint = hints.get(f.name)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = typing.get_args(hint) if union else (hint,)
        scalars = [a for a in args if a in _SCALARS]
        if not scalars or len(scalars) + (type(None) in args) != len(args):
            continue
        v = getattr(obj, f.name)
        if (v is None and type(None) in args) or any(_SCALARS[a][1](v) for a in scalars):
            continue
        want = " or ".join(_SCALARS[a][0] for a in scalars) + (" or None" if type(None) in args else "")
        raise error(f"{what}: option {f.name} must be {want}, got {v!r}")


# ------------------------------------------------------------------ texts and labels
def check_texts(texts: Any, name: str = "texts", *, error: Error = FractalError, allow_empty: bool = True) -> list[str]:
    """``texts`` as a list of strings. A single string is refused (it would be read as its characters),
    as are non-string items and, unless ``allow_empty``, an empty list."""
    if isinstance(texts, (str, bytes)):
        raise error(f"{name} must be a list of strings, got one {type(texts).__name__}; wrap it: [{texts[:30]!r}]")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Iterable):
        raise error(f"{name} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise error(f"{name}[{i}] is a {type(t).__name__}, not a string; give {name} as strings")
    if not out and not allow_empty:
        raise error(f"{name} is empty; give at least one string")
    return out


def check_query(query: Any, name: str = "query", error: Error = FractalError) -> str:
    """``query`` when it is a string with a character that is not white space."""
    if not isinstance(query, str):
        raise error(f"{name} must be a string, got {type(query).__name__}")
    if not query.strip():
        raise error(f"{name} is empty; give the text to search for")
    return query


def check_labels(
    labels: Any,
    n_classes: Sequence[int] | None = None,
    *,
    name: str = "labels",
    n_rows: int | None = None,
    error: Error = FractalError,
    nested: bool = True,
) -> np.ndarray:
    """``labels`` as an int64 matrix ``(rows, levels)`` (a 1-D sequence is one level).

    Refused: non-numeric or non-whole values (floats are never truncated), negative ids, ids at or
    above ``n_classes[j]`` when given, a row count other than ``n_rows`` when given, and, with
    ``nested`` and two or more levels, a class of level k+1 seen under two classes of level k."""
    try:
        arr = np.asarray(labels)
    except (ValueError, TypeError):
        raise error(f"{name} must be a (rows, levels) array of integer class ids") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise error(f"{name} must be a (rows, levels) array of integer class ids, got shape {arr.shape}")
    whole = arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr)))
    if arr.size and arr.dtype.kind not in "iub" and not whole:
        raise error(f"{name} must hold whole-number class ids, got dtype {arr.dtype}; map labels to 0..n-1 first")
    if arr.dtype.kind == "b":
        raise error(f"{name} must hold integer class ids, got booleans")
    out = arr.astype(np.int64)
    if n_rows is not None and out.shape[0] != n_rows:
        raise error(f"{name} has {out.shape[0]} rows for {n_rows} texts; give one label row per text")
    if out.size and out.min() < 0:
        raise error(f"{name} holds a negative class id ({int(out.min())}); class ids run from 0 to n_classes - 1")
    if n_classes is not None:
        if len(n_classes) != out.shape[1]:
            raise error(f"{name} has {out.shape[1]} levels, expected {len(n_classes)}")
        for j, n in enumerate(n_classes):
            if out.size and out[:, j].max() >= n:
                raise error(
                    f"{name} level {j} holds class id {int(out[:, j].max())}, but that level has {n} classes "
                    f"(ids 0 to {n - 1})"
                )
    if nested:
        for j in range(1, out.shape[1]):
            parents: dict[int, int] = {}
            for child, parent in zip(out[:, j].tolist(), out[:, j - 1].tolist(), strict=True):
                if parents.setdefault(child, parent) != parent:
                    raise error(
                        f"{name}: class {child} of level {j} sits under classes {parents[child]} and {parent} of "
                        f"level {j - 1}; every class needs one parent"
                    )
    return out


def check_matrix(
    x: Any, name: str = "x", *, width: int | None = None, error: Error = FractalError, allow_1d: bool = False
) -> np.ndarray:
    """``x`` as a finite float32 matrix ``(rows, width)``; a 1-D vector becomes one row with ``allow_1d``."""
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError):
        raise error(f"{name} must be a numeric (rows, dims) array, got {type(x).__name__}") from None
    if arr.ndim == 1 and allow_1d:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise error(f"{name} must be a 2-D (rows, dims) array, got shape {arr.shape}; use x.reshape(1, -1) for one row")
    if width is not None and arr.shape[1] != width:
        raise error(f"{name} has {arr.shape[1]} columns; this model takes {width} (the encoder's dimension)")
    if arr.size and not np.all(np.isfinite(arr)):
        raise error(f"{name} holds NaN or infinite values; drop or fix those rows")
    return arr


# ------------------------------------------------------------------ addresses
_HOST = re.compile(r"^[A-Za-z0-9._~\-]+$")


def check_url(url: Any, option: str = "--url", error: Error = FractalError) -> str:
    """``url`` when it is ``http(s)://host[:port][/path]`` with a valid host and a port in 1..65535."""
    fix = f"give {option} as http://host:port (e.g. http://localhost:6333)"
    if not isinstance(url, str) or not url.strip():
        raise error(f"{option} is empty; {fix}")
    if any(c.isspace() for c in url):
        raise error(f"{option} {url!r} holds white space; {fix}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise error(f"{option} {url!r} is not a valid URL ({exc}); {fix}") from None
    if parts.scheme not in ("http", "https"):
        raise error(f"{option} {url!r} must start with http:// or https://; {fix}")
    host = parts.hostname or ""
    if not host or not (_HOST.match(host) or ":" in host):
        raise error(f"{option} {url!r} names no host; {fix}")
    if port is not None and not 1 <= port <= 65535:
        raise error(f"{option} {url!r} has port {port}, outside 1..65535; {fix}")
    return url


# ------------------------------------------------------------------ output paths
def nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(os.sep)


def check_output_dir(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    marker: str | None = None,
    what: str = "a run",
    option: str = "--out",
    partial: Iterable[str] = (),
    error: type[FractalError] = OutputPathError,
) -> Path:
    """Raise ``error`` (one line naming the fix) unless ``path`` may become the folder a writer makes.

    Accepted: a path that does not exist yet (its parent folders are created by the writer), an empty
    folder, or a folder holding ``marker`` (what this writer makes: ``record.json`` for a run,
    ``index.json`` for an index, ...) when ``overwrite``. Refused: the path or a folder above it is a
    file; the folder it would be written in is not writable; a non-empty folder without ``marker``
    (``overwrite`` never deletes it) unless it holds only ``partial`` files (what an interrupted
    writer of the same kind leaves, e.g. ``head.safetensors``), which ``overwrite`` may replace.
    ``what`` names the content with its article ("a run"), ``option`` the command's flag. Creates
    nothing; returns ``Path(path)``."""
    out = Path(path)
    if str(path) == "":
        raise error(f"{option} is empty; give the folder to write")
    absolute = Path(os.path.abspath(out))
    if absolute.parent == absolute:
        raise error(f"{out} is the root folder; choose another {option}")
    existing = nearest_existing(absolute)
    if not existing.is_dir():
        where = f"{out}" if existing == absolute else f"{out}: {existing}"
        raise error(f"{where} is a file, not a directory; choose another {option} (a new or empty folder)")
    if existing == absolute:
        entries = sorted(p.name for p in absolute.iterdir())
        if entries:
            name = what.split(" ", 1)[-1]
            if marker is not None and marker in entries:
                if not overwrite:
                    raise error(
                        f"{out} already holds {what}; choose another {option} or pass --overwrite to replace it"
                    )
            elif set(entries) <= set(partial):
                if not overwrite:
                    raise error(
                        f"{out} holds an unfinished {name} (no {marker}); pass --overwrite to replace it or "
                        f"choose another {option}"
                    )
            else:
                held = f" ({marker} missing)" if marker else ""
                raise error(
                    f"{out} is not empty and holds no {name}{held}; choose another {option} (a new or "
                    f"empty folder): --overwrite never deletes other files"
                )
        writable_in = absolute.parent
    else:
        writable_in = existing
    if not os.access(writable_in, os.W_OK | os.X_OK):
        raise error(
            f"can't write in {writable_in} (permission denied or a read-only file system); choose another {option}"
        )
    return out


def check_output_file(
    path: str | os.PathLike, overwrite: bool = False, option: str = "--out", suffix: str = ".csv"
) -> Path:
    """Raise (one line) unless ``path`` may become the file written: a ``suffix`` name, not a folder, an
    existing file only with ``overwrite``, a writable folder. Creates nothing."""
    out = Path(path)
    if str(path) == "" or out.suffix.lower() != suffix:
        raise OutputPathError(f"{option} must name a {suffix} file, got {str(path)!r}")
    absolute = Path(os.path.abspath(out))
    if absolute.is_dir():
        raise OutputPathError(f"{out} is a directory; give {option} a {suffix} file name")
    if absolute.exists() and not overwrite:
        raise OutputPathError(f"{out} already exists; choose another {option} or pass --overwrite to replace it")
    existing = nearest_existing(absolute.parent)
    if not existing.is_dir():
        raise OutputPathError(f"{out}: {existing} is a file, not a directory; choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"can't write in {existing} (permission denied or read-only); choose another {option}")
    return out
