"""Images into one embeddable image: Nova's formats pass through, others become PNG, huge ones shrink.

Decoding untrusted images is where memory blows up, so the declared size is checked before any pixel is
decoded, and a file is fully decoded once to catch truncation before it reaches the embedder.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.ingest.model import Segment
from nova_mcp_server.ingest.sniff import NOVA_IMAGE_FORMATS
from nova_mcp_server.schema import DetailLevel, Modality

MAX_SIDE = 4096  # longest side sent to the embedder
MAX_PASSTHROUGH_BYTES = 15_000_000  # 20 MB after base64: well inside the 25 MB request limit
MAX_SOURCE_PIXELS = 100_000_000  # refuse to decode more than this (a 10k x 10k image)


def open_image(raw: bytes) -> Image.Image:
    """Open and fully decode an image, refusing bombs and broken files with InvalidInput."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
        width, height = image.size
        if width * height > MAX_SOURCE_PIXELS:
            raise InvalidInput(
                f"image too large to decode safely: {width}x{height} pixels (limit {MAX_SOURCE_PIXELS:,}).",
                "Downscale it first.",
            )
        image.load()
    except Image.DecompressionBombError as exc:
        raise InvalidInput(
            f"image too large to decode safely (a decompression bomb?): {exc}", "Downscale it first."
        ) from None
    except UnidentifiedImageError:
        raise InvalidInput("corrupt image: the image data cannot be read.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"corrupt or truncated image: {exc}") from None
    return image


def prepare_image(raw: bytes, fmt: str, *, max_side: int = MAX_SIDE) -> tuple[bytes, str, int, int]:
    """Bytes and format to embed, plus the original size: as-is when Nova takes them, else converted."""
    image = open_image(raw)
    width, height = image.size
    fits = max(width, height) <= max_side and len(raw) <= MAX_PASSTHROUGH_BYTES
    if fmt in NOVA_IMAGE_FORMATS and fits:
        return raw, fmt, width, height
    return (*encode_image(image, keep_jpeg=fmt == "jpeg", max_side=max_side), width, height)


def encode_image(image: Image.Image, *, keep_jpeg: bool = False, max_side: int = MAX_SIDE) -> tuple[bytes, str]:
    """Downscale to ``max_side`` and encode as PNG (JPEG for photos, or when PNG would be too big)."""
    image = ImageOps.exif_transpose(image)
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if has_alpha else "RGB")
    if not keep_jpeg:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        if buf.tell() <= MAX_PASSTHROUGH_BYTES:
            return buf.getvalue(), "png"
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue(), "jpeg"


def image_segment(
    raw: bytes, fmt: str, *, modality: Modality = Modality.IMAGE, detail: DetailLevel | None = None
) -> Segment:
    media, media_format, width, height = prepare_image(raw, fmt)
    return Segment(
        ordinal=0,
        modality=modality,
        embed_as="image",
        media=media,
        media_format=media_format,
        detail_level=detail,
        snippet=f"{fmt} image {width}x{height}",
    )
