"""Long media as durable jobs: start Nova's async task, then ingest its output once through the writer.

A job row is written only once Bedrock accepted the start, so a failed start leaves nothing behind for the
poller to bill a second time. Output records are numbered over the successful segments, so segment 0
(the commit marker) exists whenever anything succeeded, and failed segments leave the source `partial`.
"""

from __future__ import annotations

from typing import Any

from nova_mcp_server import keys
from nova_mcp_server.embedders.nova_async import NovaAsyncMedia, char_label, time_label
from nova_mcp_server.errors import IndexNotFound, InvalidInput, NovaError
from nova_mcp_server.ingest.loading import Opened
from nova_mcp_server.ingest.text import chunk_size_for
from nova_mcp_server.jobstore import LEASE_SECONDS, AsyncJobStore, new_job_id
from nova_mcp_server.models import Locator
from nova_mcp_server.schema import ResultStatus, nameable_by_s3_location
from nova_mcp_server.services.catalog import Catalog
from nova_mcp_server.services.embedding import EmbedderPolicy
from nova_mcp_server.services.metadata import segment_metadata
from nova_mcp_server.services.writer import Writer
from nova_mcp_server.stores.base import VectorRecord, VectorStore, float32_record

KIND = "nova-async"


class MediaJobs:
    def __init__(
        self,
        nova: NovaAsyncMedia,
        jobs: AsyncJobStore,
        catalog: Catalog,
        store: VectorStore,
        policy: EmbedderPolicy,
        *,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.nova = nova
        self.jobs = jobs
        self.catalog = catalog
        self.store = store
        self.policy = policy
        self.lease_seconds = lease_seconds

    def _text_chunk(self) -> int:
        return chunk_size_for(self.policy.embedder.info)

    async def wants(self, source: Opened) -> bool:
        """Whether the async task takes it; a local file's length is read from its one open file (never reopened
        by path)."""
        if source.fh is None:  # an S3 object resolved by HEAD: Nova reads it by reference
            if not nameable_by_s3_location(source.uri):
                return False  # a key s3Location cannot name: downloaded and embedded here (`s3_objects`)
            try:
                return self.nova.wants_by_reference(
                    source.modality, source.format, source.size, text_chunk=self._text_chunk()
                )
            except InvalidInput as exc:
                raise InvalidInput(f"{source.display}: {exc.text}") from None
        media = source.raw() if source.identity is not None else None  # inline bytes stay on the sync path
        return await self.nova.wants(source.modality, media, source.format, source.size, display=source.display)

    async def start(self, index: str, source: Opened, user_meta: dict[str, Any], old_count: int) -> str:
        """Start the Bedrock job; the row is written only once the start was accepted. A local file is uploaded
        from its open file through `Opened.reader`, so a rewrite since it was hashed fails the upload."""
        media = source.raw() if source.identity is not None else None
        duration = await self.nova.duration(source.modality, media) or 0.0
        payload = self.nova.job_payload(
            uri=source.uri,
            display=source.display,
            content_hash=source.content_hash,
            format=source.format,
            modality=source.modality,
            duration=duration,
            size=source.size,
            text_chunk=self._text_chunk(),
        )
        payload.update(user_meta=user_meta, old_count=old_count)
        job_id = new_job_id()
        body = source.reader() if source.source.kind == "file" else None  # S3 objects go by their URI
        started = await self.nova.start(payload, job_id=job_id, dimension=self.policy.dimension, body=body)
        return await self.jobs.create(
            kind=KIND, index=index, source=source.display, payload=started, status="running", job_id=job_id
        )

    async def advance(self, job_id: str) -> None:
        job = await self.jobs.get(job_id)
        payload = await self.jobs.payload(job_id)
        if job.status == "pending":  # a row from a release that wrote it before the start was confirmed
            try:
                started = await self.nova.start(payload, job_id=job_id, dimension=self.policy.dimension)
            except InvalidInput as exc:  # a local file is never uploaded by path: it must be indexed again
                await self.jobs.update(job_id, status="failed", lease_until=0, error=exc.text)
                return
            await self.jobs.update(job_id, status="running", payload=started)
            return
        if job.status == "running":
            state = await self.nova.poll(payload)
            if state.status == "InProgress":
                return
            if state.status == "Failed":
                await self.jobs.update(job_id, status="failed", error=f"Bedrock job failed: {state.failure_message}")
                return
            payload["result_uri"] = state.output_s3_uri or payload["output_uri"]
            await self.jobs.update(job_id, payload=payload)
        if not await self.jobs.claim(job_id, self.lease_seconds, status="ingesting"):
            return
        try:
            await self._ingest(job_id, job.index, payload)
        except IndexNotFound as exc:
            await self.jobs.update(
                job_id, status="failed", lease_until=0, error=f"the target index is gone: {exc.text}"
            )
        except NovaError as exc:
            await self.jobs.update(job_id, status="running", lease_until=0, error=f"ingest will be retried: {exc.text}")
            raise

    async def _ingest(self, job_id: str, index: str, payload: dict[str, Any]) -> None:
        output = await self.nova.read(payload)
        uri = payload["source_uri"]
        sid = keys.source_id(uri)
        records: list[VectorRecord] = []
        failures: list[str] = []
        # Ordinals follow (type, segment index) so AUDIO_VIDEO_SEPARATE's two vectors per segment get two keys.
        for rec in sorted(output.records, key=lambda r: (r.embedding_type.value, r.index)):
            if rec.status != ResultStatus.SUCCESS or not rec.embedding:
                failures.append(f"segment {rec.index}: {rec.failure_reason or 'failed'} {rec.message or ''}".strip())
                continue
            ordinal = len(records)
            text = payload["modality"] == "text"  # char ranges; the text is read back from S3 (reading)
            meta = segment_metadata(
                uri=uri,
                modality=payload["modality"],
                format=payload["format"],
                ordinal=ordinal,
                locator=Locator(char_start=rec.char_start, char_end=rec.char_end)
                if text
                else Locator(start_s=rec.start_seconds, end_s=rec.end_seconds),
                user_meta=payload["user_meta"],
                snippet=char_label(payload["source_display"], rec.char_start, rec.char_end)
                if text
                else time_label(payload["source_display"], rec.start_seconds, rec.end_seconds),
                extra={"embedding_type": rec.embedding_type.value},
            )
            records.append(float32_record(keys.vector_key(sid, ordinal), rec.embedding, meta))
        for summary in output.result.embedding_results:  # PARTIAL_SUCCESS is already told by its failed segments
            if summary.status == ResultStatus.FAILURE:
                failures.append(f"{summary.embedding_type.value}: {summary.failure_reason or summary.status.value}")
        if records:
            target = await self.catalog.target(index)
            if not target.exists:
                raise IndexNotFound(index)
            writer = Writer(self.store, target)
            commit = writer.begin(sid, payload["content_hash"], payload["old_count"], partial=bool(failures))
            await writer.commit(commit, records)
            if commit.error is not None:
                raise commit.error
        error = None if not failures else f"{len(failures)} segment(s) failed; index_content again to retry them."
        status = "failed" if not records else ("partial" if failures else "completed")
        await self.jobs.update(
            job_id,
            status=status,
            vectors_written=len(records),
            progress_done=len(records),
            progress_total=len(records) + len(failures),
            segment_failures=failures[:50],
            lease_until=0,
            error=error if records else (error or "the job produced no vectors"),
        )
