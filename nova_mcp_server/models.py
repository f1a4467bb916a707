"""Pydantic models at the MCP/CLI boundary: what tools take and what agents get back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from nova_mcp_server.pricing import CostEstimate

CONTENT_FIELDS = ("text", "path", "s3_uri", "data")


class ContentInput(BaseModel):
    """One piece of content: exactly one of text, path, s3_uri or data (base64, with its format).

    The rule lives here, on the boundary model, so every path (tools, CLI, jobs replayed from the job table)
    checks it the same way and the tool's JSON schema states it (`oneOf` of the four shapes).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": [name]} for name in CONTENT_FIELDS]},
    )

    text: str | None = Field(default=None, description="inline text")
    path: str | None = Field(default=None, description="a file under an allowed root")
    s3_uri: str | None = Field(default=None, description="s3://bucket/key")
    data: str | None = Field(default=None, description="base64 bytes; give format too")
    format: str | None = Field(default=None, description="format of data: png, jpeg, gif, webp, mp3, wav, mp4, ...")

    @model_validator(mode="after")
    def _exactly_one(self) -> ContentInput:
        given = [name for name in CONTENT_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            shown = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of text, path, s3_uri or data (got {shown})")
        return self


# For answers the server writes itself with ``exclude_none`` (semantic_search, fetch): an unset field is left
# out, never ``null``, so the schema says only what can appear. `"type": "integer"` instead of
# `"anyOf": [{"type": "integer"}, {"type": "null"}]` per field: a shorter tools/list for the agent's context and
# a quicker output check in every client.
Absent = SkipJsonSchema[None]


class Locator(BaseModel):
    """Where a segment sits in its source: a PDF page, a time range, a character range.

    One model for every place that carries a position (segments, vector metadata, hits), so a new field is
    added once.
    """

    page: int | Absent = Field(default=None, description="1-based PDF page")
    start_s: float | Absent = Field(default=None, description="start second (audio, video)")
    end_s: float | Absent = Field(default=None, description="end second (audio, video)")
    char_start: int | Absent = Field(default=None, description="first character (text)")
    char_end: int | Absent = Field(default=None, description="character after the last (text)")

    @classmethod
    def of(cls, values: Any) -> Locator:
        """The locator fields of a mapping (vector metadata) or an object (a segment)."""
        get = values.get if isinstance(values, dict) else lambda name: getattr(values, name, None)
        return cls(**{name: get(name) for name in LOCATOR_FIELDS})

    def to_metadata(self) -> dict[str, Any]:
        """The set fields, floats rounded to milliseconds (what S3 Vectors metadata keeps)."""
        out: dict[str, Any] = {}
        for name in LOCATOR_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 3) if isinstance(value, float) else value
        return out


LOCATOR_FIELDS = tuple(Locator.model_fields)


class EmbeddingOut(BaseModel):
    modality: str
    dimension: int
    model: str
    source: str
    norm: float
    preview: list[float] = Field(description="first values of the vector")
    handle: str = Field(description="pass as vector_handle to semantic_search to search with this vector")
    vector: list[float] | None = Field(default=None, description="the full vector, only when include_vector")
    more_segments: bool = Field(
        default=False,
        description="the content has more segments; only the first is embedded here (index_content takes all)",
    )


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
    not_yet_indexed: int = Field(default=0, description="sources left when the call's time budget ran out")
    continues_in_job: str | None = Field(
        default=None, description="the background job indexing the rest (follow it with job_status)"
    )
    dry_run: bool = Field(default=False, description="true: nothing was embedded or written; see estimate")
    estimate: CostEstimate | None = Field(default=None, description="what indexing would cost (dry_run)")


class SearchHit(Locator):
    rank: int
    key: str
    score: float = Field(description="cosine similarity (higher is closer)")
    rerank_score: float | Absent = Field(default=None, description="the reranker's relevance (rerank=true)")
    modality: str | Absent = None
    source: str | Absent = None
    snippet: str | Absent = None
    text: str | Absent = Field(default=None, description="the segment's full text (detail=full)")
    metadata: dict[str, Any] | Absent = Field(default=None, description="the user's own metadata (detail=full)")
    uri: str = Field(description="nova:// URI of the item: pass it to fetch to read it in full")


class SearchResult(BaseModel):
    index: str
    purpose: str
    mode: str = Field(default="vector", description="vector, keyword or hybrid")
    detail: str = Field(default="compact", description="compact: a one-line snippet; full: each segment's text")
    hits: list[SearchHit]
    truncated: bool = Field(default=False, description="hits were left out to stay within the answer's token budget")
    omitted: int = Field(default=0, description="how many hits were left out")
    note: str | Absent = Field(default=None, description="how the search was run, when it matters for reading it")
    query_chars_read: int | Absent = Field(
        default=None, description="the model read the query only this far (its window); the rest was ignored"
    )


JobState = Literal["pending", "running", "ingesting", "completed", "partial", "failed"]


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
    attempts: int = 0
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
    index_mode: str | None = Field(
        default=None, description="S3 Vectors: ENHANCED (filters exact) or CLASSIC (filtered searches may under-fill)"
    )
    note: str | None = Field(default=None, description="what else the server knows, e.g. that it was damaged")


class Check(BaseModel):
    """One `doctor` check: what was looked at, and the fix when it did not pass."""

    name: str
    status: Literal["pass", "fail", "skipped"]
    detail: str
    fix: str | None = None


class DoctorReport(BaseModel):
    backend: Literal["aws", "local"]
    ok: bool
    checks: list[Check]


class DeleteReport(BaseModel):
    index: str
    deleted: int


Mode = Literal["vector", "keyword", "hybrid"]  # how semantic_search ranks
Detail = Literal["compact", "full"]  # how much of each hit it returns


class FacetValue(BaseModel):
    value: Any
    count: int


class Facet(BaseModel):
    key: str
    types: list[str] = Field(description="JSON types seen: string, number, boolean, array")
    count: int = Field(description="items that carry the key")
    top_values: list[FacetValue] = Field(default_factory=list, description="most frequent values (array items count)")
    min: float | None = None
    max: float | None = None
    reserved: bool = Field(description="set by the server (source, modality, page, ...) rather than by a user")


class IndexFacets(IndexSummary):
    items_read: int
    complete: bool = Field(description="every item was read; otherwise counts come from the first items_read")
    facets: list[Facet]


class Passage(Locator):
    key: str
    uri: str
    modality: str | Absent = None
    text: str | Absent = Field(default=None, description="the segment's full text, where it has text")
    snippet: str | Absent = Field(default=None, description="its label (media) or short snippet")


class FetchResult(Locator):
    index: str
    key: str
    uri: str
    source: str | Absent = None
    modality: str | Absent = None
    format: str | Absent = None
    text: str | Absent = Field(default=None, description="the segment's full text (or its label for media)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="the user's own metadata")
    context: list[Passage] = Field(default_factory=list, description="neighbouring segments of the same source")
    joined_text: str | Absent = Field(default=None, description="the segment and its neighbours joined by char range")
    page_text: str | Absent = Field(default=None, description="all text found on this PDF page")
    transcript: str | Absent = Field(default=None, description="what is said in this time range (where transcribed)")
    image: str | Absent = Field(default=None, description="what the attached picture shows, when one is attached")
    note: str | Absent = None
