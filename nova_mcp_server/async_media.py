"""Long media through Nova's async segmented task, as durable jobs.

A source longer than a sync call takes (30 s of audio or video) is uploaded to the staging bucket, a
`SEGMENTED_EMBEDDING` job is started with the job id as its idempotency token, and a row in the job table
follows it. `advance` moves a job forward: it starts it again if the start was never confirmed, polls
Bedrock, and ingests a completed job's output exactly once (a lease on the row plus deterministic keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from nova_mcp_server import keys
from nova_mcp_server.errors import NovaError
from nova_mcp_server.ingest.model import SourceRef
from nova_mcp_server.schema import (
    MAX_MEDIA_SEGMENTS,
    MAX_SYNC_MEDIA_SECONDS,
    AudioFormat,
    MediaSegmentation,
    MediaSource,
    Modality,
    ResultStatus,
    SegmentedAudioInput,
    SegmentedEmbeddingParams,
    SegmentedEmbeddingRequest,
    SegmentedVideoInput,
    VideoFormat,
)
from nova_mcp_server.stores.base import VectorRecord

if TYPE_CHECKING:
    from nova_mcp_server.core import Core

KIND = "nova-async"


def segment_length(duration_s: float, wanted: int) -> int:
    """The wanted segment length, raised so a long file stays under Nova's 1,434-segment cap."""
    needed = math.ceil(duration_s / MAX_MEDIA_SEGMENTS) if duration_s > 0 else 1
    return max(1, min(30, max(wanted, needed)))


@dataclass
class AsyncMedia:
    embedder: Any  # NovaEmbedder: start_segmented / get_async_job / read_async_output
    s3_client: Any
    staging_bucket: str
    staging_prefix: str
    segment_seconds: int
    duration_of: Any  # callable(path) -> seconds

    async def wants(self, source: SourceRef) -> bool:
        if source.modality not in (Modality.AUDIO, Modality.VIDEO) or source.local_path is None:
            return False
        duration = await anyio.to_thread.run_sync(lambda: self.duration_of(source.local_path))
        return duration > MAX_SYNC_MEDIA_SECONDS

    async def start(self, core: Core, index: str, source: SourceRef, user_meta: dict[str, Any], old_count: int) -> str:
        duration = await anyio.to_thread.run_sync(lambda: self.duration_of(source.local_path))
        payload = {
            "source_uri": source.uri,
            "source_display": source.display,
            "content_hash": source.content_hash,
            "format": source.format,
            "modality": source.modality.value,
            "user_meta": user_meta,
            "old_count": old_count,
            "duration_s": duration,
            "segment_seconds": segment_length(duration, self.segment_seconds),
        }
        job_id = core.jobs.create(kind=KIND, index=index, source=source.display, payload=payload, status="pending")
        await self._start(core, job_id)
        return job_id

    async def _start(self, core: Core, job_id: str) -> None:
        payload = core.jobs.payload(job_id)
        key = f"{self.staging_prefix}inputs/{payload['content_hash']}.{payload['format']}"
        local = payload["source_uri"].removeprefix("file://")
        if payload["source_uri"].startswith("s3://"):
            input_uri = payload["source_uri"]
        else:
            await anyio.to_thread.run_sync(lambda: self.s3_client.upload_file(local, self.staging_bucket, key))
            input_uri = f"s3://{self.staging_bucket}/{key}"
        source = MediaSource.from_s3(input_uri)
        seg = MediaSegmentation(duration_seconds=payload["segment_seconds"])
        if payload["modality"] == Modality.VIDEO.value:
            media: dict[str, Any] = {
                "video": SegmentedVideoInput(
                    format=VideoFormat(payload["format"]), source=source, segmentation_config=seg
                )
            }
        else:
            media = {
                "audio": SegmentedAudioInput(
                    format=AudioFormat(payload["format"]), source=source, segmentation_config=seg
                )
            }
        request = SegmentedEmbeddingRequest(
            segmented_embedding_params=SegmentedEmbeddingParams(embedding_dimension=core.dimension, **media)
        )
        output = f"s3://{self.staging_bucket}/{self.staging_prefix}outputs/"
        arn = await self.embedder.start_segmented(request, output, client_token=job_id)
        payload.update(arn=arn, output_uri=output)
        core.jobs.update(job_id, status="running", payload=payload)

    async def advance(self, core: Core, job_id: str) -> None:
        job = core.jobs.get(job_id)
        if job.status == "pending":
            await self._start(core, job_id)
            return
        payload = core.jobs.payload(job_id)
        if job.status == "running":
            state = await self.embedder.get_async_job(payload["arn"])
            if state.status == "InProgress":
                return
            if state.status == "Failed":
                core.jobs.update(job_id, status="failed", error=f"Bedrock job failed: {state.failure_message}")
                return
            payload["result_uri"] = state.output_s3_uri or payload["output_uri"]
            core.jobs.update(job_id, payload=payload)
        if not core.jobs.claim_ingest(job_id):
            return
        try:
            await self._ingest(core, job_id, payload)
        except NovaError as exc:
            core.jobs.update(job_id, status="running", lease_until=0, error=f"ingest will be retried: {exc.text}")
            raise

    async def _ingest(self, core: Core, job_id: str, payload: dict[str, Any]) -> None:
        from nova_mcp_server.embedders.nova import job_id_of  # boto3 stays unimported on the local backend

        output = await self.embedder.read_async_output(payload["result_uri"], job_id=job_id_of(payload["arn"]))
        sid = keys.source_id(payload["source_uri"])
        source = SourceRef(
            uri=payload["source_uri"],
            display=payload["source_display"],
            kind="s3" if payload["source_uri"].startswith("s3://") else "file",
            format=payload["format"],
            modality=Modality(payload["modality"]),
            size=0,
            content_hash=payload["content_hash"],
        )
        records: list[VectorRecord] = []
        failures: list[str] = []
        # Ordinals follow (type, segment index) so AUDIO_VIDEO_SEPARATE's two vectors per segment get two keys.
        ordered = sorted(output.records, key=lambda r: (r.embedding_type.value, r.index))
        for ordinal, rec in enumerate(ordered):
            if rec.status != ResultStatus.SUCCESS or not rec.embedding:
                failures.append(f"segment {rec.index}: {rec.failure_reason or 'failed'} {rec.message or ''}".strip())
                continue
            meta = dict(payload["user_meta"])
            meta.update(
                source=keys.canonical_source(source.uri),
                source_id=sid,
                modality=source.modality.value,
                format=source.format,
                segment=ordinal,
                embedding_type=rec.embedding_type.value,
            )
            if rec.start_seconds is not None:
                meta["start_s"] = round(float(rec.start_seconds), 3)
            if rec.end_seconds is not None:
                meta["end_s"] = round(float(rec.end_seconds), 3)
            meta[keys.SNIPPET_KEY] = _time_label(source.display, rec.start_seconds, rec.end_seconds)
            records.append(VectorRecord(key=keys.vector_key(sid, ordinal), data=rec.embedding, metadata=meta))
        for summary in output.result.embedding_results:  # PARTIAL_SUCCESS is already told by its failed segments
            if summary.status == ResultStatus.FAILURE:
                failures.append(f"{summary.embedding_type.value}: {summary.failure_reason or summary.status.value}")
        if records:
            index = core.jobs.get(job_id).index
            await core.commit_source(index, sid, source, records, payload["old_count"], partial=bool(failures))
        status = "completed" if records else "failed"
        error = None if not failures else f"{len(failures)} segment(s) failed; index_content again to retry them."
        core.jobs.update(
            job_id,
            status=status,
            vectors_written=len(records),
            progress_done=len(records),
            progress_total=len(records) + len(failures),
            segment_failures=failures[:50],
            error=error if records else (error or "the job produced no vectors"),
        )


def _time_label(display: str, start: float | None, end: float | None) -> str:
    if start is None:
        return display
    return f"{display} {_clock(start)}-{_clock(end or start)}"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return (
        f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else f"{whole // 60:02d}:{whole % 60:02d}"
    )
