"""The `Embedder` contract: Nova schema requests in, vectors out.

Every embedder answers `SingleEmbeddingRequest`s (one modality each, a purpose, a dimension). The Nova
embedder sends them to Bedrock; the local embedder answers the text and image ones with a local model and
refuses the rest with a clear message. Only Nova offers the async segmented path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from nova_mcp_server.schema import EmbeddingItem, SingleEmbeddingRequest


class EmbedderInfo(BaseModel):
    provider: str  # "nova" | "local"
    model: str
    dimensions: list[int]  # dimensions this embedder can produce
    default_dimension: int
    modalities: list[str]  # of "text", "image", "audio", "video"
    max_text_chars: int  # longest text one request may carry; chunkers size their chunks from it
    max_sync_media_seconds: float | None = None  # audio/video per sync request, None if unsupported
    supports_async: bool = False


@runtime_checkable
class Embedder(Protocol):
    info: EmbedderInfo

    async def embed(self, requests: Sequence[SingleEmbeddingRequest]) -> list[list[EmbeddingItem]]:
        """Embed each request; result i holds the items of request i (two for AUDIO_VIDEO_SEPARATE).

        Raises `NovaError` subclasses only: InvalidInput, AccessDenied, ModelUnavailable, BackendUnavailable.
        Requests run concurrently up to the embedder's capacity limit.
        """
        ...

    def status(self) -> str:
        """One line for the capabilities resource: 'ready', 'not loaded yet', 'loading', or an error."""
        ...
