"""A contact sheet: the top image, page and frame hits as one numbered grid PNG under a byte cap.

Why: an answer may carry only a few images (clients cap them, and each costs the model tokens), but an agent
choosing among ten image hits wants to see all ten. One grid, each cell numbered like the hit it shows,
fits them into one image block. The PNG is made smaller (smaller cells, then a 256-colour palette) until it
is under the cap, so the answer's size is bounded whatever the pictures are.

Input is image bytes (what `thumbnails.hit_image` returns decoded, a rendered PDF page, a video frame);
this module reads no files, so the allowed-roots check stays where it is, in the caller.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nova_mcp_server.thumbnails import THUMBNAIL_PX

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_SHEET_BYTES = 1_000_000  # about what clients accept for one image block
MAX_CELLS = 16
CELL_PX = THUMBNAIL_PX // 2  # one cell of a sheet is half a single thumbnail
MIN_CELL_PX = 48
GAP_PX = 4
BACKGROUND = (32, 32, 32)


@dataclass(frozen=True)
class Cell:
    number: int  # the label drawn in the cell (1-based, like the hit's rank)
    x: int
    y: int
    size: int


@dataclass(frozen=True)
class ContactSheet:
    png: bytes
    width: int
    height: int
    columns: int
    cells: list[Cell]  # the numbered cells, in input order (unreadable inputs are skipped)
    skipped: list[int]  # 1-based numbers of inputs that could not be decoded
    palette: bool  # True when reduced to 256 colours to fit the cap


def contact_sheet(
    images: Sequence[bytes],
    *,
    numbers: Sequence[int] | None = None,
    max_bytes: int = MAX_SHEET_BYTES,
    cell_px: int = CELL_PX,
    columns: int | None = None,
) -> ContactSheet:
    """Compose up to `MAX_CELLS` images into a numbered grid PNG of at most ``max_bytes``.

    ``numbers``: the label per image (default 1..N), e.g. the hits' ranks. ``columns``: default a near-square
    grid. Raises ValueError when no image decodes or the cap cannot be met even at the smallest cell size.
    """
    if len(images) > MAX_CELLS:
        raise ValueError(f"a contact sheet holds at most {MAX_CELLS} images; got {len(images)}")
    labels = list(numbers) if numbers is not None else list(range(1, len(images) + 1))
    if len(labels) != len(images):
        raise ValueError("numbers must have one label per image")
    pictures: list[tuple[int, Image]] = []
    skipped: list[int] = []
    for label, raw in zip(labels, images, strict=True):
        picture = _decode(raw)
        if picture is None:
            skipped.append(label)
        else:
            pictures.append((label, picture))
    if not pictures:
        raise ValueError("none of the images could be decoded")
    cols = columns or math.ceil(math.sqrt(len(pictures)))
    size = cell_px
    for _ in range(8):  # PNG size grows with the pixel count, so each retry scales straight towards the cap
        sheet, cells = _compose(pictures, cols, size)
        png = _png(sheet)
        if len(png) <= max_bytes:
            return ContactSheet(png, sheet.width, sheet.height, cols, cells, skipped, palette=False)
        if size <= MIN_CELL_PX:
            break
        size = max(MIN_CELL_PX, min(size - 1, int(size * math.sqrt(max_bytes / len(png)) * 0.95)))
    png = _png(sheet.quantize(colors=256))  # smallest cells and still too big: 1 byte a pixel instead of 3
    if len(png) <= max_bytes:
        return ContactSheet(png, sheet.width, sheet.height, cols, cells, skipped, palette=True)
    raise ValueError(f"the sheet does not fit in {max_bytes} bytes even with {MIN_CELL_PX} px cells")


def _decode(raw: bytes) -> Image | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
            img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _compose(pictures: Sequence[tuple[int, Image]], cols: int, size: int) -> tuple[Image, list[Cell]]:
    from PIL import Image, ImageDraw

    rows = math.ceil(len(pictures) / cols)
    sheet = Image.new("RGB", (cols * size + (cols + 1) * GAP_PX, rows * size + (rows + 1) * GAP_PX), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(max(12, size // 8))
    cells = []
    for k, (label, picture) in enumerate(pictures):
        x = GAP_PX + (k % cols) * (size + GAP_PX)
        y = GAP_PX + (k // cols) * (size + GAP_PX)
        thumb = picture.copy()
        thumb.thumbnail((size, size))
        sheet.paste(thumb, (x + (size - thumb.width) // 2, y + (size - thumb.height) // 2))
        text = str(label)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, size // 40)
        draw.rectangle((x, y, x + right - left + 2 * pad, y + bottom - top + 2 * pad), fill=(255, 255, 255))
        draw.text((x + pad - left, y + pad - top), text, fill=(0, 0, 0), font=font)
        cells.append(Cell(number=label, x=x, y=y, size=size))
    return sheet, cells


def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _png(image: Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
