"""How the local embedder feeds its model: batches that keep both cores busy without wasting work.

Why:
- Texts: fastembed pads a batch to its longest text, and a transformer's cost grows with padded length
  (attention with its square). Batching texts in length order, each batch bounded by padded tokens rather
  than by a count, means a batch of short captions is large and a batch of 2,000-character chunks is small,
  and almost no padding is computed.
- Images: decoding (PNG/JPEG -> pixels) is Python-side work that otherwise leaves the cores idle while it
  runs. The next batch is decoded in a helper thread (Pillow releases the GIL while decoding) while the
  model runs the current one, and big images are reduced on decode (the towers look at 224 px).
- Concurrent calls: many agents (or one agent's parallel tool calls) each embed one short query. A model run
  of one query leaves most of a batch's throughput unused (CLIP-B/32-size text tower on this 2-core machine:
  15 queries/s at batch 1, 30 at batch 8), so calls that arrive while a run is in progress wait for it and
  then go together as one run (`Coalescer`, "group commit"); a lone call runs at once, as before.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

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
J = TypeVar("J")


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


@dataclass(eq=False)
class _Entry(Generic[J, R]):
    job: J
    taken: bool = False
    done: bool = False
    value: R | None = None
    error: BaseException | None = None


class Coalescer(Generic[J, R]):
    """Runs jobs in a worker thread, at most ``runners`` runs at once; jobs that arrive while every runner is
    busy are taken together by the next run (up to ``max_items`` by ``size``, oldest first).

    ``run_many(jobs)`` runs in a thread and returns one outcome per job, a value or an exception instance, so
    one bad job fails only itself. A run, once started, finishes even if the call that started it is
    cancelled (the other jobs in it belong to other calls); the cancelled call then raises. Belongs to the
    event loop that first uses it.
    """

    def __init__(
        self,
        run_many: Callable[[list[J]], list[R | BaseException]],
        *,
        max_items: int,
        size: Callable[[J], int],
        runners: int = 1,
    ) -> None:
        self._run_many = run_many
        self._max_items = max_items
        self._size = size
        self._runners = max(1, runners)
        self._running = 0
        self._queue: list[_Entry[J, R]] = []
        self._cond = anyio.Condition()

    async def submit(self, job: J) -> R:
        entry: _Entry[J, R] = _Entry(job)
        async with self._cond:
            self._queue.append(entry)
            try:
                while not entry.taken:
                    if self._running < self._runners:
                        batch = self._take(entry)
                        self._running += 1
                        break
                    await self._cond.wait()
                else:
                    while not entry.done:
                        await self._cond.wait()
                    return self._outcome(entry)
            except BaseException:
                if not entry.taken:  # cancelled while queued: nobody will run it
                    self._queue.remove(entry)
                raise
        with anyio.CancelScope(shield=True):  # the batch holds other calls' jobs: finish and hand out results
            outcomes: list[R | BaseException]
            try:
                outcomes = await anyio.to_thread.run_sync(self._run_many, [e.job for e in batch])
            except BaseException as exc:  # run_many itself broke: every job in the batch gets the error
                outcomes = [exc] * len(batch)
            async with self._cond:
                for e, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        e.error = outcome
                    else:
                        e.value = outcome
                    e.done = True
                self._running -= 1
                self._cond.notify_all()
        await anyio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller stops here, its run handed out
        return self._outcome(entry)

    def _take(self, first: _Entry[J, R]) -> list[_Entry[J, R]]:
        """``first`` and then the oldest queued jobs while they fit in ``max_items`` (caller holds the lock)."""
        batch, total = [first], self._size(first.job)
        self._queue.remove(first)
        for e in list(self._queue):
            n = self._size(e.job)
            if total + n > self._max_items:
                break
            batch.append(e)
            total += n
            self._queue.remove(e)
        for e in batch:
            e.taken = True
        return batch

    @staticmethod
    def _outcome(entry: _Entry[J, R]) -> R:
        if entry.error is not None:
            raise entry.error
        return entry.value  # type: ignore[return-value]
