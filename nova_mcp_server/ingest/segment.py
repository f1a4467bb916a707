"""Cut a resolved source into embeddable segments, numbered 0..N-1, each with where it sits in the source.

This only dispatches on the detected format; the modules below do the work: `text` (chunks), `pdf` (page
image + page text), `images` (pass through or convert), `media` (audio/video windows or key frames).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.sniff import decode_text
from nova_mcp_server.ingest.text import html_to_text, require_text, text_segments
from nova_mcp_server.schema import Modality


def segment_source(
    source: SourceRef,
    info: EmbedderInfo,
    *,
    segment_seconds: int = 10,
    chunk_chars: int | None = None,
    overlap_chars: int | None = None,
) -> Iterator[Segment]:
    """Segments of ``source`` for the embedder described by ``info``, lazily (long media are cut as consumed).

    ``chunk_chars`` defaults to min(2000, info.max_text_chars) and ``overlap_chars`` to 1/8 of it; audio and video
    windows last ``segment_seconds`` (capped at the embedder's sync limit). Raises InvalidInput for empty,
    corrupt, encrypted or oversized content and for modalities the embedder cannot take.
    """
    if not 1 <= segment_seconds <= 3600:
        raise InvalidInput(f"segment_seconds must be between 1 and 3600 (got {segment_seconds}).")
    fmt, modality = source.format, source.modality
    if modality is Modality.TEXT:
        return _text(source, info, chunk_chars, overlap_chars)
    # PyAV, PDFium and Pillow load on first use: they cost ~0.1 s of server start-up before `initialize`.
    if fmt == "pdf":
        from nova_mcp_server.ingest.pdf import pdf_segments

        return _non_empty(
            source, pdf_segments(_input(source), info, chunk_chars=chunk_chars, overlap_chars=overlap_chars)
        )
    if modality is Modality.IMAGE:
        if "image" not in info.modalities:
            raise InvalidInput(f"the {info.provider} embedder cannot embed images.")
        from nova_mcp_server.ingest.images import image_segment

        return iter([image_segment(_bytes(source), fmt)])
    if modality in (Modality.AUDIO, Modality.VIDEO):
        from nova_mcp_server.ingest.media import media_segments

        return _non_empty(source, media_segments(_input(source), fmt, info, segment_seconds=segment_seconds))
    raise InvalidInput(f"cannot segment {source.display}: format {fmt!r} is not supported.")


def _text(
    source: SourceRef, info: EmbedderInfo, chunk_chars: int | None, overlap_chars: int | None
) -> Iterator[Segment]:
    text = decode_text(_bytes(source))
    if source.format == "html":
        text = html_to_text(text)
    require_text(text, source.display)
    return text_segments(text, info, chunk_chars=chunk_chars, overlap_chars=overlap_chars)


def _non_empty(source: SourceRef, segments: Iterator[Segment]) -> Iterator[Segment]:
    produced = False
    for segment in segments:
        produced = True
        yield segment
    if not produced:
        raise InvalidInput(f"{source.display} has no content this embedder can index.")


def _input(source: SourceRef) -> Path | bytes:
    if source.local_path is not None:
        return source.local_path
    if source.data is not None:
        return source.data
    raise InvalidInput(f"{source.display} has neither a file nor inline bytes.")


def _bytes(source: SourceRef) -> bytes:
    data = _input(source)
    return data if isinstance(data, bytes) else data.read_bytes()
