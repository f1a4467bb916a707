"""Pydantic models at the MCP/CLI boundary: what tools take and what agents get back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ContentInput(BaseModel):
    """One piece of content: exactly one of text, path, s3_uri or data (base64, with its format)."""

    text: str | None = Field(default=None, description="inline text")
    path: str | None = Field(default=None, description="a file under an allowed root")
    s3_uri: str | None = Field(default=None, description="s3://bucket/key")
    data: str | None = Field(default=None, description="base64 bytes; give format too")
    format: str | None = Field(default=None, description="format of data: png, jpeg, gif, webp, mp3, wav, mp4, ...")


class EmbeddingOut(BaseModel):
    modality: str
    dimension: int
    model: str
    source: str
    norm: float
    preview: list[float] = Field(description="first values of the vector")
    handle: str = Field(description="pass as vector_handle to semantic_search to search with this vector")
    vector: list[float] | None = Field(default=None, description="the full vector, only when include_vector")
    segments_total: int = Field(default=1, description="segments in the content; only the first is embedded here")


class EmbedResult(BaseModel):
    embeddings: list[EmbeddingOut]
    similarity: list[list[float]] | None = Field(default=None, description="cosine similarity matrix")


class Failure(BaseModel):
    source: str
    reason: str


class IndexReport(BaseModel):
    index: str
    indexed_sources: int = 0
    indexed_segments: int = 0
    skipped_unchanged: int = 0
    failed: list[Failure] = Field(default_factory=list)
    jobs: list[str] = Field(default_factory=list, description="ids of async jobs; follow them with job_status")
    removed_segments: int = 0


class SearchHit(BaseModel):
    rank: int
    key: str
    score: float = Field(description="cosine similarity (higher is closer)")
    modality: str | None = None
    source: str | None = None
    page: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    char_start: int | None = None
    char_end: int | None = None
    snippet: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="the user's own metadata")
    uri: str = Field(description="nova:// resource with the full item")


class SearchResult(BaseModel):
    index: str
    purpose: str
    hits: list[SearchHit]


JobState = Literal["pending", "running", "ingesting", "completed", "failed"]


class JobInfo(BaseModel):
    id: str
    kind: str
    status: JobState
    index: str
    source: str
    progress_done: int = 0
    progress_total: int | None = None
    vectors_written: int = 0
    error: str | None = None
    segment_failures: list[str] = Field(default_factory=list)
    result: dict[str, Any] | None = Field(default=None, description="a finished index job's report")
    created_at: float
    updated_at: float


class IndexSummary(BaseModel):
    name: str
    dimension: int
    metric: str
    vector_count: int | None = None
    provider: str | None = None
    model: str | None = None
    uri: str


class DeleteReport(BaseModel):
    index: str
    deleted: int
