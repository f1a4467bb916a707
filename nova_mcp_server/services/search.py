"""Search: embed the query (or take a stored or remembered vector), rank, and answer within a token budget.

Vector search always; keyword and hybrid (reciprocal rank fusion) where the store keeps a keyword index (the
local store; S3 Vectors has none). Hits are compact by default (a one-line snippet centred on the best
matching sentence) so an agent reads references first and fetches what it needs in full.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nova_mcp_server import keys
from nova_mcp_server.embedders.nova_inputs import query_purpose
from nova_mcp_server.errors import InvalidInput, NotFound
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.models import ContentInput, Detail, Locator, Mode, SearchHit, SearchResult
from nova_mcp_server.schema import EmbeddingPurpose, Modality
from nova_mcp_server.services.catalog import Catalog, item_uri, parse_item_ref
from nova_mcp_server.services.embedding import EmbedderPolicy, Embedding, Progress
from nova_mcp_server.services.threads import off_loop
from nova_mcp_server.snippets import best_snippet
from nova_mcp_server.stores.base import MAX_TOP_K, QueryHit, VectorStore, check_top_k
from nova_mcp_server.stores.keyword import rrf_fuse

MAX_QUERY_CHARS = 8192  # Nova's inline text limit; a query is one request, never chunked
CHARS_PER_TOKEN = 3  # a conservative estimate for JSON: fewer characters per token than prose
DISTINCT_FETCH = 4  # distinct_sources reads this many candidates per wanted hit


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
        token_budget: int = 20_000,
        reranker: Reranker | None = None,
    ) -> None:
        self.policy = policy
        self.ingest = ingest
        self.catalog = catalog
        self.store = store
        self.embedding = embedding
        self.default_index = default_index
        self.token_budget = token_budget
        self.reranker = reranker

    @property
    def keyword_available(self) -> bool:
        return callable(getattr(self.store, "keyword_query", None))

    async def search(
        self,
        *,
        query: str | None = None,
        image: ContentInput | None = None,
        vector_handle: str | None = None,
        similar_to: str | None = None,
        index: str | None = None,
        top_k: int = 5,
        filter: dict[str, Any] | None = None,
        modality: Sequence[str] | None = None,
        mode: Mode | None = None,
        detail: Detail = "compact",
        distinct_sources: bool = False,
        rerank: bool = False,
        progress: Progress | None = None,
        roots: Sequence[Path] | None = None,
    ) -> SearchResult:
        check_top_k(top_k)
        given = [x is not None for x in (query, image, vector_handle, similar_to)]
        if sum(given) != 1:
            raise InvalidInput("Give exactly one of query (text), image, vector_handle or similar_to.")
        name = index or (parse_item_ref(similar_to, None)[0] if similar_to else None) or self.default_index
        modalities = parse_modalities(modality)
        await self.catalog.compatible_info(name)
        purpose = query_purpose(modalities)  # GENERIC unless one modality; never DOCUMENT for mixed pages
        mode = self._mode(mode, query)
        combined = combine_filters(filter, modalities)
        exclude: str | None = None
        read: int | None = None  # characters of the query the model read, when it could not read them all
        if vector_handle is not None:
            vector = self.embedding.vector(vector_handle)
        elif similar_to is not None:
            vector, exclude = await self._stored_vector(similar_to, name)
        elif mode == "keyword":
            vector = []
        else:
            vector, read = await self._embed_query(query, image, purpose, progress, roots)
        if rerank and (self.reranker is None or query is None):
            raise InvalidInput(
                "rerank needs a text query and a reranker; this backend has none configured."
                if self.reranker is None
                else "rerank reorders by a text query: give query.",
                "Use hybrid search on the local backend, or the aws backend with Bedrock Rerank."
                if self.reranker is None
                else None,
            )
        wanted = top_k + (exclude is not None)
        # Fusion, reranking and one-per-source all choose from more candidates than they return: a keyword match
        # the vectors rank 12th still meets its vector rank in the fusion instead of counting once.
        widen = DISTINCT_FETCH if (distinct_sources or rerank or mode == "hybrid") else 1
        fetch_k = min(MAX_TOP_K, wanted * widen)
        ranked = await self._rank(name, mode, vector, query, fetch_k, combined)
        ranked = [h for h in ranked if h.key != exclude]
        if distinct_sources:
            ranked = best_per_source(ranked)
        scores: dict[str, float] = {}
        if rerank and query is not None and self.reranker is not None:
            ranked, scores = await rerank_hits(self.reranker, query, ranked)
        hits = [to_hit(name, rank, hit, query=query, detail=detail) for rank, hit in enumerate(ranked[:top_k], 1)]
        for hit in hits:
            hit.rerank_score = scores.get(hit.key)
        result = SearchResult(index=name, purpose=purpose.value, mode=mode, detail=detail, hits=hits)
        if query is not None and read is not None and read < len(query):
            result.query_chars_read = read
        if rerank:
            result.note = f"text hits reordered by {self.reranker.model_id if self.reranker else 'the reranker'}"
        elif mode == "vector" and query is not None and not self.keyword_available:
            result.note = "vector search (this backend keeps no keyword index; rerank=true can refine the order)"
        return fit_budget(result, self.token_budget)

    def _mode(self, mode: Mode | None, query: str | None) -> Mode:
        if mode is None:
            return "hybrid" if self.keyword_available and query is not None else "vector"
        if mode != "vector" and not self.keyword_available:
            raise InvalidInput(
                f'mode "{mode}" needs a keyword index, which this backend does not keep (S3 Vectors has none).',
                'Use mode "vector" (the default here).',
            )
        if mode != "vector" and query is None:
            raise InvalidInput(f'mode "{mode}" searches words: give a text query.')
        return mode

    async def _rank(
        self,
        name: str,
        mode: Mode,
        vector: list[float],
        query: str | None,
        top_k: int,
        where: dict[str, Any] | None,
    ) -> list[QueryHit]:
        by_vector: list[QueryHit] = []
        if mode != "keyword":
            by_vector = await off_loop(
                self.store.query_vectors, name, vector, top_k=top_k, filter=where, return_metadata=True
            )
        if mode == "vector":
            return by_vector
        by_keyword: list[QueryHit] = await off_loop(
            self.store.keyword_query,  # type: ignore[attr-defined]
            name,
            query,
            top_k=top_k,
            filter=where,
        )
        if mode == "keyword":
            return by_keyword
        fused = rrf_fuse([[h.key for h in by_vector], [h.key for h in by_keyword]])
        found = {h.key: h for h in by_keyword} | {h.key: h for h in by_vector}  # vector hits carry the distance
        await self._fill_distances([found[k] for k, _ in fused if found[k].distance is None], name, vector)
        return [found[key] for key, _ in fused[:top_k]]

    async def _fill_distances(self, hits: list[QueryHit], name: str, vector: list[float]) -> None:
        """Keyword-only hits get their exact cosine to the query too, so every score means the same."""
        if not hits:
            return
        stored = await off_loop(self.store.get_vectors, name, [h.key for h in hits], return_data=True)
        data = {r.key: r.data for r in stored}
        q = np.asarray(vector, dtype=np.float64)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        for hit in hits:
            if data.get(hit.key) is not None:
                v = np.asarray(data[hit.key], dtype=np.float64)
                hit.distance = 1.0 - float(q @ (v / max(float(np.linalg.norm(v)), 1e-12)))

    async def _stored_vector(self, ref: str, index: str) -> tuple[list[float], str]:
        """The stored vector of an indexed item (a nova:// URI or a key): no new embedding call."""
        ref_index, key = parse_item_ref(ref, index)
        found = await off_loop(self.store.get_vectors, ref_index, [key], return_data=True, return_metadata=False)
        if not found or found[0].data is None:
            raise NotFound(f"No item '{key}' in index '{ref_index}'.", "Use the `uri` or `key` of a search hit.")
        return [float(x) for x in found[0].data], key

    async def _embed_query(
        self,
        query: str | None,
        image: ContentInput | None,
        purpose: EmbeddingPurpose,
        progress: Progress | None,
        roots: Sequence[Path] | None = None,
    ) -> tuple[list[float], int | None]:
        if query is not None and not query.strip():
            raise InvalidInput("The query is empty; give some text to search for.")
        if query is not None and len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(
                f"The query is {len(query):,} characters; a query is embedded as one request of at most "
                f"{MAX_QUERY_CHARS:,}.",
                "Search with the sentence or passage that matters; a query is not chunked.",
            )
        if query is not None:
            request = query_request(query, purpose, self.policy)
        else:
            assert image is not None  # exactly one of query, image, handle, similar_to was checked above
            sources, failures = await self.ingest.resolve_contents([image], roots=roots)
            if failures:
                raise InvalidInput(f"Could not read the query: {failures[0].reason}")
            segment, _ = await self.ingest.first_segment(sources[0], self.policy.embedder.info)
            if segment.embed_as != "image":
                raise InvalidInput("The image query is not an image; give a png, jpeg, gif or webp.")
            request = segment.to_request(purpose, self.policy.request_dimension)
        result = await self.policy.embed([request], progress)
        item = result[0][0]
        return list(item.embedding), getattr(item, "truncated_char_length", None)


class Reranker(Protocol):
    model_id: str

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]: ...


async def rerank_hits(
    reranker: Reranker, query: str, hits: Sequence[QueryHit]
) -> tuple[list[QueryHit], dict[str, float]]:
    """Text-bearing hits reordered by the reranker's relevance; hits without text follow in their order."""
    texts = {h.key: hit_text(h) for h in hits}
    readable = [h for h in hits if texts[h.key]]
    relevance = await reranker.scores(query, [texts[h.key] or "" for h in readable])
    scores = {h.key: score for h, score in zip(readable, relevance, strict=True)}
    ordered = sorted(readable, key=lambda h: -scores[h.key]) + [h for h in hits if h.key not in scores]
    return ordered, scores


def hit_text(hit: QueryHit) -> str | None:
    """The words a hit carries: its full text, or a text segment's stored snippet (media labels do not count)."""
    meta = hit.metadata or {}
    if meta.get(keys.TEXT_KEY):
        return str(meta[keys.TEXT_KEY])
    if meta.get("modality") == "text" and meta.get(keys.SNIPPET_KEY):
        return str(meta[keys.SNIPPET_KEY])
    return None


def query_request(query: str, purpose: EmbeddingPurpose, policy: EmbedderPolicy) -> Any:
    """One request for the whole query: never cut at a chunk boundary (the model truncates at its window)."""
    from nova_mcp_server.ingest.model import Segment

    segment = Segment(ordinal=0, modality=Modality.TEXT, embed_as="text", text=query)
    return segment.to_request(purpose, policy.request_dimension)


def best_per_source(hits: Sequence[QueryHit]) -> list[QueryHit]:
    """The best-ranked hit of each source, in rank order."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        source = str((hit.metadata or {}).get("source_id") or (hit.metadata or {}).get("source") or hit.key)
        if source not in seen:
            seen.add(source)
            out.append(hit)
    return out


def fit_budget(result: SearchResult, budget_tokens: int) -> SearchResult:
    """Drop the lowest-ranked hits until the answer's JSON fits the token budget; say so when it cuts."""
    limit = budget_tokens * CHARS_PER_TOKEN
    while result.hits and len(json.dumps(result.model_dump(mode="json", exclude_none=True))) > limit:
        keep = max(0, math.floor(len(result.hits) * 0.8)) if len(result.hits) > 5 else len(result.hits) - 1
        result.omitted += len(result.hits) - keep
        result.hits = result.hits[:keep]
        result.truncated = True
    return result


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


def to_hit(index: str, rank: int, hit: QueryHit, *, query: str | None = None, detail: Detail = "compact") -> SearchHit:
    meta = dict(hit.metadata or {})
    distance = hit.distance if hit.distance is not None else 1.0
    full_text = meta.get(keys.TEXT_KEY)
    stored = meta.get(keys.SNIPPET_KEY)
    snippet = stored
    if query and (full_text or stored):
        snippet = best_snippet(str(full_text or stored), query).text or stored
    elif detail == "compact" and stored:
        snippet = best_snippet(str(stored), "").text or stored
    return SearchHit(
        rank=rank,
        key=hit.key,
        score=round(1.0 - float(distance), 6),
        modality=meta.get("modality"),
        source=meta.get("source"),
        snippet=snippet,
        text=(full_text or stored) if detail == "full" else None,
        metadata={k: v for k, v in meta.items() if k not in keys.RESERVED_KEYS} if detail == "full" else None,
        uri=item_uri(index, hit.key),
        **Locator.of(meta).model_dump(),
    )
