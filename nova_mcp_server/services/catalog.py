"""Indexes and their items: create, describe, list, delete, read one item, delete one source.

It also remembers which indexes this process deleted, so a call still writing into one stops at its next
batch instead of embedding every remaining file only to fail each write.
"""

from __future__ import annotations

import re
import time
from typing import Any

from nova_mcp_server import keys
from nova_mcp_server.errors import IndexDamaged, IndexNotFound, InvalidInput, NotFound, NovaError
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.models import DeleteReport, Facet, FacetValue, IndexFacets, IndexSummary
from nova_mcp_server.services.embedding import EmbedderPolicy
from nova_mcp_server.services.threads import off_loop
from nova_mcp_server.services.writer import IndexDeleted, IndexTarget, delete_keys, keys_from, markers
from nova_mcp_server.stores.base import IndexInfo, IndexSpec, VectorStore, check_index_name

ITEM_FIELDS = ("source", "modality", "page", "start_s", "end_s", "char_start", "char_end")
FACET_SAMPLE = 5000
TOP_VALUES = 10
UNIQUE_KEYS = frozenset({"source_id", "content_hash", "indexed_at", "char_start", "char_end", "start_s", "end_s"})


def _count(entry: dict[str, Any], value: Any) -> None:
    entry["count"] += 1
    for item in value if isinstance(value, list) else [value]:
        kind = "boolean" if isinstance(item, bool) else "number" if isinstance(item, int | float) else "string"
        entry["types"].add("array" if isinstance(value, list) else kind)
        if kind == "number":
            entry["min"] = item if entry["min"] is None else min(entry["min"], item)
            entry["max"] = item if entry["max"] is None else max(entry["max"], item)
        if len(entry["values"]) < 1000 or item in entry["values"]:
            entry["values"][item] = entry["values"].get(item, 0) + 1


ITEM_URI = re.compile(r"nova://indexes/(?P<index>[^/]+)/items/(?P<key>[^/?#]+)")


def item_uri(index: str, key: str) -> str:
    return f"nova://indexes/{index}/items/{key}"


def parse_item_ref(ref: str, default_index: str | None) -> tuple[str, str]:
    """(index, key) of a hit's `nova://indexes/{index}/items/{key}` URI, or of a bare key in `default_index`."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput("No item was given.", "Give a hit's `uri` (nova://indexes/NAME/items/KEY) or its `key`.")
    match = ITEM_URI.fullmatch(ref)
    if match:
        return match["index"], match["key"]
    if ref.startswith("nova://"):
        raise InvalidInput(
            f'"{ref}" is not an item URI.', "Give a hit's `uri` (nova://indexes/NAME/items/KEY) or its `key`."
        )
    if default_index is None:
        return "", ref
    return default_index, ref


def summary(info: IndexInfo) -> IndexSummary:
    return IndexSummary(
        name=info.name,
        dimension=info.dimension,
        metric=info.metric,
        vector_count=info.vector_count,
        provider=info.embedder.provider if info.embedder else None,
        model=info.embedder.model if info.embedder else None,
        uri=f"nova://indexes/{info.name}",
        index_mode=info.index_mode,
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
        non_filterable = list(keys.NON_FILTERABLE_KEYS)
        try:
            non_filterable = list((await self.compatible_info(name)).non_filterable_keys)
            exists = True
        except IndexNotFound:
            exists = False

        def alive(index: str) -> None:
            if self._deleted.get(index, float("-inf")) >= started:
                raise IndexDeleted(
                    f"Index '{index}' was deleted while this call was writing into it; the rest was not indexed.",
                    "Index again to build it anew.",
                )

        return IndexTarget(name, exists=exists, ensure=self.ensure, alive=alive, non_filterable=non_filterable)

    # ---- the catalog's own use cases ------------------------------------------------------------------------

    async def list(self) -> list[IndexSummary]:
        return [summary(info) for info in await off_loop(self.store.list_indexes)]

    async def describe(self, name: str) -> IndexSummary:
        return summary(await self.info(name))

    async def facets(self, name: str, *, sample: int = FACET_SAMPLE) -> IndexFacets:
        """Filterable keys with their types, how many items carry each, and top values with counts.

        Read from up to `sample` items (listed, not queried), so an agent can build filters without guessing.
        """
        info = await self.info(name)
        seen: dict[str, dict[str, Any]] = {}
        read, token = 0, None
        while read < sample:
            page = await off_loop(
                self.store.list_vectors,
                name,
                max_results=min(1000, sample - read),
                next_token=token,
                return_metadata=True,
            )
            for vector in page.vectors:
                read += 1
                for key, value in (vector.metadata or {}).items():
                    if key in info.non_filterable_keys or key in keys.NON_FILTERABLE_KEYS:
                        continue
                    _count(
                        seen.setdefault(key, {"types": set(), "count": 0, "values": {}, "min": None, "max": None}),
                        value,
                    )
            token = page.next_token
            if not token:
                break
        facets = [
            Facet(
                key=key,
                types=sorted(entry["types"]),
                count=entry["count"],
                top_values=[
                    FacetValue(value=v, count=n)
                    for v, n in sorted(entry["values"].items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_VALUES]
                ]
                if key not in UNIQUE_KEYS
                else [],
                min=entry["min"],
                max=entry["max"],
                reserved=key in keys.RESERVED_KEYS,
            )
            for key, entry in sorted(seen.items())
        ]
        return IndexFacets(**summary(info).model_dump(), items_read=read, complete=token is None, facets=facets)

    async def create(self, name: str) -> IndexSummary:
        return summary(await self.ensure(name))

    async def delete(self, name: str) -> IndexSummary:
        try:
            info: IndexInfo | None = await self.info(name)
        except IndexDamaged:  # unreadable, but deleting it is exactly the way out
            info = None
        self._deleted[name] = time.monotonic()
        await off_loop(self.store.delete_index, name)
        if info is not None:
            return summary(info)
        return IndexSummary(
            name=name,
            dimension=0,
            metric="unknown",
            vector_count=0,
            uri=f"nova://indexes/{name}",
            note="the index was damaged (its files could not be read); it is deleted",
        )

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
