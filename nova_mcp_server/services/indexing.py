"""Indexing: resolve sources, skip unchanged ones, segment lazily, embed and write in bounded batches.

Each source's worker opens it once (`Ingest.opened`: no link followed, a regular file, hashed from that open
file), decides skip-if-unchanged on that hash, and segments the same open file; only the workers' sources are
open at a time, so a call over thousands of files needs a handful of descriptors.

Memory stays flat however large the call: a source is cut into segments as they are consumed, EMBED_BATCH
at a time, and the writer drops each record once it is written. Sources run side by side so that small
ones keep the embedder at its concurrency limit instead of waiting out each call's latency in turn.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from nova_mcp_server import keys
from nova_mcp_server.embedders.nova_inputs import embedding_type_tag, video_mode
from nova_mcp_server.errors import InvalidInput, NovaError
from nova_mcp_server.ingest.loading import Opened
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.models import ContentInput, Failure, IndexReport, Locator
from nova_mcp_server.schema import EmbeddingPurpose, SingleEmbeddingRequest
from nova_mcp_server.services.catalog import Catalog
from nova_mcp_server.services.embedding import EmbedderPolicy, Progress, no_progress
from nova_mcp_server.services.metadata import segment_metadata, user_metadata
from nova_mcp_server.services.writer import SourceCommit, Writer, markers
from nova_mcp_server.stores.base import (
    MAX_GET,
    VectorRecord,
    VectorStore,
    check_index_name,
    check_metadata_json,
    check_vectors,
    float32_record,
)

log = logging.getLogger(__name__)
EMBED_BATCH = 64  # segments per embed() call: what one source holds in memory at a time
SOURCE_LANES_PER_SLOT = 2  # sources in flight per embedder concurrency slot


class MediaStarter(Protocol):
    """Starts Nova's async segmented job for long media (the aws backend with a staging bucket), reading the
    source's one open file (its length, and the upload to the staging bucket)."""

    async def wants(self, source: Opened) -> bool: ...

    async def start(self, index: str, source: Opened, user_meta: dict[str, Any], old_count: int) -> str: ...


@dataclass
class _Outcome:
    skipped: bool = False
    job_id: str | None = None
    commit: SourceCommit | None = None
    deferred: bool = False  # the call's time ran out inside this source: the background job does it


class _OutOfTime(NovaError):
    """The call's deadline passed while one of its sources was being embedded."""


@dataclass
class _Tally:
    """The call's report, folded in as sources finish, so nothing per source outlives its commit."""

    fed: int = 0  # sources handed to the workers (failed resolutions included)
    deferred: int = 0  # handed over but left to the background job when the call's time ran out
    indexed_sources: int = 0
    indexed_segments: int = 0
    removed_segments: int = 0
    skipped: int = 0
    jobs: dict[int, str] = field(default_factory=dict)
    failed: dict[int, Failure] = field(default_factory=dict)
    waiting: list[tuple[int, str, SourceCommit]] = field(default_factory=list)  # written, marker not yet

    def add(self, position: int, display: str, outcome: _Outcome) -> None:
        if outcome.skipped:
            self.skipped += 1
        elif outcome.deferred:
            self.deferred += 1
        elif outcome.job_id:
            self.jobs[position] = outcome.job_id
        elif outcome.commit is not None:
            self.waiting.append((position, display, outcome.commit))
        self.settle()

    def settle(self, *, everything: bool = False) -> None:
        """Count the commits that ended (marker written or failed); after the writer closed, all of them."""
        still = []
        for position, display, commit in self.waiting:
            if not (everything or commit.done.is_set()):
                still.append((position, display, commit))
            elif commit.error is not None or not commit.committed:
                reason = commit.error.text if commit.error else "its commit marker was not written"
                self.failed[position] = Failure(source=display, reason=reason)
            else:
                self.indexed_sources += 1
                self.indexed_segments += commit.count
                self.removed_segments += commit.stale
        self.waiting = still

    def report_into(self, result: IndexReport) -> None:
        result.indexed_sources += self.indexed_sources
        result.indexed_segments += self.indexed_segments
        result.removed_segments += self.removed_segments
        result.skipped_unchanged += self.skipped
        result.jobs += [self.jobs[p] for p in sorted(self.jobs)]
        result.failed += [self.failed[p] for p in sorted(self.failed)]


def unchanged(marker: dict[str, Any], content_hash: str, user_meta: dict[str, Any]) -> bool:
    """Same bytes (``content_hash`` of the opened source), fully indexed, and (when the call gives metadata) the
    same metadata: nothing to write. A call without metadata keeps what the source was indexed with, so
    re-running a plain index is free.
    """
    if marker.get("content_hash") != content_hash or marker.get("partial"):
        return False
    return not user_meta or user_metadata(marker) == user_meta


def internal_error(source: SourceRef) -> NovaError:
    return NovaError(
        f"{source.display} could not be indexed because of an internal error (details in the server log).",
        "The other sources are not affected; index this one again, or report it with the server log.",
    )


class Indexing:
    def __init__(
        self,
        policy: EmbedderPolicy,
        ingest: Ingest,
        catalog: Catalog,
        store: VectorStore,
        *,
        default_index: str,
        media: MediaStarter | None = None,
        video_mode: str = "combined",
    ) -> None:
        self.policy = policy
        self.ingest = ingest
        self.catalog = catalog
        self.store = store
        self.default_index = default_index
        self.media = media
        self.video_mode = video_mode

    async def index(
        self,
        items: Sequence[ContentInput],
        *,
        index: str | None = None,
        metadata: dict[str, Any] | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        recursive: bool = True,
        progress: Progress | None = None,
        roots: Sequence[Path] | None = None,
        deadline: float | None = None,
    ) -> IndexReport:
        """Index `items`; `roots` is this call's allowed set (configured plus the client's), else the configured.

        Past `deadline` (time.monotonic) no new source is started, and a source under way stops at its next
        batch (one large file must not hold the call past the client's patience either): the report counts
        those as `not_yet_indexed`, for the caller to hand to a background job. A stopped source keeps the
        state of a failed one (no new marker), so the job, or any later run, indexes it whole.
        """
        name = index or self.default_index
        check_index_name(name)
        user_meta = keys.check_user_metadata(metadata)
        if not items:
            raise InvalidInput("Give at least one path, s3:// URI or text to index.")
        report = progress or no_progress
        await report(0, None, "resolving sources")
        # Inline texts are resolved as the feeder reaches them (resolving is hashing them): a call with tens of
        # thousands of texts holds a wave of them at a time, not a resolved copy of every one.
        texts = [c for c in items if c.text is not None]
        others = [c for c in items if c.text is None]
        sources, failures = (
            await self.ingest.resolve_contents(
                others, include=include, exclude=exclude, recursive=recursive, roots=roots
            )
            if others
            else ([], [])
        )
        result = IndexReport(index=name, failed=[Failure(source=f.source, reason=f.reason) for f in failures])
        if not sources and not texts:
            return result
        target = await self.catalog.target(name)
        writer = Writer(self.store, target)
        total = len(sources) + len(texts)
        tally = _Tally()
        done = 0

        async def worker(receive: MemoryObjectReceiveStream[tuple[int, SourceRef, Any]]) -> None:
            nonlocal done
            async with receive:
                async for position, source, marker in receive:
                    await report(done, total, f"indexing {source.display}")
                    try:
                        if isinstance(marker, NovaError):
                            raise marker
                        async with self.ingest.opened(source) as opened:
                            outcome = await self._index_source(writer, opened, marker, user_meta, report, deadline)
                    except NovaError as exc:
                        tally.failed[position] = Failure(source=source.display, reason=exc.text)
                    except Exception:  # a bug on one file fails that file, never the call or its other sources
                        log.exception("indexing %s failed unexpectedly", source.display)
                        tally.failed[position] = Failure(source=source.display, reason=internal_error(source).text)
                    else:
                        tally.add(position, source.display, outcome)
                    done += 1

        send, receive = anyio.create_memory_object_stream[tuple[int, SourceRef, Any]](0)
        waves = self._waves(deque(sources), deque(texts), tally)  # each source dropped once handed over
        del sources, texts
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._feed, writer, waves, send, deadline, tally)
            for _ in range(self._lanes()):
                tg.start_soon(worker, receive.clone())
            receive.close()
        await writer.close()
        tally.settle(everything=True)
        tally.report_into(result)
        result.not_yet_indexed = max(0, total - tally.fed) + tally.deferred
        await report(total, total, "done")
        return result

    def _lanes(self) -> int:
        return max(2, SOURCE_LANES_PER_SLOT * int(getattr(self.policy.embedder, "concurrency", 1)))

    async def _waves(
        self, sources: deque[SourceRef], texts: deque[ContentInput], tally: _Tally
    ) -> AsyncIterator[list[tuple[int, SourceRef]]]:
        """Up to MAX_GET numbered sources at a time: the resolved ones, then the inline texts resolved lazily."""
        position = 0
        while sources:
            wave = [sources.popleft() for _ in range(min(MAX_GET, len(sources)))]
            yield list(enumerate(wave, position))
            position += len(wave)
        seen: set[str] = set()  # an inline text given twice is indexed once, as resolution does for files
        while texts:
            chunk = [texts.popleft() for _ in range(min(MAX_GET, len(texts)))]
            resolved, failures = await self.ingest.resolve_contents(chunk)
            for failure in failures:
                tally.failed[position] = Failure(source=failure.source, reason=failure.reason)
                tally.fed += 1
                position += 1
            fresh = [s for s in resolved if s.uri not in seen]
            seen.update(s.uri for s in fresh)
            tally.fed += len(resolved) - len(fresh)  # repeats count as done: they are the same source
            yield list(enumerate(fresh, position))
            position += len(fresh)

    async def _feed(
        self,
        writer: Writer,
        waves: AsyncIterator[list[tuple[int, SourceRef]]],
        send: MemoryObjectSendStream[tuple[int, SourceRef, Any]],
        deadline: float | None,
        tally: _Tally,
    ) -> None:
        """Hand sources to the workers with their commit markers, read MAX_GET at a time (one call per wave)."""
        async with send:
            async for numbered in waves:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                wave = [source for _, source in numbered]
                sids = [keys.source_id(s.uri) for s in wave]
                found: dict[str, dict[str, Any]] | NovaError = {}
                if writer.target.exists:
                    try:
                        found = await markers(self.store, writer.target.name, sids)
                    except NovaError as exc:  # each source of the wave reports it
                        found = exc
                for (position, source), sid in zip(numbered, sids, strict=True):
                    try:
                        writer.target.check_alive()
                    except NovaError as exc:
                        found = exc  # the index is gone: every source left reports it, none is embedded
                    marker = found if isinstance(found, NovaError) else found.get(sid)
                    await send.send((position, source, marker))
                    tally.fed += 1
                del wave, numbered

    async def _index_source(
        self,
        writer: Writer,
        source: Opened,
        marker: dict[str, Any] | None,
        user_meta: dict[str, Any],
        progress: Progress,
        deadline: float | None = None,
    ) -> _Outcome:
        sid = keys.source_id(source.uri)
        if marker and unchanged(marker, source.content_hash, user_meta):
            return _Outcome(skipped=True)
        if marker and not user_meta:  # a changed source keeps the metadata it was indexed with
            user_meta = user_metadata(marker)
        old_count = int(marker.get("segment_count", 0)) if marker else 0
        if self.media is not None and await self.media.wants(source):
            await writer.target.ensure()
            return _Outcome(job_id=await self.media.start(writer.target.name, source, user_meta, old_count))
        commit = writer.begin(sid, source.content_hash, old_count)
        ordinals = itertools.count()  # one key per vector: AUDIO_VIDEO_SEPARATE gives a segment two
        produced = 0
        try:
            async for batch in self.ingest.segment_batches(source, self.policy.embedder.info, EMBED_BATCH):
                writer.target.check_alive()
                if deadline is not None and time.monotonic() >= deadline:
                    raise _OutOfTime(f"{source.display}: the call's time budget ran out; a background job indexes it.")
                records = await self._embed_batch(writer, sid, source, batch, user_meta, progress, ordinals)
                await writer.add(commit, records)
                produced += len(records)
            if not produced:
                raise InvalidInput(f"{source.display} has no content to index.")
        except _OutOfTime as exc:
            await writer.fail(commit, exc)
            return _Outcome(deferred=True)
        except NovaError as exc:
            await writer.fail(commit, exc)
            raise
        except Exception:  # a bug on one file fails that file, never the call or its other sources
            log.exception("indexing %s failed unexpectedly", source.display)
            error = internal_error(source.source)
            await writer.fail(commit, error)
            raise error from None
        await writer.finish(commit)
        return _Outcome(commit=commit)

    def _with_video_mode(self, request: SingleEmbeddingRequest) -> SingleEmbeddingRequest:
        """A video request in the configured embedding mode (NOVA_MCP_VIDEO_EMBEDDING_MODE); others unchanged."""
        params = request.single_embedding_params
        if params.video is None or self.video_mode == "combined":
            return request
        video = params.video.model_copy(update={"embedding_mode": video_mode(self.video_mode)})
        return request.model_copy(update={"single_embedding_params": params.model_copy(update={"video": video})})

    async def _embed_batch(
        self,
        writer: Writer,
        sid: str,
        source: Opened,
        batch: Sequence[Segment],
        user_meta: dict[str, Any],
        progress: Progress,
        ordinals: Iterator[int],
    ) -> list[VectorRecord]:
        purpose, dimension = EmbeddingPurpose.GENERIC_INDEX, self.policy.request_dimension
        non_filterable = writer.target.non_filterable
        keep_text = keys.TEXT_KEY in non_filterable
        requests = [self._with_video_mode(seg.to_request(purpose, dimension)) for seg in batch]
        results = await self.policy.embed(requests, progress)
        records = []
        for seg, items in zip(batch, results, strict=True):
            for item in items:  # one vector per item; a separate-mode video segment has two, tagged
                ordinal = next(ordinals)
                extra = {"embedding_type": embedding_type_tag(item)} if len(items) > 1 else None
                records.append(
                    float32_record(
                        keys.vector_key(sid, ordinal),
                        item.embedding,
                        segment_metadata(
                            uri=source.uri,
                            modality=seg.modality.value,
                            format=source.format,
                            ordinal=ordinal,
                            locator=Locator.of(seg),
                            user_meta=user_meta,
                            snippet=seg.snippet or seg.text,
                            text=seg.text if keep_text else None,
                            extra=extra,
                        ),
                    )
                )
        # Refuse this source's bad vectors or metadata here, before a batch shared with other sources is sent:
        # the store would refuse the whole batch, failing every source in it.
        check_vectors(records, self.policy.dimension, "cosine")
        for record in records:
            check_metadata_json(record.metadata, non_filterable, key=record.key)
        return records
