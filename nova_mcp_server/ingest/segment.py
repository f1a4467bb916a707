"""Cut a resolved source into embeddable segments, numbered 0..N-1, each with where it sits in the source.

This only dispatches on the detected format; the modules below do the work: `text` (chunks), `pdf` (page
image + page text), `images` (pass through or convert), `media` (audio/video windows or key frames).

A file is opened once here, beneath its root without following links (`opening.open_regular`), and must still
be the file that was hashed: same inode, size, time and bytes. Every segmenter reads that one descriptor, so
what is segmented is what the content hash names; a file rewritten, replaced or deleted since fails alone.
Segments are produced lazily: text streams block by block, PDFs page by page, media window by window.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.limits import Limits
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.opening import FileIdentity, open_regular
from nova_mcp_server.ingest.sniff import decode_text
from nova_mcp_server.ingest.sources import sha256_fd
from nova_mcp_server.ingest.text import chunk_segments, decoded_pieces, html_to_text, require_text, text_segments
from nova_mcp_server.schema import Modality


def segment_source(
    source: SourceRef,
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
    seconds. Raises InvalidInput (at once for a modality the embedder cannot take, else while iterating) for
    empty, corrupt, encrypted, oversized or changed content. The file stays open until the iterator is exhausted
    or closed: a consumer that stops early should ``close()`` it.
    """
    if not 1 <= segment_seconds <= 3600:
        raise InvalidInput(f"segment_seconds must be between 1 and 3600 (got {segment_seconds}).")
    limits = limits or Limits()
    fmt, modality = source.format, source.modality
    if modality is Modality.IMAGE and "image" not in info.modalities:
        raise InvalidInput(f"the {info.provider} embedder cannot embed images.")
    if (
        modality is not Modality.TEXT
        and fmt != "pdf"
        and modality not in (Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)
    ):
        raise InvalidInput(f"cannot segment {source.display}: format {fmt!r} is not supported.")
    return _segments(source, info, segment_seconds, chunk_chars, overlap_chars, limits)


def _segments(
    source: SourceRef,
    info: EmbedderInfo,
    segment_seconds: int,
    chunk_chars: int | None,
    overlap_chars: int | None,
    limits: Limits,
) -> Iterator[Segment]:
    fmt, modality = source.format, source.modality
    with opened(source) as fh:
        if modality is Modality.TEXT:
            yield from _text(fh, source, info, chunk_chars, overlap_chars)
            return
        # PyAV, PDFium and Pillow load on first use: they cost ~0.1 s of server start-up before `initialize`.
        if fmt == "pdf":
            from nova_mcp_server.ingest.pdf import pdf_segments

            pages = pdf_segments(
                fh, info, chunk_chars=chunk_chars, overlap_chars=overlap_chars, max_pages=limits.max_pdf_pages
            )
            yield from _non_empty(source, pages)
        elif modality is Modality.IMAGE:
            from nova_mcp_server.ingest.images import image_segment

            yield image_segment(fh.read(), fmt)
        else:
            from nova_mcp_server.ingest.media import media_segments

            windows = media_segments(
                fh, fmt, info, segment_seconds=segment_seconds, max_seconds=limits.max_media_seconds
            )
            yield from _non_empty(source, windows)


def changed(source: SourceRef) -> InvalidInput:
    return InvalidInput(
        f"{source.display} changed after it was checked (its size, time or bytes differ now, or it was replaced); "
        "it was not indexed.",
        "Index it again once nothing is writing it.",
    )


@contextmanager
def opened(source: SourceRef) -> Iterator[BinaryIO]:
    """The source's bytes as one open stream at offset 0: the file opened once (verified to be the hashed
    version, and still unchanged when the caller is done), or the inline bytes."""
    if source.local_path is None:
        if source.data is None:
            raise InvalidInput(f"{source.display} has neither a file nor inline bytes.")
        yield io.BytesIO(source.data)
        return
    path = source.local_path
    fd = open_regular(path, source.root or path.parent, source.display, purpose="read")
    with os.fdopen(fd, "rb") as fh:
        if source.identity is not None:
            if FileIdentity.of(os.fstat(fd)) != source.identity or sha256_fd(fh) != source.content_hash:
                raise changed(source)
            fh.seek(0)
        yield fh
        if source.identity is not None and FileIdentity.of(os.fstat(fd)) != source.identity:
            raise changed(source)


def _text(
    fh: BinaryIO, source: SourceRef, info: EmbedderInfo, chunk_chars: int | None, overlap_chars: int | None
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


def _non_empty(source: SourceRef, segments: Iterator[Segment]) -> Iterator[Segment]:
    produced = False
    for segment in segments:
        produced = True
        yield segment
    if not produced:
        raise InvalidInput(f"{source.display} has no content this embedder can index.")
