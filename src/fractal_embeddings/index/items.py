"""The item table of a zoom index: what is stored per row besides its vectors.

Row ``r`` of an index is the item ``ids[r]`` with its text, payload (any JSON value) and class
names per level (``labels[r]``, one name per ``level_names`` entry, or ``None``). :class:`ItemTable`
checks a batch of items before anything is encoded (:meth:`ItemTable.check`), appends it once its
vectors are in (:meth:`ItemTable.append`), and is written to and read from the ``items`` field of
``index.json`` as four parallel columns (:meth:`ItemTable.columns`, :meth:`ItemTable.from_columns`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ZoomIndexError

COLUMNS = ("ids", "texts", "payloads", "labels")  # the keys of ``index.json``'s ``items``, in this order


class ItemBatch(NamedTuple):
    """Items checked by :meth:`ItemTable.check`, ready for :meth:`ItemTable.append`."""

    ids: list
    texts: list[str]
    payloads: list
    labels: list[list[str] | None]


def check_id(i: Any) -> int | str:
    """An item id as stored: a Python int or a string (bools and other types are refused)."""
    if isinstance(i, (bool, np.bool_)):
        raise ZoomIndexError(f"ids must be ints or strings, got {i!r}")
    if isinstance(i, (int, np.integer)):
        return int(i)
    if isinstance(i, str):
        return i
    raise ZoomIndexError(f"ids must be ints or strings, got {type(i).__name__} {i!r}")


def _json_value(value: Any, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ZoomIndexError(f"{what} is not JSON-serialisable ({e}); payloads must be plain JSON values") from None
    return value


class ItemTable:
    """Ids, texts, payloads and per-level label names of an index's rows, and the id -> row map."""

    def __init__(self, level_names: Sequence[str] = ()):
        self.level_names = tuple(level_names)
        self.ids: list = []
        self.texts: list[str] = []
        self.payloads: list = []
        self.labels: list[list[str] | None] = []
        self._rows: dict = {}  # id -> row

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def item(self, row: int) -> dict[str, Any]:
        """Row ``row`` as :class:`~fractal_embeddings.index.base.Hit` fields: id, text, labels by level, payload."""
        lab = self.labels[row]
        return {
            "id": self.ids[row],
            "text": self.texts[row],
            "labels": dict(zip(self.level_names, lab, strict=True)) if lab is not None else None,
            "payload": self.payloads[row],
        }

    # ------------------------------------------------------------------ adding
    def check(
        self,
        texts: list[str],
        ids: Sequence | None = None,
        payloads: Sequence | None = None,
        labels: Sequence[Sequence[str] | None] | None = None,
    ) -> ItemBatch:
        """Check a batch of items against the table and each other, without adding it: one string per
        text; ids ints or strings, unique in the table (default: after the largest int id); one JSON
        payload and one label row (a class name per level, or ``None``) per text."""
        n = len(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ZoomIndexError(f"text {i} is a {type(t).__name__}, not a string")
        if ids is None:
            start = max((i + 1 for i in self.ids if isinstance(i, int)), default=0)
            ids = list(range(start, start + n))
        else:
            ids = [check_id(i) for i in ids]
        if len(ids) != n:
            raise ZoomIndexError(f"{len(ids)} ids for {n} texts; give one id per text")
        seen = set(self._rows)
        for i in ids:
            if i in seen:
                raise ZoomIndexError(f"duplicate id {i!r}: ids must be unique in the index")
            seen.add(i)
        if payloads is None:
            payloads = [None] * n
        payloads = list(payloads)
        if len(payloads) != n:
            raise ZoomIndexError(f"{len(payloads)} payloads for {n} texts; give one payload per text (or None)")
        for i, p in enumerate(payloads):
            _json_value(p, f"payload {i}")
        if labels is None:
            labels = [None] * n
        label_rows: list[list[str] | None] = [
            None
            if row is None
            else [row]
            if isinstance(row, str)
            else [str(x) for x in (row.tolist() if isinstance(row, np.ndarray) else row)]
            for row in labels
        ]
        if len(label_rows) != n:
            raise ZoomIndexError(
                f"{len(label_rows)} label rows for {n} texts; give one row (class names per level) per text"
            )
        nl = len(self.level_names)
        for i, row in enumerate(label_rows):
            if row is not None and len(row) != nl:
                raise ZoomIndexError(
                    f"label row {i} has {len(row)} names for {nl} levels ({', '.join(self.level_names)}); "
                    "give one class name per level, coarse -> fine"
                )
        return ItemBatch(ids, list(texts), payloads, label_rows)

    def append(self, batch: ItemBatch) -> int:
        """Add a batch from :meth:`check` (made against this table as it is now); returns its first row."""
        first = len(self)
        for r, i in enumerate(batch.ids):
            self._rows[i] = first + r
        self.ids += batch.ids
        self.texts += batch.texts
        self.payloads += batch.payloads
        self.labels += batch.labels
        return first

    # ------------------------------------------------------------------ index.json
    def columns(self) -> dict[str, list]:
        """The ``items`` field of ``index.json``: the four columns, one entry per row."""
        return {
            "ids": list(self.ids),
            "texts": list(self.texts),
            "payloads": list(self.payloads),
            "labels": list(self.labels),
        }

    @classmethod
    def from_columns(
        cls, level_names: Sequence[str], ids: list, texts: list, payloads: list, labels: list
    ) -> ItemTable:
        """The table saved by :meth:`columns` (columns of equal length, checked by the caller; ids checked here)."""
        table = cls(level_names)
        table.ids = [check_id(i) for i in ids]
        table.texts = texts
        table.payloads = payloads
        table.labels = [None if r is None else list(r) for r in labels]
        table._rows = {i: r for r, i in enumerate(table.ids)}
        return table
