"""The `VectorStore` contract: Amazon S3 Vectors semantics, whatever holds the vectors.

Both stores accept and reject the same inputs (limits below, filters from `filters.py`) and rank the same
data the same way, which the conformance suite in `tests/` checks. Methods are blocking (boto3 is); the
core calls them from worker threads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from nova_mcp_server.errors import InvalidInput, LimitExceeded

MAX_PUT = 500
MAX_DELETE = 500
MAX_GET = 100
MAX_TOP_K = 100
MAX_LIST_PAGE = 1000
MAX_DIMENSION = 4096
MAX_KEY_CHARS = 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50
MAX_NON_FILTERABLE_KEYS = 10
INDEX_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

Metric = Literal["cosine", "euclidean"]
MetadataValue = str | int | float | bool | list[str | int | float | bool]


class EmbedderStamp(BaseModel):
    """Which embedder built an index; vectors from any other are refused."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    dimension: int


class IndexSpec(BaseModel):
    name: str
    dimension: int = Field(ge=1, le=MAX_DIMENSION)
    metric: Metric = "cosine"
    non_filterable_keys: list[str] = Field(default_factory=list, max_length=MAX_NON_FILTERABLE_KEYS)
    embedder: EmbedderStamp | None = None


class IndexInfo(IndexSpec):
    vector_count: int | None = None  # None where the backend cannot count cheaply (S3 Vectors)
    created_at: float | None = None


class VectorRecord(BaseModel):
    key: str
    data: list[float] | None = None
    metadata: dict[str, Any] | None = None


class QueryHit(BaseModel):
    key: str
    distance: float | None = None
    metadata: dict[str, Any] | None = None


class VectorPage(BaseModel):
    vectors: list[VectorRecord]
    next_token: str | None = None


@runtime_checkable
class VectorStore(Protocol):
    """S3 Vectors operations on one vector bucket (or one local data directory)."""

    backend: str

    def create_index(self, spec: IndexSpec) -> IndexInfo: ...
    def get_index(self, name: str) -> IndexInfo: ...  # raises IndexNotFound
    def list_indexes(self) -> list[IndexInfo]: ...
    def delete_index(self, name: str) -> None: ...  # raises IndexNotFound
    def put_vectors(self, index: str, vectors: Sequence[VectorRecord]) -> None: ...
    def get_vectors(
        self, index: str, keys: Sequence[str], *, return_data: bool = False, return_metadata: bool = True
    ) -> list[VectorRecord]: ...  # missing keys are absent, order follows `keys`
    def list_vectors(
        self,
        index: str,
        *,
        max_results: int = 500,
        next_token: str | None = None,
        return_data: bool = False,
        return_metadata: bool = False,
    ) -> VectorPage: ...
    def delete_vectors(self, index: str, keys: Sequence[str]) -> None: ...
    def query_vectors(
        self,
        index: str,
        vector: Sequence[float],
        *,
        top_k: int,
        filter: dict[str, Any] | None = None,
        return_metadata: bool = True,
        return_distance: bool = True,
    ) -> list[QueryHit]: ...  # nearest first; distance = 1 - cos for cosine, L2 for euclidean


# ---- shared validation: both stores call these so they reject the same inputs ---------------------------


def check_index_name(name: str) -> str:
    if not INDEX_NAME_RE.match(name or ""):
        raise InvalidInput(
            f"Invalid index name {name!r}.",
            "Use 3-63 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter "
            "or digit.",
        )
    return name


def check_batch(what: str, count: int, limit: int) -> None:
    if count < 1:
        raise InvalidInput(f"{what} needs at least one item.")
    if count > limit:
        raise LimitExceeded(f"{what} takes at most {limit} items per call; got {count}.", "Split the batch.")


def check_top_k(top_k: int) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise LimitExceeded(f"top_k must be between 1 and {MAX_TOP_K}; got {top_k!r}.")
    return top_k


def check_key(key: str) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise InvalidInput(
            f"Vector keys must be 1-{MAX_KEY_CHARS} characters; got {len(key or '')} characters."
        )
    return key
