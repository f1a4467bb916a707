"""The `VectorStore` contract: Amazon S3 Vectors semantics, whatever holds the vectors.

Both stores accept and reject the same inputs (limits below, filters from `filters.py`) and rank the same
data the same way, which the conformance suite in `tests/` checks. Methods are blocking (boto3 is); the
core calls them from worker threads.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, Protocol, cast, runtime_checkable

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from nova_mcp_server.errors import DimensionMismatch, InvalidInput, LimitExceeded, NovaError, json_kind

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
VECTOR_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")  # documented: no dots, unlike index names

Metric = Literal["cosine", "euclidean"]
IndexMode = Literal["CLASSIC", "ENHANCED"]
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
    # S3 Vectors: ENHANCED filters before the vector search (exact, supports $startsWith); CLASSIC filters
    # during it, so a selective filter may return fewer than top_k. None: the backend always filters exactly
    # (the local store) or did not say.
    index_mode: str | None = None


class VectorRecord(BaseModel):
    key: str
    data: list[float] | None = None
    metadata: dict[str, Any] | None = None


def float32_record(key: str, row: Sequence[float] | np.ndarray, metadata: dict[str, Any] | None) -> VectorRecord:
    """A record whose data is a float32 row (4 bytes a value, not a Python float list of ~32), built without
    pydantic's per-float validation: both stores accept such rows and check them in `check_vectors` anyway."""
    data = np.asarray(row, dtype=np.float32)
    return VectorRecord.model_construct(key=key, data=cast(Any, data), metadata=metadata)


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
    if not INDEX_NAME_RE.fullmatch(name or ""):
        raise InvalidInput(
            f"Invalid index name {json.dumps(name, ensure_ascii=False)}.",
            "Use 3-63 characters: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit.",
        )
    return name


def vector_bucket_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 vector bucket name (3-63 of a-z, 0-9, '-'), or None when it is."""
    if isinstance(name, str) and VECTOR_BUCKET_RE.fullmatch(name):
        return None
    return (
        f"Invalid vector bucket name {name!r}: use 3-63 characters, lowercase letters, digits and '-' only "
        "(no dots), starting and ending with a letter or digit."
    )


def check_vector_bucket_name(name: str) -> str:
    problem = vector_bucket_problem(name)
    if problem:
        raise InvalidInput(problem, "Set NOVA_MCP_VECTOR_BUCKET to a valid name.")
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
        raise InvalidInput(f"Vector keys must be 1-{MAX_KEY_CHARS} characters; got {len(key or '')} characters.")
    return key


# ---- shared validation of vectors, metadata and paging (both stores call these) -------------------------
# Metadata size is measured as compact JSON (separators "," and ":", non-ASCII kept as UTF-8) in bytes;
# S3 Vectors does not document its exact measure, so this is our stable, slightly conservative stand-in.


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """Compact JSON text of metadata: what the local store keeps and what the size limits measure."""
    return _JSON.encode(metadata)


def _plain_json(metadata: dict[str, Any]) -> str:
    """`metadata_json` through orjson (~20x faster), for metadata of plain strings, booleans, integers and
    floats that print without an exponent: orjson writes those byte for byte as the standard encoder does
    (checked on random values in tests/stores/test_metadata_json.py); exponents differ (`1e+16` / `1e16`), so
    such floats, and integers beyond 64 bits or lone surrogates (which orjson refuses), take the standard path."""
    try:
        return orjson.dumps(metadata).decode()
    except TypeError:
        return metadata_json(metadata)


def metadata_bytes(metadata: Mapping[str, Any], where: str = "") -> int:
    """Size of metadata as compact UTF-8 JSON, the measure both stores apply to the 2 KB / 40 KB limits."""
    return _utf8_size(metadata_json(metadata), where)


def _utf8_size(text: str, where: str) -> int:
    """Bytes of `text` as UTF-8; text that has no UTF-8 form (a lone surrogate, e.g. JSON's "\ud800") is refused."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            f"Metadata{where} holds text that is not valid Unicode (an unpaired surrogate such as \\ud800).",
            "Send the text as valid UTF-8 (pair the surrogates, or drop them).",
        ) from None


def _where(key: str | None) -> str:
    return f" of vector {key!r}" if key is not None else ""


def _metadata_value(value: Any, name: str, where: str, *, in_list: bool = False) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            raise InvalidInput(f"Metadata {name!r}{where} is {value!r}; numbers must be finite.")
        return value
    if isinstance(value, list | tuple) and not in_list:
        return [_metadata_value(v, name, where, in_list=True) for v in value]
    kind = "a nested list" if isinstance(value, list | tuple) else json_kind(value)
    raise InvalidInput(
        f"Metadata {name!r}{where} is {kind}; values must be strings, numbers, booleans or lists of those.",
        "Flatten nested structures into separate keys, or serialise them into a string.",
    )


def check_metadata_json(
    metadata: Mapping[str, Any] | None, non_filterable_keys: Collection[str] = (), *, key: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """`check_metadata` that also returns the compact JSON it measured (the local store stores that text)."""
    if metadata is None:
        return None, None
    where = _where(key)
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"Metadata{where} must be a JSON object; got {json_kind(metadata)}.")
    if len(metadata) > MAX_METADATA_KEYS:
        raise LimitExceeded(
            f"Metadata{where} has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed per vector."
        )
    clean: dict[str, Any] = {}
    plain = True
    for name, value in metadata.items():
        if type(name) is not str or not name or name[0] == "$":
            raise InvalidInput(f"Metadata key {name!r}{where} is invalid; keys are non-empty and don't start with '$'.")
        kind = type(value)
        if (
            kind is str
            or kind is bool
            or (kind is int and -1e308 < value < 1e308)
            or (kind is list and all(type(e) is str for e in value))
        ):
            clean[name] = value  # the common case, without a call per value
        elif kind is float and math.isfinite(value):
            clean[name] = value
            plain = plain and (value == 0 or 1e-4 <= abs(value) < 1e16)  # no exponent: see _plain_json
        else:
            clean[name] = _metadata_value(value, name, where)
            plain = False
    text = _plain_json(clean) if plain else metadata_json(clean)
    total = _utf8_size(text, where)
    if total > MAX_METADATA_BYTES:
        raise LimitExceeded(
            f"Metadata{where} is {total} bytes as JSON; at most {MAX_METADATA_BYTES} bytes are allowed per vector.",
            "Shorten the largest values (e.g. store less text per chunk).",
        )
    if total > MAX_FILTERABLE_METADATA_BYTES:
        filterable = {k: v for k, v in clean.items() if k not in non_filterable_keys}
        size = metadata_bytes(filterable, where)
        if size > MAX_FILTERABLE_METADATA_BYTES:
            raise LimitExceeded(
                f"Filterable metadata{where} is {size} bytes as JSON; at most {MAX_FILTERABLE_METADATA_BYTES} "
                "bytes are allowed per vector.",
                "Move large values (text, captions) into a non-filterable key declared when the index is created.",
            )
    return clean, text


def check_metadata(
    metadata: Mapping[str, Any] | None, non_filterable_keys: Collection[str] = (), *, key: str | None = None
) -> dict[str, Any] | None:
    """Validate one vector's metadata against S3 Vectors' rules (types, <= 50 keys, 2 KB filterable,
    40 KB total as compact UTF-8 JSON); return it as plain JSON types."""
    return check_metadata_json(metadata, non_filterable_keys, key=key)[0]


def _vector_problem(row: np.ndarray, dimension: int, metric: str, where: str) -> NovaError | None:
    if row.shape != (dimension,):
        return DimensionMismatch(
            f"Vector{where} has {row.size} dimensions; the index expects {dimension}.",
            "Embed with the dimension the index was created with.",
        )
    if not np.isfinite(row).all():
        return InvalidInput(f"Vector{where} contains NaN or infinity (or a value beyond float32 range).")
    if metric == "cosine" and not row.any():
        return InvalidInput(f"Vector{where} is all zeros, which has no direction under the cosine metric.")
    return None


def _as_float32(data: Any, where: str) -> np.ndarray:
    if data is None:
        raise InvalidInput(f"Vector{where} has no data.")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            row = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"Vector{where} must be a flat list of numbers.") from exc
    if row.ndim != 1:
        raise InvalidInput(f"Vector{where} must be a flat list of numbers.")
    return row


def check_vector(data: Any, dimension: int, metric: str, *, key: str | None = None) -> np.ndarray:
    """Cast one vector to float32 and check length, finiteness and (cosine) non-zero; return it."""
    row = _as_float32(data, _where(key))
    problem = _vector_problem(row, dimension, metric, _where(key))
    if problem:
        raise problem
    return row


def check_vectors(records: Sequence[VectorRecord], dimension: int, metric: str) -> np.ndarray:
    """`check_vector` for a whole batch in one numpy pass; returns an (n, dimension) float32 array."""
    rows = [r.data for r in records]
    matrix = None
    if all(type(r) is np.ndarray and r.shape == (dimension,) for r in rows):  # float32 rows from the core
        with np.errstate(over="ignore", invalid="ignore"):
            matrix = np.stack(cast(list[np.ndarray], rows)).astype(np.float32, copy=False)
    elif all(type(r) is list and len(r) == dimension for r in rows):
        try:  # fromiter over the flat lists is ~2x faster than np.asarray on a list of lists
            flat = np.fromiter(
                itertools.chain.from_iterable(cast(list[list[float]], rows)), np.float64, count=len(rows) * dimension
            )
            with np.errstate(over="ignore", invalid="ignore"):
                matrix = flat.astype(np.float32).reshape(len(rows), dimension)
        except (TypeError, ValueError):
            matrix = None
    if matrix is None:
        matrix = np.stack([check_vector(r.data, dimension, metric, key=r.key) for r in records])
    # One pass: a row's squared norm is finite and non-zero for every good row. It can also overflow (values
    # beyond ~1.8e19) or underflow (below ~1e-19) for a good one, so each suspect row gets the exact check.
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sqnorms = np.einsum("ij,ij->i", matrix, matrix)
    suspect = ~np.isfinite(sqnorms)
    if metric == "cosine":
        suspect |= sqnorms == 0
    for i in np.flatnonzero(suspect).tolist():
        check_vector(records[i].data, dimension, metric, key=records[i].key)
    return matrix


def check_put_batch(vectors: Sequence[VectorRecord]) -> None:
    """Batch size and keys of a put_vectors call; a key may appear once per call."""
    check_batch("put_vectors", len(vectors), MAX_PUT)
    seen: set[str] = set()
    for record in vectors:
        check_key(record.key)
        if record.key in seen:
            raise InvalidInput(f"Key {record.key!r} appears more than once in one put_vectors call.")
        seen.add(record.key)


def check_keys(what: str, keys: Sequence[str], limit: int) -> list[str]:
    """Batch size and keys of a get/delete call; returns the keys without duplicates, first one kept."""
    if isinstance(keys, str):
        raise InvalidInput(f"{what} takes a list of keys, not a single string.")
    check_batch(what, len(keys), limit)
    return list(dict.fromkeys(check_key(k) for k in keys))


def check_max_results(max_results: int) -> int:
    if not isinstance(max_results, int) or isinstance(max_results, bool) or not 1 <= max_results <= MAX_LIST_PAGE:
        raise LimitExceeded(f"max_results must be between 1 and {MAX_LIST_PAGE}; got {max_results!r}.")
    return max_results


def check_index_spec(spec: IndexSpec) -> IndexSpec:
    """Name, non-filterable keys and embedder stamp of a new index."""
    check_index_name(spec.name)
    for name in spec.non_filterable_keys:
        if not isinstance(name, str) or not 1 <= len(name) <= 63:
            raise InvalidInput(f"Non-filterable metadata key {name!r} must be 1-63 characters.")
    if len(set(spec.non_filterable_keys)) != len(spec.non_filterable_keys):
        raise InvalidInput("Non-filterable metadata keys must be distinct.")
    if spec.embedder is not None and spec.embedder.dimension != spec.dimension:
        raise DimensionMismatch(
            f"Index '{spec.name}' has dimension {spec.dimension} but its embedder stamp says {spec.embedder.dimension}."
        )
    return spec


def index_exists_error(name: str) -> InvalidInput:
    return InvalidInput(
        f"Index '{name}' already exists.", "Use it as it is, or delete it first to recreate it with another spec."
    )
