"""The contact sheet: numbered cells in input order, one PNG under the byte cap whatever the pictures are."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nova_mcp_server.contact_sheet import MAX_CELLS, MAX_SHEET_BYTES, contact_sheet


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def noise(seed: int, size: int = 256) -> bytes:
    """Random pixels: PNG cannot compress them, the worst case for the cap."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def open_sheet(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def test_cells_hold_the_images_in_order_each_with_its_own_number() -> None:
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]
    sheet = contact_sheet([png(c) for c in colours], numbers=[3, 4, 5, 6, 7])
    image = open_sheet(sheet.png)
    assert (image.width, image.height, sheet.columns) == (sheet.width, sheet.height, 3)  # 5 cells: 3 x 2
    assert [cell.number for cell in sheet.cells] == [3, 4, 5, 6, 7]
    for cell, colour in zip(sheet.cells, colours, strict=True):
        centre = image.getpixel((cell.x + cell.size // 2, cell.y + cell.size // 2))
        assert centre == colour
        assert image.getpixel((cell.x + 1, cell.y + 1)) == (255, 255, 255)  # the label box's corner


def test_same_pictures_get_different_visible_numbers() -> None:
    sheet = contact_sheet([png((90, 90, 90))] * 3)
    image = np.asarray(open_sheet(sheet.png))
    labels = [image[c.y : c.y + c.size // 5, c.x : c.x + c.size // 5] for c in sheet.cells]
    assert all(label.min() < 50 for label in labels)  # dark digits are drawn on the white box
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])
    bodies = [image[c.y + c.size // 2 :, c.x : c.x + c.size][: c.size // 2] for c in sheet.cells]
    assert np.array_equal(bodies[0], bodies[1])  # only the number differs


@pytest.mark.parametrize("cap", [MAX_SHEET_BYTES, 150_000])
def test_sixteen_incompressible_images_fit_under_the_cap(cap: int) -> None:
    sheet = contact_sheet([noise(i) for i in range(MAX_CELLS)], max_bytes=cap)
    assert len(sheet.png) <= cap
    assert len(sheet.cells) == MAX_CELLS and [c.number for c in sheet.cells] == list(range(1, 17))
    open_sheet(sheet.png)


def test_the_palette_is_the_last_resort_and_a_sheet_that_fits_is_left_alone() -> None:
    tiny = contact_sheet([noise(i) for i in range(4)], max_bytes=20_000)
    assert len(tiny.png) <= 20_000 and tiny.palette and tiny.cells[0].size == 48  # smallest cells, then 256 colours
    small = contact_sheet([png((10, 20, 30))] * 4)
    assert small.cells[0].size == 256 and not small.palette  # nothing to shrink when it already fits


def test_unreadable_inputs_are_skipped_and_bad_calls_refused() -> None:
    sheet = contact_sheet([png((1, 2, 3)), b"not an image", png((4, 5, 6))])
    assert sheet.skipped == [2] and [c.number for c in sheet.cells] == [1, 3]
    with pytest.raises(ValueError, match="none of the images"):
        contact_sheet([b"junk"])
    with pytest.raises(ValueError, match="at most 16"):
        contact_sheet([png((0, 0, 0))] * 17)
    with pytest.raises(ValueError, match="does not fit"):
        contact_sheet([noise(1)], max_bytes=100)
