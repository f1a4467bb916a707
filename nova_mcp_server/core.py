"""The one facade the MCP server and the CLI share: embed, index, search, jobs.

Data flows one way: call -> core -> ingest (resolve, segment) -> embedder -> store. Nothing above this
module touches boto3 or a store directly; nothing below it knows about MCP.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from nova_mcp_server import keys
from nova_mcp_server.async_media import AsyncMedia
from nova_mcp_server.embedders.base import Embedder
from nova_mcp_server.errors import DimensionMismatch, IndexNotFound, InvalidInput, NotFound, NovaError
from nova_mcp_server.ingest.model import Segment, SourceRef
from nova_mcp_server.ingest.pipeline import Ingest
from nova_mcp_server.jobs import JobStore
from nova_mcp_server.models import (
    ContentInput,
    DeleteReport,
    EmbeddingOut,
    EmbedResult,
    Failure,
    IndexReport,
    IndexSummary,
    JobInfo,
    SearchHit,
    SearchResult,
)
from nova_mcp_server.schema import EmbeddingPurpose, Modality, check_dimension
from nova_mcp_server.settings import Settings
from nova_mcp_server.stores.base import (
    MAX_DELETE,
    MAX_GET,
    MAX_PUT,
    EmbedderStamp,
    IndexInfo,
    IndexSpec,
    VectorRecord,
    VectorStore,
    check_index_name,
    check_metadata_json,
    check_top_k,
    check_vectors,
)

log = logging.getLogger(__name__)
Progress = Callable[[float, float | None, str], Awaitable[None]]
PREVIEW_VALUES = 8
VECTOR_CACHE_SIZE = 256
MAX_QUERY_CHARS = 8192  # Nova's inline text limit; longer queries were silently cut to their first chunk
EMBED_BATCH = 64  # requests per embed() call; bounds memory on huge sources
SOURCE_LANES_PER_SLOT = 2  # sources in flight per embedder concurrency slot (Core.index)
RETRIEVAL_PURPOSE = {
    None: EmbeddingPurpose.GENERIC_RETRIEVAL,
    Modality.TEXT: EmbeddingPurpose.TEXT_RETRIEVAL,
    Modality.IMAGE: EmbeddingPurpose.IMAGE_RETRIEVAL,
    Modality.DOCUMENT: EmbeddingPurpose.DOCUMENT_RETRIEVAL,
    Modality.VIDEO: EmbeddingPurpose.VIDEO_RETRIEVAL,
    Modality.AUDIO: EmbeddingPurpose.AUDIO_RETRIEVAL,
}


async def _no_progress(done: float, total: float | None, message: str) -> None:
    return None


@dataclass
class Core:
    settings: Settings
    embedder: Embedder
    store: VectorStore
    jobs: JobStore
    ingest: Ingest
    async_media: AsyncMedia | None = None  # Nova async segmented path (aws backend with a staging bucket)
    spawn: Callable[..., Any] | None = None  # starts background work (the server's task group); None: run inline
    job_listeners: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    _vectors: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)

    # ---- helpers ------------------------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        info = self.embedder.info
        if info.provider == "nova":
            return self.settings.dimension
        return info.default_dimension

    @property
    def request_dimension(self) -> int | None:
        """The dimension to put in requests: Nova's setting; None for a local model, which has only one."""
        return self.dimension if self.embedder.info.provider == "nova" else None

    @property
    def stamp(self) -> EmbedderStamp:
        return EmbedderStamp(
            provider=self.embedder.info.provider, model=self.embedder.info.model, dimension=self.dimension
        )

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def _index_info(self, name: str) -> IndexInfo:
        check_index_name(name)
        return await self._store(self.store.get_index, name)

    def _check_compatible(self, info: IndexInfo) -> None:
        stamp = info.embedder
        mine = self.stamp
        if info.dimension != mine.dimension or (stamp and (stamp.provider, stamp.model) != (mine.provider, mine.model)):
            built = f"{stamp.provider}/{stamp.model}" if stamp else "another embedder"
            raise DimensionMismatch(
                f"Index '{info.name}' was built with {built} at dimension {info.dimension}; this server embeds with "
                f"{mine.provider}/{mine.model} at dimension {mine.dimension}.",
                "Use another index name (a new one is created on first index_content), or run the server with the "
                "backend and dimension the index was built with.",
            )

    async def _ensure_index(self, name: str) -> IndexInfo:
        try:
            info = await self._index_info(name)
        except IndexNotFound:
            spec = IndexSpec(
                name=name,
                dimension=self.dimension,
                metric="cosine",
                non_filterable_keys=keys.NON_FILTERABLE_KEYS,
                embedder=self.stamp,
            )
            try:
                info = await self._store(self.store.create_index, spec)
            except NovaError as exc:  # a concurrent call may have created it meanwhile
                try:
                    info = await self._index_info(name)
                except IndexNotFound:
                    raise exc from None
        self._check_compatible(info)
        return info

    async def _embed(self, requests: Sequence[Any], progress: Progress | None) -> list[list[Any]]:
        """Embed, first telling the caller when a local model is about to load (seconds, once per process)."""
        if progress is not None and getattr(self.embedder, "loaded", True) is False:
            await progress(0, None, "loading the local embedding model (first use)")
        return await self.embedder.embed(requests)

    def _remember(self, vector: list[float]) -> str:
        digest = hashlib.sha256(np.asarray(vector, dtype=np.float32).tobytes()).hexdigest()[:16]
        handle = f"vec-{digest}"
        self._vectors[handle] = vector
        self._vectors.move_to_end(handle)
        while len(self._vectors) > VECTOR_CACHE_SIZE:
            self._vectors.popitem(last=False)
        return handle

    # ---- embed ---------------------------------------------------------------------------------------------

    async def embed(
        self,
        contents: Sequence[ContentInput],
        *,
        purpose: EmbeddingPurpose = EmbeddingPurpose.GENERIC_INDEX,
        dimension: int | None = None,
        include_vector: bool = False,
        progress: Progress | None = None,
    ) -> EmbedResult:
        if not contents:
            raise InvalidInput("Give at least one content to embed.")
        dim = self._pick_dimension(dimension)
        sources, failures = await self.ingest.resolve_contents(contents)
        if failures:
            raise InvalidInput("Could not read: " + "; ".join(f"{f.source}: {f.reason}" for f in failures))
        firsts: list[Segment] = []
        totals: list[int] = []
        for source in sources:
            segments = await self.ingest.segment(source, self.embedder.info)
            firsts.append(segments[0])
            totals.append(len(segments))
        items = await self._embed([seg.to_request(purpose, dim) for seg in firsts], progress)
        outs: list[EmbeddingOut] = []
        vectors: list[np.ndarray] = []
        for source, seg, total, result in zip(sources, firsts, totals, items, strict=True):
            vector = result[0].embedding
            arr = np.asarray(vector, dtype=np.float64)
            vectors.append(arr)
            outs.append(
                EmbeddingOut(
                    modality=seg.modality.value,
                    dimension=len(vector),
                    model=self.embedder.info.model,
                    source=source.display,
                    norm=round(float(np.linalg.norm(arr)), 6),
                    preview=[round(v, 6) for v in vector[:PREVIEW_VALUES]],
                    handle=self._remember(vector),
                    vector=vector if include_vector else None,
                    segments_total=total,
                )
            )
        similarity = None
        if len(vectors) > 1:
            mat = np.stack(vectors)
            mat = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
            similarity = [[round(float(x), 6) for x in row] for row in mat @ mat.T]
        return EmbedResult(embeddings=outs, similarity=similarity)

    def _pick_dimension(self, dimension: int | None) -> int | None:
        if self.embedder.info.provider == "nova":
            return self.settings.dimension if dimension is None else check_dimension(dimension)
        if dimension is not None and dimension not in self.embedder.info.dimensions:
            raise InvalidInput(
                f"Dimension {dimension} is not available on the {self.embedder.info.provider} backend; "
                f"its model produces {self.embedder.info.dimensions}."
            )
        return None

    # ---- index ---------------------------------------------------------------------------------------------

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
    ) -> IndexReport:
        name = index or self.settings.default_index
        check_index_name(name)
        user_meta = keys.check_user_metadata(metadata)
        if not items:
            raise InvalidInput("Give at least one path, s3:// URI or text to index.")
        report = progress or _no_progress
        await report(0, None, "resolving sources")
        sources, failures = await self.ingest.resolve_contents(
            items, include=include, exclude=exclude, recursive=recursive
        )
        result = IndexReport(index=name, failed=[Failure(source=f.source, reason=f.reason) for f in failures])
        if not sources:
            return result
        target = _LazyIndex(self, name)
        await target.check_existing()
        total = len(sources)
        committer = _Committer(self, target)
        outcomes: list[tuple[int, SourceRef, _Outcome]] = []
        failed: list[tuple[int, Failure]] = []
        done = 0

        async def worker(receive: MemoryObjectReceiveStream[tuple[int, SourceRef, Any]]) -> None:
            nonlocal done
            async with receive:
                async for position, source, marker in receive:
                    await report(done, total, f"indexing {source.display}")
                    try:
                        if isinstance(marker, NovaError):
                            raise marker
                        outcome = await self._index_source(target, source, marker, user_meta, report)
                        if outcome.commit is not None:
                            committer.submit(outcome.commit)
                            await committer.flush()
                    except NovaError as exc:
                        failed.append((position, Failure(source=source.display, reason=exc.text)))
                    else:
                        outcomes.append((position, source, outcome))
                    done += 1

        # Sources run side by side so that one-segment sources (inline texts, small files) keep the embedder at
        # its concurrency limit instead of waiting out each call's latency in turn.
        send, receive = anyio.create_memory_object_stream[tuple[int, SourceRef, Any]](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._feed_sources, target, sources, send)
            for _ in range(self._source_lanes()):
                tg.start_soon(worker, receive.clone())
            receive.close()
        await committer.flush(everything=True)

        for position, source, outcome in sorted(outcomes, key=lambda o: o[0]):
            commit = outcome.commit
            if outcome.skipped:
                result.skipped_unchanged += 1
            elif outcome.job_id:
                result.jobs.append(outcome.job_id)
            elif commit is not None and commit.error is not None:
                failed.append((position, Failure(source=source.display, reason=commit.error.text)))
            elif commit is not None:
                result.indexed_sources += 1
                result.indexed_segments += commit.written
                result.removed_segments += len(commit.stale)
        result.failed.extend(f for _, f in sorted(failed, key=lambda f: f[0]))
        await report(total, total, "done")
        return result

    def _source_lanes(self) -> int:
        """Sources in flight: enough that the embedder's limit stays full while some sources segment or wait."""
        return max(2, SOURCE_LANES_PER_SLOT * int(getattr(self.embedder, "concurrency", 1)))

    async def _feed_sources(
        self,
        target: _LazyIndex,
        sources: Sequence[SourceRef],
        send: MemoryObjectSendStream[tuple[int, SourceRef, Any]],
    ) -> None:
        """Hand sources to the workers with their commit markers, read MAX_GET at a time (one call per wave)."""
        async with send:
            for start in range(0, len(sources), MAX_GET):
                wave = sources[start : start + MAX_GET]
                sids = [keys.source_id(s.uri) for s in wave]
                markers: dict[str, dict[str, Any]] | NovaError = {}
                if target.exists:
                    try:
                        markers = await self._markers(target.name, sids)
                    except NovaError as exc:  # each source of the wave reports it
                        markers = exc
                for offset, (source, sid) in enumerate(zip(wave, sids, strict=True)):
                    marker = markers if isinstance(markers, NovaError) else markers.get(sid)
                    await send.send((start + offset, source, marker))

    async def _markers(self, index: str, sids: Sequence[str]) -> dict[str, dict[str, Any]]:
        heads = {keys.vector_key(sid, 0): sid for sid in sids}
        found = await self._store(self.store.get_vectors, index, list(heads), return_metadata=True)
        return {heads[r.key]: (r.metadata or {}) for r in found if r.key in heads}

    async def _index_source(
        self,
        target: _LazyIndex,
        source: SourceRef,
        marker: dict[str, Any] | None,
        user_meta: dict[str, Any],
        progress: Progress | None = None,
    ) -> _Outcome:
        sid = keys.source_id(source.uri)
        if marker and _unchanged(marker, source, user_meta):
            return _Outcome(skipped=True)
        if marker and not user_meta:  # a changed source keeps the metadata it was indexed with
            user_meta = {k: v for k, v in marker.items() if k not in keys.RESERVED_KEYS}
        old_count = int(marker.get("segment_count", 0)) if marker else 0
        if self.async_media is not None and await self.async_media.wants(source):
            await target.ensure()
            job_id = await self.async_media.start(self, target.name, source, user_meta, old_count)
            return _Outcome(job_id=job_id)
        segments = await self.ingest.segment(source, self.embedder.info)
        if not segments:
            raise InvalidInput(f"{source.display} has no content to index.")
        records = await self._embed_segments(sid, source, segments, user_meta, progress)
        commit = _Commit.plan(sid, source, records, old_count)
        # Refuse this source's bad vectors or metadata here, before the index is created or a batch shared with
        # other sources is sent: the store would refuse the whole batch, failing every source in it.
        check_vectors(records, self.dimension, "cosine")
        for record in [*commit.rest, *([commit.head] if commit.head else [])]:
            check_metadata_json(record.metadata, keys.NON_FILTERABLE_KEYS, key=record.key)
        if target.exists:
            await self._drop_leftovers(target.name, sid, max(len(segments), old_count))
        return _Outcome(commit=commit)

    async def _drop_leftovers(self, index: str, sid: str, beyond: int) -> int:
        """Delete a source's keys at ordinals >= `beyond`: what an interrupted write of a longer version left.

        No commit marker counts them (the crash came before the marker), so stale-key deletion, which goes by
        the marker's count, never would, and a later shorter version would leave them searchable for good.
        Keys below `beyond` are either the committed version or about to be overwritten, so this is safe first.
        """
        probe = [1.0] + [0.0] * (self.dimension - 1)
        where = {"$and": [{"source_id": sid}, {"segment": {"$gte": beyond}}]}
        dropped: set[str] = set()
        while hits := await self._store(
            self.store.query_vectors, index, probe, top_k=100, filter=where, return_metadata=False
        ):
            doomed = [h.key for h in hits if h.key not in dropped]
            if not doomed:
                break  # the store still shows deleted keys (eventual consistency): they are gone already
            await self._delete_keys(index, doomed)
            dropped.update(doomed)
        return len(dropped)

    async def _embed_segments(
        self,
        sid: str,
        source: SourceRef,
        segments: Sequence[Segment],
        user_meta: dict[str, Any],
        progress: Progress | None,
    ) -> list[VectorRecord]:
        """Embed in batches of EMBED_BATCH (bounded memory), two batches in flight so no batch tail idles."""
        batches = [segments[start : start + EMBED_BATCH] for start in range(0, len(segments), EMBED_BATCH)]
        out: list[list[VectorRecord]] = [[] for _ in batches]
        failure: list[NovaError] = []
        window = anyio.Semaphore(2)

        async def run(i: int, batch: Sequence[Segment]) -> None:
            try:
                async with window:
                    requests = [seg.to_request(EmbeddingPurpose.GENERIC_INDEX, self.request_dimension) for seg in batch]
                    results = await self._embed(requests, progress)
            except NovaError as exc:
                failure.append(exc)
                tg.cancel_scope.cancel()
                return
            out[i] = [
                VectorRecord(
                    key=keys.vector_key(sid, seg.ordinal),
                    data=items[0].embedding,
                    metadata=segment_metadata(source, seg, user_meta),
                )
                for seg, items in zip(batch, results, strict=True)
            ]

        async with anyio.create_task_group() as tg:
            for i, batch in enumerate(batches):
                tg.start_soon(run, i, batch)
        if failure:
            raise failure[0]
        return [record for batch in out for record in batch]

    async def _marker(self, index: str, sid: str) -> dict[str, Any] | None:
        found = await self._store(self.store.get_vectors, index, [keys.vector_key(sid, 0)], return_metadata=True)
        return (found[0].metadata or {}) if found else None

    async def commit_source(
        self,
        index: str,
        sid: str,
        source: SourceRef,
        records: list[VectorRecord],
        old_count: int,
        *,
        partial: bool = False,
    ) -> int:
        """Write a source's vectors so that a crash at any point is resumable without duplicates.

        Order: every segment but 0, then the stale keys past the new count, then segment 0 carrying the hash
        and count. Until segment 0 lands, the next run sees the old (or no) hash and indexes again.
        """
        plan = _Commit.plan(sid, source, records, old_count, partial=partial)
        count = max((int(r.key.rsplit("-", 1)[1]) + 1 for r in records), default=0)
        await self._drop_leftovers(index, sid, max(count, old_count))
        for start in range(0, len(plan.rest), MAX_PUT):
            await self._store(self.store.put_vectors, index, plan.rest[start : start + MAX_PUT])
        await self._delete_keys(index, plan.stale)
        if plan.head is not None:
            await self._store(self.store.put_vectors, index, [plan.head])
        return len(plan.stale)

    # ---- search --------------------------------------------------------------------------------------------

    async def search(
        self,
        *,
        query: str | None = None,
        image: ContentInput | None = None,
        vector_handle: str | None = None,
        index: str | None = None,
        top_k: int = 5,
        filter: dict[str, Any] | None = None,
        modality: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> SearchResult:
        name = index or self.settings.default_index
        check_top_k(top_k)
        given = [x is not None for x in (query, image, vector_handle)]
        if sum(given) != 1:
            raise InvalidInput("Give exactly one of query (text), image, or vector_handle.")
        modalities = _parse_modalities(modality)
        info = await self._index_info(name)
        self._check_compatible(info)
        purpose = RETRIEVAL_PURPOSE[modalities[0] if len(modalities) == 1 else None]
        if vector_handle is not None:
            vector = self._vectors.get(vector_handle)
            if vector is None:
                raise NotFound(
                    f"No vector with handle '{vector_handle}'.", "Embed the content again with embed_content."
                )
        else:
            if query is not None and not query.strip():
                raise InvalidInput("The query is empty; give some text to search for.")
            if query is not None and len(query) > MAX_QUERY_CHARS:
                raise InvalidInput(
                    f"The query is {len(query):,} characters; a query is embedded as one request of at most "
                    f"{MAX_QUERY_CHARS:,}.",
                    "Search with the sentence or passage that matters; a query is not chunked.",
                )
            content = ContentInput(text=query) if query is not None else image
            sources, failures = await self.ingest.resolve_contents([content])
            if failures:
                raise InvalidInput(f"Could not read the query: {failures[0].reason}")
            segment = (await self.ingest.segment(sources[0], self.embedder.info))[0]
            if image is not None and segment.embed_as != "image":
                raise InvalidInput("The image query is not an image; give a png, jpeg, gif or webp.")
            request = segment.to_request(purpose, self.request_dimension)
            vector = (await self._embed([request], progress))[0][0].embedding
        combined = _combine_filters(filter, modalities)
        hits = await self._store(
            self.store.query_vectors, name, vector, top_k=top_k, filter=combined, return_metadata=True
        )
        return SearchResult(
            index=name, purpose=purpose.value, hits=[_hit(name, rank, hit) for rank, hit in enumerate(hits, 1)]
        )

    # ---- indexes and items ---------------------------------------------------------------------------------

    async def list_indexes(self) -> list[IndexSummary]:
        infos = await self._store(self.store.list_indexes)
        return [_summary(info) for info in infos]

    async def describe_index(self, name: str) -> IndexSummary:
        return _summary(await self._index_info(name))

    async def create_index(self, name: str) -> IndexSummary:
        return _summary(await self._ensure_index(name))

    async def delete_index(self, name: str) -> IndexSummary:
        info = await self._index_info(name)
        await self._store(self.store.delete_index, name)
        return _summary(info)

    async def get_item(self, index: str, key: str) -> dict[str, Any]:
        await self._index_info(index)
        found = await self._store(self.store.get_vectors, index, [key], return_metadata=True)
        if not found:
            raise NotFound(f"No item '{key}' in index '{index}'.")
        return {"index": index, "key": key, "metadata": found[0].metadata or {}}

    async def list_items(self, index: str, *, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        await self._index_info(index)
        page = await self._store(
            self.store.list_vectors, index, max_results=limit, next_token=next_token, return_metadata=True
        )
        items = [
            {
                "key": v.key,
                "uri": item_uri(index, v.key),
                **{k: (v.metadata or {}).get(k) for k in ("source", "modality", "page", "start_s", "end_s")},
            }
            for v in page.vectors
        ]
        return {"index": index, "items": items, "next_token": page.next_token}

    async def delete_content(self, index: str, source: str) -> DeleteReport:
        """Delete every vector of one source (a path, an s3:// URI, or a `source` value from a hit)."""
        await self._index_info(index)
        sid = keys.source_id(self.ingest.canonical_uri(source))
        marker = await self._marker(index, sid)
        known = [keys.vector_key(sid, n) for n in range(int(marker.get("segment_count", 0)) if marker else 0)]
        await self._delete_keys(index, known)
        deleted = len(known)
        # Leftovers of an interrupted write are found through the filterable source_id.
        probe = [1.0] + [0.0] * (self.dimension - 1)
        while hits := await self._store(
            self.store.query_vectors, index, probe, top_k=100, filter={"source_id": sid}, return_metadata=False
        ):
            await self._delete_keys(index, [h.key for h in hits])
            deleted += len(hits)
        if not deleted:
            raise NotFound(
                f"Index '{index}' holds no vectors of {source}.", "Use the `source` value shown in a search hit."
            )
        return DeleteReport(index=index, deleted=deleted)

    async def _delete_keys(self, index: str, doomed: Sequence[str]) -> None:
        for start in range(0, len(doomed), MAX_DELETE):
            await self._store(self.store.delete_vectors, index, list(doomed[start : start + MAX_DELETE]))

    # ---- jobs ----------------------------------------------------------------------------------------------

    async def job_status(self, job_id: str | None = None, *, limit: int = 20) -> list[JobInfo]:
        if job_id is None:
            for active in self.jobs.active_ids():
                await self.advance_job(active)
            return self.jobs.recent(limit)
        self.jobs.get(job_id)
        await self.advance_job(job_id)
        return [self.jobs.get(job_id)]

    async def advance_job(self, job_id: str) -> JobInfo:
        before = self.jobs.get(job_id)
        if before.status in ("completed", "failed"):
            return before
        if before.kind == INDEX_JOB:
            if self.jobs.claim_ingest(job_id, INDEX_LEASE_SECONDS):
                if self.spawn is not None:
                    self.spawn(self.run_index_job, job_id)
                else:
                    await self.run_index_job(job_id)
        elif self.async_media is not None:
            await self.async_media.advance(self, job_id)
        after = self.jobs.get(job_id)
        if _job_moved(before, after):
            await self.notify_job(job_id)
        return after

    async def poll_jobs(self) -> None:
        for job_id in self.jobs.active_ids():
            try:
                await self.advance_job(job_id)
            except NovaError as exc:  # transient: keep the job and try again on the next tick
                self.jobs.update(job_id, error=exc.text)

    async def notify_job(self, job_id: str) -> None:
        for listener in list(self.job_listeners):
            await listener(job_id)

    async def start_index_job(self, items: Sequence[ContentInput], *, index: str | None = None, **options: Any) -> str:
        """Index in the background as a durable job; a restart resumes it (unchanged sources are skipped)."""
        name = index or self.settings.default_index
        check_index_name(name)
        keys.check_user_metadata(options.get("metadata"))
        payload = {"items": [c.model_dump(exclude_none=True) for c in items], "index": name, "options": options}
        shown = ", ".join(c.path or c.s3_uri or "inline text" for c in items[:3]) + (" ..." if len(items) > 3 else "")
        job_id = self.jobs.create(kind=INDEX_JOB, index=name, source=shown, payload=payload, status="running")
        await self.advance_job(job_id)
        return job_id

    async def run_index_job(self, job_id: str) -> None:
        payload = self.jobs.payload(job_id)
        items = [ContentInput(**c) for c in payload["items"]]
        last = 0.0

        async def progress(done: float, total: float | None, message: str) -> None:
            nonlocal last
            self.jobs.update(
                job_id, progress_done=int(done), progress_total=total, lease_until=time.time() + INDEX_LEASE_SECONDS
            )
            if time.monotonic() - last > 0.5 or done == total:
                last = time.monotonic()
                await self.notify_job(job_id)

        try:
            report = await self.index(items, index=payload["index"], progress=progress, **payload["options"])
        except NovaError as exc:
            self.jobs.update(job_id, status="failed", error=exc.text, lease_until=0)
        except Exception:  # a bug must fail the job, not the server that runs it
            log.exception("index job %s crashed", job_id)
            self.jobs.update(job_id, status="failed", error="internal error; see the server log", lease_until=0)
        else:
            payload["report"] = report.model_dump(mode="json")
            failed = f"{len(report.failed)} source(s) failed; see result.failed." if report.failed else None
            self.jobs.update(
                job_id,
                status="completed",
                payload=payload,
                vectors_written=report.indexed_segments,
                error=failed,
                lease_until=0,
            )
        await self.notify_job(job_id)

    def capabilities(self) -> dict[str, Any]:
        info = self.embedder.info
        return {
            "backend": self.settings.resolved_backend,
            "provider": info.provider,
            "model": info.model,
            "model_status": self.embedder.status(),
            "dimension": self.dimension,
            "dimensions": info.dimensions,
            "modalities": info.modalities,
            "index_modalities": [m.value for m in Modality],
            "max_text_chars_per_request": info.max_text_chars,
            "max_sync_media_seconds": info.max_sync_media_seconds,
            "async_jobs": self.async_media is not None,
            "default_index": self.settings.default_index,
            "read_only": self.settings.read_only,
            "limits": {
                "top_k": [1, 100],
                "put_batch": MAX_PUT,
                "get_batch": MAX_GET,
                "delete_batch": MAX_DELETE,
                "metadata_total_bytes": 40 * 1024,
                "metadata_filterable_bytes": 2 * 1024,
                "metadata_keys": 50,
                "vector_key_chars": 1024,
            },
            "filter_operators": ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$and", "$or"],
            "filterable_keys": sorted(keys.RESERVED_KEYS - {keys.SNIPPET_KEY}),
        }


INDEX_JOB = "index"
INDEX_LEASE_SECONDS = 60.0


def _unchanged(marker: dict[str, Any], source: SourceRef, user_meta: dict[str, Any]) -> bool:
    """Same bytes, fully indexed, and (when the call gives metadata) the same metadata: nothing to write.

    A call without metadata keeps what the source was indexed with, so re-running a plain index is free.
    """
    if marker.get("content_hash") != source.content_hash or marker.get("partial"):
        return False
    return not user_meta or {k: v for k, v in marker.items() if k not in keys.RESERVED_KEYS} == user_meta


def _job_moved(before: JobInfo, after: JobInfo) -> bool:
    watched = ("status", "progress_done", "progress_total", "vectors_written", "error")
    return any(getattr(before, name) != getattr(after, name) for name in watched)


class _LazyIndex:
    """The target of one index() call, created on first write so that a call that fails creates nothing."""

    def __init__(self, core: Core, name: str) -> None:
        self.core = core
        self.name = name
        self.exists = False

    async def check_existing(self) -> None:
        """Note whether the index exists and refuse an incompatible one before any embedding is paid for."""
        try:
            info = await self.core._index_info(self.name)
        except IndexNotFound:
            return
        self.core._check_compatible(info)
        self.exists = True

    async def ensure(self) -> None:
        if not self.exists:
            await self.core._ensure_index(self.name)
            self.exists = True


@dataclass
class _Outcome:
    skipped: bool = False
    job_id: str | None = None
    commit: _Commit | None = None


@dataclass(eq=False)
class _Commit:
    """One source's writes in commit order: `rest` (every segment but 0), `stale` keys to delete, then `head`."""

    sid: str
    rest: list[VectorRecord]
    stale: list[str]
    head: VectorRecord | None  # segment 0 carrying content_hash and segment_count: the commit marker
    written: int
    rest_left: int = 0
    error: NovaError | None = None

    @classmethod
    def plan(
        cls, sid: str, source: SourceRef, records: list[VectorRecord], old_count: int, *, partial: bool = False
    ) -> _Commit:
        ordinals = sorted(int(r.key.rsplit("-", 1)[1]) for r in records)
        count = (ordinals[-1] + 1) if ordinals else 0
        first = keys.vector_key(sid, 0)
        head = next((r for r in records if r.key == first), None)
        if head is not None:
            meta = dict(head.metadata or {})
            meta.update(content_hash=source.content_hash, segment_count=count)
            if partial:
                meta["partial"] = True
            head = head.model_copy(update={"metadata": meta})
        return cls(
            sid=sid,
            rest=[r for r in records if r.key != first],
            stale=[keys.vector_key(sid, n) for n in range(count, old_count)],
            head=head,
            written=len(records),
        )


class _Committer:
    """put_vectors in batches of up to MAX_PUT shared across sources, each source still in commit order.

    A source's head joins the queue only once all its other segments are written and its stale keys deleted,
    so a crash at any point leaves every source either committed or re-indexed by the next run (as in
    `Core.commit_source`). A failed write fails every source with a record in that batch.
    """

    def __init__(self, core: Core, target: _LazyIndex) -> None:
        self.core = core
        self.target = target
        self.queue: list[tuple[VectorRecord, _Commit]] = []
        self.ready: list[_Commit] = []  # rest written; stale deletes and head still to do
        self.lock = anyio.Lock()

    def submit(self, commit: _Commit) -> None:
        commit.rest_left = len(commit.rest)
        self.queue.extend((record, commit) for record in commit.rest)
        if not commit.rest:
            self.ready.append(commit)

    async def flush(self, *, everything: bool = False) -> None:
        """Write full batches (all pending writes when `everything`); other sources keep embedding meanwhile."""
        if self.lock.locked() and not everything:
            return  # the writer in progress loops until no full batch is left, this source's records included
        async with self.lock:
            while True:
                if self.ready:
                    await self._release()
                if len(self.queue) >= MAX_PUT or (everything and self.queue):
                    await self._put_batch()
                elif not self.ready:
                    return

    async def _release(self) -> None:
        ready, self.ready = [c for c in self.ready if c.error is None], []
        try:
            await self.target.ensure()  # created only once there is something to write
            await self.core._delete_keys(self.target.name, [key for c in ready for key in c.stale])
        except NovaError as exc:
            for c in ready:
                c.error = exc
            return
        self.queue.extend((c.head, c) for c in ready if c.head is not None)

    async def _put_batch(self) -> None:
        batch, self.queue = self.queue[:MAX_PUT], self.queue[MAX_PUT:]
        live = [(record, c) for record, c in batch if c.error is None]
        if not live:
            return
        try:
            await self.target.ensure()
            await self.core._store(self.core.store.put_vectors, self.target.name, [record for record, _ in live])
        except NovaError as exc:
            for _, c in live:
                c.error = c.error or exc
            return
        for record, c in live:
            if record is not c.head:
                c.rest_left -= 1
                if c.rest_left == 0:
                    self.ready.append(c)


def segment_metadata(source: SourceRef, seg: Segment, user_meta: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = dict(user_meta)
    meta.update(
        source=keys.canonical_source(source.uri),
        source_id=keys.source_id(source.uri),
        modality=seg.modality.value,
        format=source.format,
        segment=seg.ordinal,
        indexed_at=int(time.time()),
    )
    for name in ("page", "start_s", "end_s", "char_start", "char_end"):
        value = getattr(seg, name)
        if value is not None:
            meta[name] = round(value, 3) if isinstance(value, float) else value
    snippet = seg.snippet or (seg.text[: keys.MAX_SNIPPET_CHARS] if seg.text else None)
    if snippet:
        meta[keys.SNIPPET_KEY] = snippet[: keys.MAX_SNIPPET_CHARS]
    return meta


def item_uri(index: str, key: str) -> str:
    return f"nova://indexes/{index}/items/{key}"


def _summary(info: IndexInfo) -> IndexSummary:
    return IndexSummary(
        name=info.name,
        dimension=info.dimension,
        metric=info.metric,
        vector_count=info.vector_count,
        provider=info.embedder.provider if info.embedder else None,
        model=info.embedder.model if info.embedder else None,
        uri=f"nova://indexes/{info.name}",
    )


def _parse_modalities(modality: Sequence[str] | str | None) -> list[Modality]:
    if not modality:
        return []
    names = [modality] if isinstance(modality, str) else list(modality)
    out = []
    for name in names:
        try:
            out.append(Modality(str(name).lower()))
        except ValueError:
            raise InvalidInput(f"Unknown modality {name!r}; use any of {[m.value for m in Modality]}.") from None
    return out


def _combine_filters(user_filter: dict[str, Any] | None, modalities: list[Modality]) -> dict[str, Any] | None:
    if user_filter is not None and not isinstance(user_filter, dict):
        raise InvalidInput(
            'filter must be a JSON object in the S3 Vectors filter language, e.g. {"page": {"$gte": 2}}.'
        )
    parts = [user_filter] if user_filter else []
    if modalities:
        parts.append({"modality": {"$in": [m.value for m in modalities]}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _hit(index: str, rank: int, hit: Any) -> SearchHit:
    meta = dict(hit.metadata or {})
    distance = hit.distance if hit.distance is not None else 0.0
    user = {k: v for k, v in meta.items() if k not in keys.RESERVED_KEYS}
    return SearchHit(
        rank=rank,
        key=hit.key,
        score=round(1.0 - float(distance), 6),
        modality=meta.get("modality"),
        source=meta.get("source"),
        page=meta.get("page"),
        start_s=meta.get("start_s"),
        end_s=meta.get("end_s"),
        char_start=meta.get("char_start"),
        char_end=meta.get("char_end"),
        snippet=meta.get(keys.SNIPPET_KEY),
        metadata=user,
        uri=item_uri(index, hit.key),
    )
