"""Deterministic vector keys and the metadata we keep beside each vector.

A source's identity is its canonical URI; its vectors are `<source_id>-<ordinal>`. Re-indexing writes to the
same keys, so it overwrites instead of duplicating. Segment 0 carries the source's content hash and segment
count and is written last: it is the commit marker that lets an unchanged source be skipped.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from nova_mcp_server.errors import InvalidInput, json_kind
from nova_mcp_server.stores.base import MAX_METADATA_KEYS, metadata_bytes

SOURCE_ID_CHARS = 24
SNIPPET_KEY = "snippet"
TEXT_KEY = "text"  # a segment's full text (non-filterable), what `fetch` and full hits return
NON_FILTERABLE_KEYS = [SNIPPET_KEY, TEXT_KEY]  # indexes created before TEXT_KEY declare only the snippet
RESERVED_KEYS = frozenset(
    {
        "source",
        "source_id",
        "modality",
        "format",
        "segment",
        "segment_count",
        "page",
        "start_s",
        "end_s",
        "char_start",
        "char_end",
        "content_hash",
        "indexed_at",
        "partial",
        "embedding_type",
        SNIPPET_KEY,
        TEXT_KEY,
    }
)
MAX_SNIPPET_CHARS = 1000
# Nova's inline text limit; at most ~32 KB as UTF-8, within S3 Vectors' 40 KB of metadata per vector.
MAX_TEXT_CHARS = 8192
# S3 Vectors allows 50 metadata keys and 2 KB of filterable metadata per vector. Our own keys take up to 16
# keys and ~400 bytes plus the source path, so user metadata gets the rest with room for a long path; it is
# checked once per call, before anything is embedded, instead of failing every source at the store.
MAX_USER_METADATA_KEYS = MAX_METADATA_KEYS - len(RESERVED_KEYS)
MAX_USER_METADATA_BYTES = 1024


def source_id(canonical_uri: str) -> str:
    return hashlib.sha256(canonical_uri.encode("utf-8")).hexdigest()[:SOURCE_ID_CHARS]


def vector_key(sid: str, ordinal: int) -> str:
    return f"{sid}-{ordinal:05d}"


def ordinal_of(key: str) -> int:
    """The segment ordinal a vector key ends with."""
    return int(key.rsplit("-", 1)[1])


def canonical_source(uri: str) -> str:
    """What agents see and filter on as `source`: a file's absolute path, an s3 URI, or inline:<hash>."""
    return uri.removeprefix("file://")


def check_user_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """User metadata must be flat JSON primitives (or lists of them) and must not shadow our own keys."""
    if not metadata:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be an object of key -> value.")
    clash = sorted(set(metadata) & RESERVED_KEYS)
    if clash:
        raise InvalidInput(
            f"metadata uses reserved key(s) {clash}.",
            f"Rename them; these names are set by the server: {sorted(RESERVED_KEYS)}.",
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InvalidInput(f"metadata key {key!r} is invalid: use a non-empty name not starting with '$'.")
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise InvalidInput(f"metadata '{key}' is an empty array; give at least one value or leave it out.")
        for item in values:
            if not isinstance(item, str | int | float | bool):
                kind = "a nested array" if isinstance(item, list) else json_kind(item)
                raise InvalidInput(
                    f"metadata '{key}' has {kind} as a value; allowed are a string, a number, a boolean, "
                    "or an array of those."
                )
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidInput(f"metadata '{key}' is {item!r}; numbers must be finite.")
    if len(metadata) > MAX_USER_METADATA_KEYS:
        raise InvalidInput(
            f"metadata has {len(metadata)} keys; at most {MAX_USER_METADATA_KEYS} fit beside the server's own keys "
            f"(S3 Vectors allows {MAX_METADATA_KEYS} per vector).",
            "Drop keys, or join related values into one key.",
        )
    size = metadata_bytes(metadata)
    if size > MAX_USER_METADATA_BYTES:
        raise InvalidInput(
            f"metadata is {size:,} bytes as JSON; at most {MAX_USER_METADATA_BYTES:,} bytes fit beside the server's "
            "own keys (S3 Vectors allows 2 KB of filterable metadata per vector).",
            "Shorten the values or drop keys; put long text in the content you index instead.",
        )
    return dict(metadata)
