"""Small pictures for an agent that can look: image hits, PDF pages, video frames, each under a byte cap.

Files are read through the same allowed-roots check and link-refusing open as indexing (one rule), so a
picture can only come from where indexing could read.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from nova_mcp_server.models import SearchHit

THUMBNAIL_PX = 512
MAX_IMAGE_BYTES = 1_000_000  # per picture: clients reject or bill large images; 5 per answer at most
MAX_IMAGES_PER_ANSWER = 5


@contextmanager
def open_allowed(source: str | None, allowed_roots: Sequence[str | os.PathLike[str]]) -> Iterator[BinaryIO | None]:
    """A local source under an allowed root, opened once without following links (None when it is not one).

    The picture is cut from the open file: a frame of a 2 GB video reads a few MB around it, not the video.
    """
    from nova_mcp_server.errors import NovaError
    from nova_mcp_server.ingest.opening import open_regular, root_of

    path = Path(os.path.realpath(source)) if source and not source.startswith(("s3://", "inline:")) else None
    root = root_of(path, [Path(os.path.realpath(r)) for r in allowed_roots]) if path is not None else None
    fd: int | None = None
    if path is not None and root is not None:
        try:
            fd = open_regular(path, root, str(source), purpose="preview")
        except (NovaError, OSError):
            fd = None
    if fd is None:
        yield None
        return
    with os.fdopen(fd, "rb") as f:
        yield f


def fit_png(picture: object, max_bytes: int = MAX_IMAGE_BYTES, px: int = THUMBNAIL_PX) -> bytes | None:
    """A PIL image as PNG of at most `max_bytes`, halving its size until it fits."""
    from PIL import Image

    assert isinstance(picture, Image.Image)
    img = picture.convert("RGB")
    img.thumbnail((px, px))
    while True:
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
        if max(img.size) <= 32:
            return None
        img = img.resize((max(1, img.width // 2), max(1, img.height // 2)))


def image_png(raw: bytes | BinaryIO, max_bytes: int = MAX_IMAGE_BYTES) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw) if isinstance(raw, bytes) else raw) as img:
            return fit_png(img, max_bytes)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def page_png(raw_pdf: bytes | BinaryIO, page: int, max_bytes: int = MAX_IMAGE_BYTES) -> bytes | None:
    """PDF page `page` (1-based) rendered and fitted under the cap."""
    from nova_mcp_server.errors import NovaError
    from nova_mcp_server.ingest.pdf import PDFIUM_LOCK, open_pdf, render_page

    try:
        with PDFIUM_LOCK:
            doc = open_pdf(raw_pdf)
            try:
                if not 1 <= page <= len(doc):
                    return None
                png, _, _ = render_page(doc[page - 1])
            finally:
                doc.close()
    except (NovaError, OSError, ValueError):
        return None
    return image_png(png, max_bytes)


def frame_png(raw_video: bytes | BinaryIO, at_s: float, max_bytes: int = MAX_IMAGE_BYTES) -> bytes | None:
    """The first video frame at or after `at_s` seconds, fitted under the cap."""
    import av

    try:
        with av.open(io.BytesIO(raw_video) if isinstance(raw_video, bytes) else raw_video, mode="r") as container:
            stream = container.streams.video[0]
            if stream.time_base is not None:
                container.seek(int(max(0.0, at_s) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time >= at_s - 1e-3:
                    return fit_png(frame.to_image(), max_bytes)
    except (OSError, ValueError, IndexError, av.error.FFmpegError):
        return None
    return None


def hit_image(allowed_roots: Sequence[str | os.PathLike[str]], hit: SearchHit) -> tuple[str, str] | None:
    """A PNG thumbnail (base64, mime) of an image hit whose file is still readable under an allowed root."""
    if hit.modality != "image":
        return None
    with open_allowed(hit.source, allowed_roots) as f:
        png = image_png(f) if f is not None else None
    return (base64.b64encode(png).decode("ascii"), "image/png") if png else None
