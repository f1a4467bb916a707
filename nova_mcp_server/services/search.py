"""Search: embed the query (or take a remembered vector), query the index, map hits for the agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nova_mcp_server import keys
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.models import ContentInput, Locator, SearchHit, SearchResult
from nova_mcp_server.schema import EmbeddingPurpose, Modality
from nova_mcp_server.services.catalog import Catalog, item_uri
from nova_mcp_server.services.embedding import EmbedderPolicy, Embedding, Progress
from nova_mcp_server.services.threads import off_loop
from nova_mcp_server.stores.base import QueryHit, VectorStore, check_top_k

MAX_QUERY_CHARS = 8192  # Nova's inline text limit; a query is one request, never chunked
RETRIEVAL_PURPOSE = {
    None: EmbeddingPurpose.GENERIC_RETRIEVAL,
    Modality.TEXT: EmbeddingPurpose.TEXT_RETRIEVAL,
    Modality.IMAGE: EmbeddingPurpose.IMAGE_RETRIEVAL,
    Modality.DOCUMENT: EmbeddingPurpose.DOCUMENT_RETRIEVAL,
    Modality.VIDEO: EmbeddingPurpose.VIDEO_RETRIEVAL,
    Modality.AUDIO: EmbeddingPurpose.AUDIO_RETRIEVAL,
}


class Search:
    def __init__(
        self,
        policy: EmbedderPolicy,
        ingest: Ingest,
        catalog: Catalog,
        store: VectorStore,
        embedding: Embedding,
        *,
        default_index: str,
    ) -> None:
        self.policy = policy
        self.ingest = ingest
        self.catalog = catalog
        self.store = store
        self.embedding = embedding
        self.default_index = default_index

    async def search(
        self,
        *,
        query: str | None = None,
        image: ContentInput | None = None,
        vector_handle: str | None = None,
        index: str | None = None,
        top_k: int = 5,
        filter: dict[str, Any] | None = None,
        modality: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> SearchResult:
        name = index or self.default_index
        check_top_k(top_k)
        given = [x is not None for x in (query, image, vector_handle)]
        if sum(given) != 1:
            raise InvalidInput("Give exactly one of query (text), image, or vector_handle.")
        modalities = parse_modalities(modality)
        await self.catalog.compatible_info(name)
        purpose = RETRIEVAL_PURPOSE[modalities[0] if len(modalities) == 1 else None]
        if vector_handle is not None:
            vector = self.embedding.vector(vector_handle)
        else:
            vector = await self._embed_query(query, image, purpose, progress)
        combined = combine_filters(filter, modalities)
        hits = await off_loop(
            self.store.query_vectors, name, vector, top_k=top_k, filter=combined, return_metadata=True
        )
        return SearchResult(
            index=name, purpose=purpose.value, hits=[to_hit(name, rank, hit) for rank, hit in enumerate(hits, 1)]
        )

    async def _embed_query(
        self, query: str | None, image: ContentInput | None, purpose: EmbeddingPurpose, progress: Progress | None
    ) -> list[float]:
        if query is not None and not query.strip():
            raise InvalidInput("The query is empty; give some text to search for.")
        if query is not None and len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(
                f"The query is {len(query):,} characters; a query is embedded as one request of at most "
                f"{MAX_QUERY_CHARS:,}.",
                "Search with the sentence or passage that matters; a query is not chunked.",
            )
        content = ContentInput(text=query) if query is not None else image
        assert content is not None  # exactly one of query, image, handle was checked above
        sources, failures = await self.ingest.resolve_contents([content])
        if failures:
            raise InvalidInput(f"Could not read the query: {failures[0].reason}")
        segment, _ = await self.ingest.first_segment(sources[0], self.policy.embedder.info)
        if image is not None and segment.embed_as != "image":
            raise InvalidInput("The image query is not an image; give a png, jpeg, gif or webp.")
        request = segment.to_request(purpose, self.policy.request_dimension)
        result = await self.policy.embed([request], progress)
        return list(result[0][0].embedding)


def parse_modalities(modality: Sequence[str] | str | None) -> list[Modality]:
    if not modality:
        return []
    names = [modality] if isinstance(modality, str) else list(modality)
    out = []
    for name in names:
        try:
            out.append(Modality(str(name).lower()))
        except ValueError:
            raise InvalidInput(f'Unknown modality "{name}"; use any of {[m.value for m in Modality]}.') from None
    return out


def combine_filters(user_filter: dict[str, Any] | None, modalities: list[Modality]) -> dict[str, Any] | None:
    if user_filter is not None and not isinstance(user_filter, dict):
        raise InvalidInput(
            'filter must be a JSON object in the S3 Vectors filter language, e.g. {"page": {"$gte": 2}}.'
        )
    parts = [user_filter] if user_filter else []
    if modalities:
        parts.append({"modality": {"$in": [m.value for m in modalities]}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def to_hit(index: str, rank: int, hit: QueryHit) -> SearchHit:
    meta = dict(hit.metadata or {})
    distance = hit.distance if hit.distance is not None else 0.0
    return SearchHit(
        rank=rank,
        key=hit.key,
        score=round(1.0 - float(distance), 6),
        modality=meta.get("modality"),
        source=meta.get("source"),
        snippet=meta.get(keys.SNIPPET_KEY),
        metadata={k: v for k, v in meta.items() if k not in keys.RESERVED_KEYS},
        uri=item_uri(index, hit.key),
        **Locator.of(meta).model_dump(),
    )
