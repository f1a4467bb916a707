"""Cut a resolved source into embeddable segments, numbered 0..N-1, each with where it sits in the source.

This only dispatches on the detected format; the modules below do the work: `text` (chunks), `pdf` (page
image + page text), `images` (pass through or convert), `media` (audio/video windows or key frames).

Segmenting reads the source's one open file (`loading.Opened`, opened and hashed by the worker that decided it
changed; a bare `SourceRef` is opened here, once). Front-to-back readers get `Opened.reader`, seeking ones the
raw file, and after the last segment `Opened.verify` must agree that the bytes segmented are the bytes hashed:
a file rewritten meanwhile fails alone, before its commit marker can be written.
Segments are produced lazily: text streams block by block, PDFs page by page, media window by window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.loading import Opened, open_source
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.sniff import decode_text
from nova_mcp_server.ingest.text import chunk_segments, decoded_pieces, html_to_text, require_text, text_segments
from nova_mcp_server.schema import Modality


def segment_source(
    source: SourceRef | Opened,
    info: EmbedderInfo,
    *,
    segment_seconds: int = 10,
    chunk_chars: int | None = None,
    overlap_chars: int | None = None,
    limits: Limits | None = None,
) -> Iterator[Segment]:
    """Segments of ``source`` for the embedder described by ``info``, lazily: consume them as they come.

    ``chunk_chars`` defaults to min(2000, info.max_text_chars) and ``overlap_chars`` to 1/8 of it; audio and video
    windows last ``segment_seconds`` (capped at the embedder's sync limit); ``limits`` bounds PDF pages and media
    seconds. Raises InvalidInput (at once for an opened source the embedder cannot take, else while iterating)
    for empty, corrupt, encrypted, oversized or changed content. An `Opened` stays the caller's to close; a
    `SourceRef` is opened here and stays open until the iterator is exhausted or closed: a consumer that stops
    early should ``close()`` it.
    """
    if not 1 <= segment_seconds <= 3600:
        raise InvalidInput(f"segment_seconds must be between 1 and 3600 (got {segment_seconds}).")
    limits = limits or Limits()
    if isinstance(source, Opened):
        _check_takes(source, info)
        return _segments(source, info, segment_seconds, chunk_chars, overlap_chars, limits)
    return _opening(source, info, segment_seconds, chunk_chars, overlap_chars, limits)


def _check_takes(opened: Opened, info: EmbedderInfo) -> None:
    fmt, modality = opened.format, opened.modality
    if modality is Modality.IMAGE and "image" not in info.modalities:
        raise InvalidInput(f"the {info.provider} embedder cannot embed images.")
    if (
        modality is not Modality.TEXT
        and fmt != "pdf"
        and modality not in (Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)
    ):
        raise InvalidInput(f"cannot segment {opened.display}: format {json.dumps(fmt)} is not supported.")


def _opening(
    source: SourceRef,
    info: EmbedderInfo,
    segment_seconds: int,
    chunk_chars: int | None,
    overlap_chars: int | None,
    limits: Limits,
) -> Iterator[Segment]:
    with open_source(source, limits) as opened:
        _check_takes(opened, info)
        yield from _segments(opened, info, segment_seconds, chunk_chars, overlap_chars, limits)


def _segments(
    opened: Opened,
    info: EmbedderInfo,
    segment_seconds: int,
    chunk_chars: int | None,
    overlap_chars: int | None,
    limits: Limits,
) -> Iterator[Segment]:
    fmt, modality = opened.format, opened.modality
    if modality is Modality.TEXT:
        yield from _text(opened.reader(), opened, info, chunk_chars, overlap_chars)
    # PyAV, PDFium and Pillow load on first use: they cost ~0.1 s of server start-up before `initialize`.
    elif fmt == "pdf":
        from nova_mcp_server.ingest.pdf import pdf_segments

        pages = pdf_segments(
            opened.raw(), info, chunk_chars=chunk_chars, overlap_chars=overlap_chars, max_pages=limits.max_pdf_pages
        )
        yield from _non_empty(opened, pages)
    elif modality is Modality.IMAGE:
        from nova_mcp_server.ingest.images import image_segment

        yield image_segment(opened.reader().read(), fmt)
    else:
        from nova_mcp_server.ingest.media import media_segments

        windows = media_segments(
            opened.raw(), fmt, info, segment_seconds=segment_seconds, max_seconds=limits.max_media_seconds
        )
        yield from _non_empty(opened, windows)
    opened.verify()  # before the consumer's last batch is written: what was segmented is what was hashed


def _text(
    fh: BinaryIO, source: Opened, info: EmbedderInfo, chunk_chars: int | None, overlap_chars: int | None
) -> Iterator[Segment]:
    if source.format == "html":  # the visible text needs the whole page; HTML is bounded by max_text_bytes
        text = html_to_text(decode_text(fh.read()))
        require_text(text, source.display)
        yield from text_segments(text, info, chunk_chars=chunk_chars, overlap_chars=overlap_chars)
        return
    produced = False
    for segment in chunk_segments(decoded_pieces(fh), info, chunk_chars=chunk_chars, overlap_chars=overlap_chars):
        produced = True
        yield segment
    if not produced:
        require_text("", source.display)


def _non_empty(source: Opened, segments: Iterator[Segment]) -> Iterator[Segment]:
    produced = False
    for segment in segments:
        produced = True
        yield segment
    if not produced:
        raise InvalidInput(f"{source.display} has no content this embedder can index.")
