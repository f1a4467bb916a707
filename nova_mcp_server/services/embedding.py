"""Embedding: the embedder policy every service shares, and the `embed_content` use case.

The policy answers which dimension this server embeds at, which stamp an index built by it carries, and
whether an existing index may take its vectors; nothing else decides those.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from nova_mcp_server.embedders.base import Embedder
from nova_mcp_server.errors import DimensionMismatch, InvalidInput, NotFound, NovaError
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.models import ContentInput, EmbeddingOut, EmbedResult
from nova_mcp_server.schema import Dimension, EmbeddingPurpose, SingleEmbeddingRequest, check_dimension
from nova_mcp_server.stores.base import EmbedderStamp, IndexInfo

Progress = Callable[[float, float | None, str], Awaitable[None]]
PREVIEW_VALUES = 8
VECTOR_CACHE_SIZE = 256


async def no_progress(done: float, total: float | None, message: str) -> None:
    return None


class EmbedderPolicy:
    """What this server's embedder produces and which indexes it may write to or search."""

    def __init__(
        self, embedder: Embedder, nova_dimension: int, *, busy: Callable[[], NovaError | None] | None = None
    ) -> None:
        self.embedder = embedder
        self._nova_dimension = nova_dimension
        self._busy = busy  # the local model's download: while it runs, embedding answers at once

    @property
    def is_nova(self) -> bool:
        return self.embedder.info.provider == "nova"

    @property
    def dimension(self) -> int:
        return self._nova_dimension if self.is_nova else self.embedder.info.default_dimension

    @property
    def request_dimension(self) -> Dimension | None:
        """The dimension to put in requests: Nova's setting; None for a local model, which has only one."""
        return cast(Dimension, self.dimension) if self.is_nova else None

    @property
    def stamp(self) -> EmbedderStamp:
        info = self.embedder.info
        return EmbedderStamp(provider=info.provider, model=info.model, dimension=self.dimension)

    def check_compatible(self, info: IndexInfo) -> None:
        stamp, mine = info.embedder, self.stamp
        if info.dimension != mine.dimension or (stamp and (stamp.provider, stamp.model) != (mine.provider, mine.model)):
            built = f"{stamp.provider}/{stamp.model}" if stamp else "another embedder"
            raise DimensionMismatch(
                f"Index '{info.name}' was built with {built} at dimension {info.dimension}; this server embeds with "
                f"{mine.provider}/{mine.model} at dimension {mine.dimension}.",
                "Use another index name (a new one is created on first index_content), or run the server with the "
                "backend and dimension the index was built with.",
            )

    def pick_dimension(self, dimension: int | None) -> Dimension | None:
        if self.is_nova:
            return cast(Dimension, self._nova_dimension if dimension is None else check_dimension(dimension))
        if dimension is not None and dimension not in self.embedder.info.dimensions:
            raise InvalidInput(
                f"Dimension {dimension} is not available on the {self.embedder.info.provider} backend; "
                f"its model produces {self.embedder.info.dimensions}."
            )
        return None

    async def embed(self, requests: Sequence[SingleEmbeddingRequest], progress: Progress | None = None) -> list[Any]:
        """Embed, first telling the caller when a local model is about to load (seconds, once per process).

        While the local model is still downloading, the call answers at once with how far it got instead of
        waiting minutes inside a client's tool-call timeout.
        """
        if self._busy is not None and (busy := self._busy()) is not None:
            raise busy
        if progress is not None and getattr(self.embedder, "loaded", True) is False:
            await progress(0, None, "loading the local embedding model (first use)")
        return await self.embedder.embed(requests)


class Embedding:
    """`embed_content`: the first segment of each content, embedded, with a handle to search with later."""

    def __init__(self, policy: EmbedderPolicy, ingest: Ingest) -> None:
        self.policy = policy
        self.ingest = ingest
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()

    async def embed(
        self,
        contents: Sequence[ContentInput],
        *,
        purpose: EmbeddingPurpose = EmbeddingPurpose.GENERIC_INDEX,
        dimension: int | None = None,
        include_vector: bool = False,
        progress: Progress | None = None,
        roots: Sequence[Path] | None = None,
    ) -> EmbedResult:
        if not contents:
            raise InvalidInput("Give at least one content to embed.")
        dim = self.policy.pick_dimension(dimension)
        sources: list[Any] = []
        failures: list[Any] = []
        for content in contents:  # one at a time: a folder or a prefix must not fan out into every file under it
            found, failed = await self.ingest.resolve_contents([content], roots=roots)
            if len(found) + len(failed) != 1:
                named = content.path or content.s3_uri
                raise InvalidInput(
                    f"{named} is a folder or an S3 prefix holding {len(found) + len(failed)} file(s); "
                    "embed_content embeds single items.",
                    "Name the files themselves (at most 32), or index the folder with index_content and search it.",
                )
            sources += found
            failures += failed
        if failures:
            raise InvalidInput("Could not read: " + "; ".join(f"{f.source}: {f.reason}" for f in failures))
        info = self.policy.embedder.info
        firsts = [await self.ingest.first_segment(source, info) for source in sources]
        items = await self.policy.embed([seg.to_request(purpose, dim) for seg, _ in firsts], progress)
        outs: list[EmbeddingOut] = []
        vectors: list[np.ndarray] = []
        for source, (seg, more), result in zip(sources, firsts, items, strict=True):
            vector = result[0].embedding
            arr = np.asarray(vector, dtype=np.float64)
            vectors.append(arr)
            outs.append(
                EmbeddingOut(
                    modality=seg.modality.value,
                    dimension=len(vector),
                    model=info.model,
                    source=source.display,
                    norm=round(float(np.linalg.norm(arr)), 6),
                    preview=[round(v, 6) for v in vector[:PREVIEW_VALUES]],
                    handle=self.remember(vector),
                    vector=vector if include_vector else None,
                    more_segments=more,
                )
            )
        similarity = None
        if len(vectors) > 1:
            mat = np.stack(vectors)
            mat = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
            similarity = [[round(float(x), 6) for x in row] for row in mat @ mat.T]
        return EmbedResult(embeddings=outs, similarity=similarity)

    def remember(self, vector: list[float]) -> str:
        digest = hashlib.sha256(np.asarray(vector, dtype=np.float32).tobytes()).hexdigest()[:16]
        handle = f"vec-{digest}"
        self._vectors[handle] = vector
        self._vectors.move_to_end(handle)
        while len(self._vectors) > VECTOR_CACHE_SIZE:
            self._vectors.popitem(last=False)
        return handle

    def vector(self, handle: str) -> list[float]:
        vector = self._vectors.get(handle)
        if vector is None:
            raise NotFound(f"No vector with handle '{handle}'.", "Embed the content again with embed_content.")
        return vector
