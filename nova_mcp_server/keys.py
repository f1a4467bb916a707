"""Deterministic vector keys and the metadata we keep beside each vector.

A source's identity is its canonical URI; its vectors are `<source_id>-<ordinal>`. Re-indexing writes to the
same keys, so it overwrites instead of duplicating. Segment 0 carries the source's content hash and segment
count and is written last: it is the commit marker that lets an unchanged source be skipped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nova_mcp_server.errors import InvalidInput

SOURCE_ID_CHARS = 24
SNIPPET_KEY = "snippet"
NON_FILTERABLE_KEYS = [SNIPPET_KEY]
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
    }
)
MAX_SNIPPET_CHARS = 1000


def source_id(canonical_uri: str) -> str:
    return hashlib.sha256(canonical_uri.encode("utf-8")).hexdigest()[:SOURCE_ID_CHARS]


def vector_key(sid: str, ordinal: int) -> str:
    return f"{sid}-{ordinal:05d}"


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
            raise InvalidInput(f"metadata '{key}' is an empty list; give at least one value or leave it out.")
        for item in values:
            if not isinstance(item, str | int | float | bool) or item != item:  # NaN != NaN
                raise InvalidInput(
                    f"metadata '{key}' has a value of type {type(item).__name__}; "
                    "allowed are string, number, boolean, or a list of those."
                )
    json.dumps(metadata)
    return dict(metadata)
