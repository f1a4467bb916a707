"""The one builder of a vector's metadata, for the sync path and the Nova async path alike.

Every segment gets the same reserved keys (source, source_id, modality, format, segment, `indexed_at`, its
locator and a snippet) so a hit looks the same whichever path wrote it; the commit marker's extra keys
(content hash, segment count, partial) are added by the writer, which alone decides what is a marker.
"""

from __future__ import annotations

import time
from typing import Any

from nova_mcp_server import keys
from nova_mcp_server.models import Locator


def segment_metadata(
    *,
    uri: str,
    modality: str,
    format: str,
    ordinal: int,
    locator: Locator,
    user_meta: dict[str, Any],
    snippet: str | None = None,
    text: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metadata of segment `ordinal` of the source `uri`; user keys first so ours always win.

    `text` (the segment's full text) is kept only where the index declares TEXT_KEY non-filterable: an index
    created before it would count the text against its 2 KB of filterable metadata.
    """
    meta: dict[str, Any] = dict(user_meta)
    meta.update(
        source=keys.canonical_source(uri),
        source_id=keys.source_id(uri),
        modality=modality,
        format=format,
        segment=ordinal,
        indexed_at=int(time.time()),
    )
    meta.update(locator.to_metadata())
    if extra:
        meta.update(extra)
    if snippet:
        meta[keys.SNIPPET_KEY] = snippet[: keys.MAX_SNIPPET_CHARS]
    if text:
        meta[keys.TEXT_KEY] = text[: keys.MAX_TEXT_CHARS]
    return meta


def user_metadata(marker: dict[str, Any]) -> dict[str, Any]:
    """The caller's own keys of a stored vector's metadata (what a re-index without metadata keeps)."""
    return {k: v for k, v in marker.items() if k not in keys.RESERVED_KEYS}
