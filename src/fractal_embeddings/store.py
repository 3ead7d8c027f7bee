"""The run store: a directory of run directories, one per grid point, safe to resume and to share.

``<root>/<key>/`` holds one finished run (``record.json`` + ``head.safetensors``, see
:mod:`fractal_embeddings.records`). A run is first saved into a private ``<root>/<key>.tmp-<id>``
directory and then renamed into place in one step, so a key either holds a complete run or
nothing:

* a sweep killed at any moment leaves no half-written run (at worst a ``.tmp-*`` directory, which
  :meth:`RunStore.clean` removes once it is old);
* two sweeps writing the same store never corrupt it: when both finish the same key, the first
  rename wins and the second run is discarded (training is deterministic, so they agree anyway);
* a finished run is never redone: :meth:`RunStore.has` is checked before a point is dispatched.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FractalError
from .records import RECORD_FILE, RunRecord, load_record

if TYPE_CHECKING:
    from .runs import Run

TMP_MARK = ".tmp-"


def store_dir(out: str | Path, name: str, quick: bool = False) -> Path:
    """The store of experiment ``name`` under a results directory: ``<out>/<name>`` (``<name>-quick``
    for a quick run)."""
    return Path(out) / (f"{name}-quick" if quick else name)


class RunStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in Path(key).parts or TMP_MARK in key:
            raise FractalError(f"bad run key {key!r}: use a relative path like 'clinc150/fractal/seed42'")
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / RECORD_FILE).exists()

    def put(self, key: str, run: Run) -> bool:
        """Save ``run`` (a :class:`~fractal_embeddings.runs.Run`) under ``key``; False when the key
        was already taken (by an earlier or a concurrent sweep) and this run was discarded."""
        target = self.path(key)
        if self.has(key):
            return False
        tmp = target.with_name(f"{target.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
        run.save(tmp)
        try:
            os.rename(tmp, target)  # atomic; fails when target exists and is not empty
        except OSError:
            if not self.has(key):  # an empty or broken leftover: replace it
                shutil.rmtree(target, ignore_errors=True)
                try:
                    os.rename(tmp, target)
                    return True
                except OSError:
                    pass
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return True

    def keys(self) -> list[str]:
        """Every finished key, sorted."""
        if not self.root.exists():
            return []
        return sorted(
            p.parent.relative_to(self.root).as_posix()
            for p in self.root.rglob(RECORD_FILE)
            if TMP_MARK not in p.parent.as_posix()
        )

    def records(self, prefix: str = "") -> Iterator[tuple[str, RunRecord]]:
        """``(key, record)`` of every finished run whose key starts with ``prefix``."""
        for key in self.keys():
            if key.startswith(prefix):
                yield key, load_record(self.path(key))

    def clean(self, older_than_s: float = 3600.0) -> int:
        """Remove ``.tmp-*`` leftovers of killed sweeps older than ``older_than_s``; returns how many."""
        if not self.root.exists():
            return 0
        n, now = 0, time.time()
        for p in self.root.rglob(f"*{TMP_MARK}*"):
            if p.is_dir() and now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"
