"""The Qdrant part of a zoom index: one collection holding a run's items as points.

:class:`QdrantCollection` is to :class:`~fractal_embeddings.index.qdrant.QdrantIndex` what
:class:`~fractal_embeddings.index.prefix.PrefixIndexes` is to the FAISS index: the store, which
knows nothing of runs. Each item is one point (id: :func:`point_id`) with a named vector per prefix
length (:func:`vector_name`), each the L2-normalised prefix with cosine distance, and a payload
(``row``, ``id``, ``text``, ``labels``, ``payload`` and ``coarse``, the level-0 class a routed search
filters on). This module creates the collection, writes points in batches (deleting those of items
no longer in the corpus), reads the collection back as an item table, runs batches of queries and
keeps the library's metadata under the collection's ``fractal_embeddings`` key. Every client call
goes through :meth:`QdrantCollection.call`, so a failure is one line naming the collection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import ZoomIndexError
from ..evaluation import unit_rows
from .items import ItemBatch, ItemTable
from .prefix import HNSW_DEFAULTS
from .qdrant_target import QdrantTarget, server_error

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = ["META_KEY", "QdrantCollection", "point_id", "vector_name"]

META_KEY = "fractal_embeddings"  # the key of the collection's metadata this library writes
UPSERT_BATCH = 256  # points per upsert request
QUERY_BATCH = 64  # queries per query_batch_points request
SCROLL_PAGE = 1024  # points per scroll (and per delete) request
POINT_NAMESPACE = uuid.UUID("8b0d6f6e-5f1a-5a5e-9a63-2f3c9b1d7e41")  # UUIDv5 namespace of point ids


def vector_name(d: int) -> str:
    """The named vector holding the ``d``-dim normalised prefixes."""
    return f"d{d}"


def point_id(item_id: int | str) -> str:
    """The point id of an item id: a UUIDv5 of its JSON (stable across builds, ``0`` and ``"0"`` apart)."""
    return str(uuid.uuid5(POINT_NAMESPACE, json.dumps(item_id)))


def point_payload(batch: ItemBatch, r: int, level_names: Sequence[str]) -> dict[str, Any]:
    """The payload of row ``r`` of a batch: row, id, text, labels by level, the user payload, and ``coarse``."""
    lab = batch.labels[r]
    payload: dict[str, Any] = {
        "row": r,
        "id": batch.ids[r],
        "text": batch.texts[r],
        "labels": dict(zip(level_names, lab, strict=True)) if lab is not None else None,
        "payload": batch.payloads[r],
    }
    if lab is not None and lab:
        payload["coarse"] = lab[0]
    return payload


class QdrantCollection:
    """The collection ``target`` names, holding vectors of the prefix lengths ``dims`` (the last is the
    full vector); the client is connected on first use and released by :meth:`close`."""

    def __init__(self, target: QdrantTarget, dims: Sequence[int]) -> None:
        self.target = target
        self.name = target.collection
        self.dims = tuple(int(d) for d in dims)
        self._client: QdrantClient | None = None

    # ------------------------------------------------------------ client
    @property
    def client(self) -> QdrantClient:
        """The Qdrant client (connected on first use)."""
        if self._client is None:
            self._client = self.target.connect()
        return self._client

    def close(self) -> None:
        """Release the client (an embedded folder is unlocked when its last user closes)."""
        if self._client is not None:
            self.target.release(self._client)
            self._client = None

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A client call whose failure is one line naming the collection (a server gone, a bad request)."""
        try:
            return fn(*args, **kwargs)
        except ZoomIndexError:
            raise
        except Exception as e:  # the client raises many types (httpx, grpc, ValueError locally)
            if self.target.embedded:
                raise ZoomIndexError(
                    f"{self.target.describe()}: {what} failed ({' '.join(str(e).split())[:160]})"
                ) from None
            raise ZoomIndexError(f"{self.target.describe()}: {what} failed: {server_error(e)}") from None

    # ------------------------------------------------------------ metadata
    def metadata(self) -> dict | None:
        """The collection's ``fractal_embeddings`` metadata (``None``: no such collection; ``{}``: a
        collection this library did not write)."""
        c = self.client
        if not self.call("listing collections", c.collection_exists, self.name):
            return None
        info = self.call("reading the collection", c.get_collection, self.name)
        meta = (getattr(info.config, "metadata", None) or {}).get(META_KEY)
        return meta if isinstance(meta, dict) else {}

    def set_metadata(self, meta: dict) -> None:
        self.call("updating the metadata", self.client.update_collection, self.name, metadata={META_KEY: meta})

    # ------------------------------------------------------------ create / write
    def create(self, kind: str, params: dict, meta: dict, *, replace: bool = False, quantize: str = "none") -> None:
        """Create the collection (dropped first with ``replace``): a cosine named vector per prefix, Qdrant's
        HNSW with ``params`` for ``kind="hnsw"`` (none for ``flat``), Qdrant's int8 scalar quantisation of
        every named vector for ``quantize="int8"`` (the originals kept for rescoring; the embedded mode
        records it and searches the originals), and on a server a keyword index on ``coarse``."""
        from qdrant_client import models

        c = self.client
        if replace:
            self.call("deleting the collection", c.delete_collection, self.name)
        hnsw = (
            models.HnswConfigDiff(m=params["M"], ef_construct=params["ef_construction"])
            if kind == "hnsw"
            else models.HnswConfigDiff(m=0)  # flat: every search is exact, no graph to build
        )
        self.call(
            "creating the collection",
            c.create_collection,
            self.name,
            vectors_config={
                vector_name(d): models.VectorParams(size=d, distance=models.Distance.COSINE) for d in self.dims
            },
            hnsw_config=hnsw,
            quantization_config=(
                models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8))
                if quantize == "int8"
                else None
            ),
            metadata={META_KEY: meta},
        )
        if not self.target.embedded:  # the embedded mode has no payload indexes
            self.call(
                "indexing the coarse label",
                c.create_payload_index,
                self.name,
                field_name="coarse",
                field_schema=models.PayloadSchemaType.KEYWORD,
            )

    def write(
        self,
        batch: ItemBatch,
        E: np.ndarray,
        level_names: Sequence[str],
        *,
        batch_size: int = UPSERT_BATCH,
        show_progress: bool = False,
    ) -> None:
        """Upsert the items (rows 0..n-1) and their normalised prefixes in batches, then delete the points
        of items no longer in the corpus."""
        from qdrant_client import models

        n = len(batch.ids)
        units = {d: unit_rows(E[:, :d]) for d in self.dims}
        wanted = [point_id(i) for i in batch.ids]
        bar = tqdm(total=n, desc="upsert", unit="point", disable=not show_progress, mininterval=0.5)
        for s in range(0, n, batch_size):
            points = [
                models.PointStruct(
                    id=wanted[r],
                    vector={vector_name(d): units[d][r].tolist() for d in self.dims},
                    payload=point_payload(batch, r, level_names),
                )
                for r in range(s, min(n, s + batch_size))
            ]
            self.call("upserting points", self.client.upsert, self.name, points=points, wait=True)
            bar.update(len(points))
        bar.close()
        if self.count() > n:  # a re-build of a smaller corpus: delete the points of items no longer in it
            self.delete_except(set(wanted))

    def count(self) -> int:
        return int(self.call("counting points", self.client.count, self.name, exact=True).count)

    def delete_except(self, keep: set[str]) -> None:
        """Delete every point whose id is not in ``keep``."""
        from qdrant_client import models

        c = self.client
        stale: list = []
        offset = None
        while True:
            records, offset = self.call(
                "listing points",
                c.scroll,
                self.name,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
            stale += [rec.id for rec in records if str(rec.id) not in keep]
            if offset is None:
                break
        for s in range(0, len(stale), SCROLL_PAGE):
            self.call(
                "deleting stale points",
                c.delete,
                self.name,
                points_selector=models.PointIdsList(points=stale[s : s + SCROLL_PAGE]),
            )

    # ------------------------------------------------------------ read / query
    def read(self, level_names: Sequence[str]) -> tuple[ItemTable, np.ndarray]:
        """The whole collection, by row: its item table and the full vectors (as stored: normalised)."""
        full = vector_name(self.dims[-1])
        rows: list[tuple[int, dict, list]] = []
        offset = None
        while True:
            records, offset = self.call(
                "reading points",
                self.client.scroll,
                self.name,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=[full],
            )
            for rec in records:
                vec = rec.vector[full] if isinstance(rec.vector, dict) else rec.vector
                rows.append((int(rec.payload["row"]), rec.payload, vec))
            if offset is None:
                break
        rows.sort(key=lambda t: t[0])
        table = ItemTable(level_names)
        labels = [None if p.get("labels") is None else [p["labels"][lv] for lv in level_names] for _, p, _ in rows]
        ids, texts = [p["id"] for _, p, _ in rows], [p["text"] for _, p, _ in rows]
        table.append(ItemBatch(ids, texts, [p.get("payload") for _, p, _ in rows], labels))
        V = np.asarray([v for _, _, v in rows], dtype=np.float32).reshape(len(rows), self.dims[-1])
        return table, V

    def search_params(self, kind: str, params: dict, ef_search: int | None) -> Any:
        """The ``SearchParams`` of a query: exact for ``flat``, ``hnsw_ef`` for ``hnsw`` (none embedded)."""
        from qdrant_client import models

        if self.target.embedded:  # the embedded mode always searches exactly and takes no search params
            return None
        if kind == "flat":
            return models.SearchParams(exact=True)
        return models.SearchParams(hnsw_ef=int(ef_search or params.get("ef_search", HNSW_DEFAULTS["ef_search"])))

    def request(
        self,
        q: np.ndarray,
        d: int,
        limit: int,
        params: Any,
        *,
        first: tuple[int, int] | None = None,
        classes: Sequence[str] | None = None,
        payload: bool | list[str] = True,
    ) -> Any:
        """The ``QueryRequest`` of query ``q``'s ``d``-dim prefix on its named vector, ``limit`` points with
        ``payload``: ``first = (d1, n)`` prefetches the ``n`` best on the ``d1``-dim prefix and re-scores
        them (a funnel; ``params`` go to the prefetch); ``classes`` keeps points whose ``coarse`` is one of them."""
        from qdrant_client import models

        extra: dict[str, Any] = {}
        if first is not None:
            d1, n = first
            extra["prefetch"] = models.Prefetch(query=q[:d1].tolist(), using=vector_name(d1), limit=n, params=params)
        else:
            extra["params"] = params
        if classes is not None:
            match = models.MatchAny(any=list(classes))
            extra["filter"] = models.Filter(must=[models.FieldCondition(key="coarse", match=match)])
        return models.QueryRequest(
            query=q[:d].tolist(), using=vector_name(d), limit=limit, with_payload=payload, **extra
        )

    def query(self, requests: list) -> list[list]:
        """The points each ``QueryRequest`` found, sent in batches of :data:`QUERY_BATCH`."""
        out: list[list] = []
        for s in range(0, len(requests), QUERY_BATCH):
            res = self.call(
                "searching", self.client.query_batch_points, self.name, requests=requests[s : s + QUERY_BATCH]
            )
            out += [r.points for r in res]
        return out
