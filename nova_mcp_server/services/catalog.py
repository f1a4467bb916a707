"""Indexes and their items: create, describe, list, delete, read one item, delete one source.

It also remembers which indexes this process deleted, so a call still writing into one stops at its next
batch instead of embedding every remaining file only to fail each write.
"""

from __future__ import annotations

import time
from typing import Any

from nova_mcp_server import keys
from nova_mcp_server.errors import IndexNotFound, NotFound, NovaError
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.models import DeleteReport, IndexSummary
from nova_mcp_server.services.embedding import EmbedderPolicy
from nova_mcp_server.services.threads import off_loop
from nova_mcp_server.services.writer import IndexDeleted, IndexTarget, delete_keys, keys_from, markers
from nova_mcp_server.stores.base import IndexInfo, IndexSpec, VectorStore, check_index_name

ITEM_FIELDS = ("source", "modality", "page", "start_s", "end_s", "char_start", "char_end")


def item_uri(index: str, key: str) -> str:
    return f"nova://indexes/{index}/items/{key}"


def summary(info: IndexInfo) -> IndexSummary:
    return IndexSummary(
        name=info.name,
        dimension=info.dimension,
        metric=info.metric,
        vector_count=info.vector_count,
        provider=info.embedder.provider if info.embedder else None,
        model=info.embedder.model if info.embedder else None,
        uri=f"nova://indexes/{info.name}",
    )


class Catalog:
    def __init__(self, store: VectorStore, policy: EmbedderPolicy, ingest: Ingest) -> None:
        self.store = store
        self.policy = policy
        self.ingest = ingest
        self._deleted: dict[str, float] = {}  # index name -> when this process deleted it (monotonic)

    async def info(self, name: str) -> IndexInfo:
        check_index_name(name)
        return await off_loop(self.store.get_index, name)

    async def compatible_info(self, name: str) -> IndexInfo:
        info = await self.info(name)
        self.policy.check_compatible(info)
        return info

    async def ensure(self, name: str) -> IndexInfo:
        try:
            info = await self.info(name)
        except IndexNotFound:
            spec = IndexSpec(
                name=name,
                dimension=self.policy.dimension,
                metric="cosine",
                non_filterable_keys=keys.NON_FILTERABLE_KEYS,
                embedder=self.policy.stamp,
            )
            try:
                info = await off_loop(self.store.create_index, spec)
            except NovaError as exc:  # a concurrent call may have created it meanwhile
                try:
                    info = await self.info(name)
                except IndexNotFound:
                    raise exc from None
        self.policy.check_compatible(info)
        return info

    async def target(self, name: str) -> IndexTarget:
        """The write target of one call; an incompatible existing index is refused before anything is paid for."""
        started = time.monotonic()
        try:
            await self.compatible_info(name)
            exists = True
        except IndexNotFound:
            exists = False

        def alive(index: str) -> None:
            if self._deleted.get(index, float("-inf")) >= started:
                raise IndexDeleted(
                    f"Index '{index}' was deleted while this call was writing into it; the rest was not indexed.",
                    "Index again to build it anew.",
                )

        return IndexTarget(name, exists=exists, ensure=self.ensure, alive=alive)

    # ---- the catalog's own use cases ------------------------------------------------------------------------

    async def list(self) -> list[IndexSummary]:
        return [summary(info) for info in await off_loop(self.store.list_indexes)]

    async def describe(self, name: str) -> IndexSummary:
        return summary(await self.info(name))

    async def create(self, name: str) -> IndexSummary:
        return summary(await self.ensure(name))

    async def delete(self, name: str) -> IndexSummary:
        info = await self.info(name)
        self._deleted[name] = time.monotonic()
        await off_loop(self.store.delete_index, name)
        return summary(info)

    async def get_item(self, index: str, key: str) -> dict[str, Any]:
        await self.info(index)
        found = await off_loop(self.store.get_vectors, index, [key], return_metadata=True)
        if not found:
            raise NotFound(f"No item '{key}' in index '{index}'.", "Use the `key` or `uri` of a search hit.")
        return {"index": index, "key": key, "metadata": found[0].metadata or {}}

    async def list_items(self, index: str, *, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        await self.info(index)
        page = await off_loop(
            self.store.list_vectors, index, max_results=limit, next_token=next_token, return_metadata=True
        )
        items = [
            {"key": v.key, "uri": item_uri(index, v.key), **{k: (v.metadata or {}).get(k) for k in ITEM_FIELDS}}
            for v in page.vectors
        ]
        return {"index": index, "items": items, "next_token": page.next_token}

    async def delete_source(self, index: str, source: str) -> DeleteReport:
        """Delete every vector of one source (a path, an s3:// URI, or a `source` value from a hit).

        The marker's count names the committed keys; keys past it (an interrupted longer write) are found by
        deterministic key as well, so nothing is enumerated with a filtered query.
        """
        await self.info(index)
        sid = keys.source_id(self.ingest.canonical_uri(source))
        marker = (await markers(self.store, index, [sid])).get(sid)
        count = int(marker.get("segment_count", 0)) if marker else 0
        doomed = [keys.vector_key(sid, n) for n in range(count)]
        doomed += await keys_from(self.store, index, sid, count if marker else 0)
        if not doomed:
            raise NotFound(
                f"Index '{index}' holds no vectors of {source}.", "Use the `source` value shown in a search hit."
            )
        await delete_keys(self.store, index, doomed)
        return DeleteReport(index=index, deleted=len(doomed))
