"""PDF pages into segments: a rendered page image (DOCUMENT_IMAGE) plus the page's text chunks.

The page image carries layout, tables and figures (and is all a scanned page has); the text chunks make exact
phrases findable. PDFium is not thread-safe (not even across documents), so every call into it holds one
process-wide lock; segments are yielded outside it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pypdfium2 as pdfium

from nova_mcp_server.embedders.base import EmbedderInfo
from nova_mcp_server.errors import InvalidInput, LimitExceeded
from nova_mcp_server.ingest.model import Segment
from nova_mcp_server.ingest.text import text_segments
from nova_mcp_server.schema import DetailLevel, Modality

RENDER_DPI = 150  # legible small print; a Letter page is 1275x1650 px
MAX_PAGE_PIXELS = 2048  # longest side; posters and huge scans are rendered smaller, not bigger
PDFIUM_LOCK = threading.RLock()


def open_pdf(data: Path | bytes | BinaryIO) -> pdfium.PdfDocument:
    """Open a PDF or raise InvalidInput saying why (password, damage)."""
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise InvalidInput(
                "encrypted PDF: it needs a password.", "Remove the password (print to PDF) and retry."
            ) from None
        if code == pdfium.raw.FPDF_ERR_SECURITY:
            raise InvalidInput("PDF uses an unsupported security scheme.", "Save an unprotected copy.") from None
        raise InvalidInput(f"corrupt or truncated PDF: {exc}") from None


def render_page(page: pdfium.PdfPage) -> tuple[bytes, int, int]:
    """PNG bytes of a page at RENDER_DPI, scaled down so the longest side is at most MAX_PAGE_PIXELS."""
    width_pt, height_pt = page.get_size()
    scale = RENDER_DPI / 72
    longest = max(width_pt, height_pt, 1.0) * scale
    if longest > MAX_PAGE_PIXELS:
        scale *= MAX_PAGE_PIXELS / longest
    image = page.render(scale=scale).to_pil().convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue(), image.width, image.height


def page_text(page: pdfium.PdfPage) -> str:
    text = page.get_textpage().get_text_bounded()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def pdf_segments(
    data: Path | bytes | BinaryIO,
    info: EmbedderInfo,
    *,
    chunk_chars: int | None = None,
    overlap_chars: int | None = None,
    max_pages: int | None = None,
) -> Iterator[Segment]:
    """Per page (1-based ``page``): the page image when the embedder takes images, then its text chunks.

    Char ranges index into the page's extracted text (CRLF normalised to LF). A PDF of more than ``max_pages``
    pages is refused before any page is rendered (a tiny file can hold thousands of blank pages).
    """
    with PDFIUM_LOCK:
        pdf = open_pdf(data)
        pages = len(pdf)
    try:
        if pages == 0:
            raise InvalidInput("PDF has no pages.")
        if max_pages is not None and pages > max_pages:
            raise LimitExceeded(
                f"PDF has {pages:,} pages; at most {max_pages:,} pages are indexed per PDF.",
                "Split it (e.g. print page ranges to PDF), or raise NOVA_MCP_MAX_PDF_PAGES.",
            )
        ordinal = 0
        for index in range(pages):
            with PDFIUM_LOCK:
                try:
                    page = pdf[index]
                    text = page_text(page)
                    image = render_page(page) if "image" in info.modalities else None
                    page.close()
                except pdfium.PdfiumError as exc:
                    raise InvalidInput(f"corrupt PDF: page {index + 1} cannot be read ({exc}).") from None
            if image is not None:
                png, width, height = image
                yield Segment(
                    ordinal=ordinal,
                    modality=Modality.DOCUMENT,
                    embed_as="image",
                    media=png,
                    media_format="png",
                    detail_level=DetailLevel.DOCUMENT_IMAGE,
                    page=index + 1,
                    snippet=_page_snippet(index + 1, width, height, text),
                )
                ordinal += 1
            for segment in text_segments(
                text,
                info,
                modality=Modality.DOCUMENT,
                page=index + 1,
                first_ordinal=ordinal,
                chunk_chars=chunk_chars,
                overlap_chars=overlap_chars,
            ):
                yield segment
                ordinal += 1
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _page_snippet(page: int, width: int, height: int, text: str) -> str:
    words = " ".join(text.split())
    head = f"page {page} ({width}x{height})"
    return f"{head}: {words[:240]}" if words else f"{head}, no text layer"
