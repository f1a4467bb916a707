"""How the local embedder feeds its model: batches that keep both cores busy without wasting work.

Why:
- Texts: fastembed pads a batch to its longest text, and a transformer's cost grows with padded length
  (attention with its square). Batching texts in length order, each batch bounded by padded tokens rather
  than by a count, means a batch of short captions is large and a batch of 2,000-character chunks is small,
  and almost no padding is computed.
- Images: decoding (PNG/JPEG -> pixels) is Python-side work that otherwise leaves the cores idle while it
  runs. The next batch is decoded in a helper thread (Pillow releases the GIL while decoding) while the
  model runs the current one, and big images are reduced on decode (the towers look at 224 px).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from nova_mcp_server.errors import InvalidInput

if TYPE_CHECKING:
    from PIL.Image import Image

# Padded tokens per text batch: ~8k tokens is a few hundred MB of activations for a base-size tower and
# big enough that onnxruntime's intra-op threads have whole matrices to share.
MAX_BATCH_TOKENS = 8192
MAX_TEXT_BATCH = 64
IMAGE_BATCH = 16
DECODE_MIN_SIDE = 448  # reduce big images on decode, keeping the short side at least this (2x the towers' 224)

T = TypeVar("T")
R = TypeVar("R")


def token_batches(
    lengths: Sequence[int], max_tokens: int | None = None, max_batch: int | None = None
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest first, each at most ``max_tokens`` once padded.

    A text longer than ``max_tokens`` on its own gets a batch of one. Every index appears exactly once.
    Defaults: `MAX_BATCH_TOKENS` and `MAX_TEXT_BATCH`, read at call time.
    """
    max_tokens = max_tokens or MAX_BATCH_TOKENS
    max_batch = max_batch or MAX_TEXT_BATCH
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]  # sorted: the first is the longest
        if current and (longest * (len(current) + 1) > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def prefetched(batches: Sequence[T], prepare: Callable[[T], R]) -> Iterator[R]:
    """``prepare(batch)`` for each batch in order, preparing the next one in a helper thread meanwhile."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nova-decode") as pool:
        pending = pool.submit(prepare, batches[0])
        for nxt in batches[1:]:
            ready = pending.result()
            pending = pool.submit(prepare, nxt)
            yield ready
        yield pending.result()


def decode_image(i: int, raw: bytes) -> Image:
    """Bytes -> RGB PIL image; big images decode at a reduced scale (JPEG draft mode, else integer reduce)."""
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(io.BytesIO(raw))
        opened.draft("RGB", (DECODE_MIN_SIDE, DECODE_MIN_SIDE))
        image = opened.convert("RGB")
        factor = min(image.size) // DECODE_MIN_SIDE
        return image.reduce(factor) if factor >= 2 else image
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(
            f"Request {i}: the image could not be decoded ({exc}).",
            "Send a PNG, JPEG, GIF or WebP file.",
        ) from exc
