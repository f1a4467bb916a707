"""Nova's async segmented task for long media: stage, start, poll, read. It returns results only.

A source longer than a sync call takes (30 s of audio or video) is uploaded to the staging bucket and a
`SEGMENTED_EMBEDDING` job is started with the job id as its idempotency token. What to do with the output
(metadata, the commit protocol, the job row) is the jobs service's business: nothing here imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio

from nova_mcp_server.embedders.nova_inputs import (
    async_media_problem,
    is_native,
    segmented_media_request,
    segmented_text_request,
)
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.schema import (
    MAX_MEDIA_SEGMENTS,
    MAX_SYNC_MEDIA_SECONDS,
    MAX_TEXT_SEGMENTS,
    TEXT_SEGMENT_CHARS,
    Modality,
)

if TYPE_CHECKING:
    from nova_mcp_server.embedders.nova import AsyncJobState, AsyncOutput


def segment_length(duration_s: float, wanted: int) -> int:
    """The wanted segment length, raised so a long file stays under Nova's 1,434-segment cap."""
    needed = math.ceil(duration_s / MAX_MEDIA_SEGMENTS) if duration_s > 0 else 1
    return max(1, min(30, max(wanted, needed)))


@dataclass
class NovaAsyncMedia:
    embedder: Any  # NovaEmbedder: start_segmented / get_async_job / read_async_output
    s3_client: Any
    staging_bucket: str
    staging_prefix: str
    segment_seconds: int
    duration_of: Callable[[BinaryIO], float]  # seconds of media read from its open file
    video_mode: str = "combined"  # NOVA_MCP_VIDEO_EMBEDDING_MODE: combined, or separate (two vectors a segment)

    async def duration(self, modality: Modality, media: BinaryIO | None) -> float | None:
        """Seconds of audio/video from its open file; None for anything the async path does not take."""
        if modality not in (Modality.AUDIO, Modality.VIDEO) or media is None:
            return None
        return await anyio.to_thread.run_sync(lambda: self.duration_of(media))

    async def wants(
        self, modality: Modality, media: BinaryIO | None, fmt: str, size: int | None, *, display: str = "the media"
    ) -> bool:
        """Whether this file goes through the async task: native audio/video longer than a sync call takes.

        Other formats are cut into sync windows instead; native media over the async limits (2 GB / 1 GB,
        2 h) fail here, before anything is uploaded, with the limit named.
        """
        duration = await self.duration(modality, media)
        if duration is None or duration <= MAX_SYNC_MEDIA_SECONDS or not is_native(modality.value, fmt):
            return False
        problem = async_media_problem(modality.value, fmt, size, duration)
        if problem:
            raise InvalidInput(f"{display} cannot be embedded: {problem}.")
        return True

    def wants_by_reference(self, modality: Modality, fmt: str, size: int, *, text_chunk: int) -> bool:
        """Whether an S3 object (never downloaded here) goes through the async task, naming it by reference.

        Text longer than one chunk goes to Nova's segmenter (``SEGMENTED_EMBEDDING`` text, ``maxLengthChars``);
        HTML needs its visible text extracted here, so it does not. Native audio/video of unknown length go
        too (their length is only known from their bytes), within the async size limits, checked before the
        start; other formats need transcoding, so their bytes are needed.
        """
        if modality is Modality.TEXT:
            return fmt != "html" and size > text_chunk
        if modality not in (Modality.AUDIO, Modality.VIDEO) or not is_native(modality.value, fmt):
            return False
        problem = async_media_problem(modality.value, fmt, size, None)
        if problem:
            raise InvalidInput(f"this object cannot be embedded: {problem}.")
        return True

    def job_payload(
        self,
        *,
        uri: str,
        display: str,
        content_hash: str,
        format: str,
        modality: Modality,
        duration: float,
        size: int | None = None,
        text_chunk: int | None = None,
    ) -> dict[str, Any]:
        """What a job row keeps to start, poll and read the Bedrock job again after a restart."""
        payload: dict[str, Any] = {
            "source_uri": uri,
            "source_display": display,
            "content_hash": content_hash,
            "format": format,
            "modality": modality.value,
            "duration_s": duration,
            "segment_seconds": segment_length(duration, self.segment_seconds),
        }
        if modality is Modality.TEXT:
            payload.update(size=size, max_length_chars=text_segment_chars(size or 0, text_chunk or 0))
        return payload

    async def start(
        self, payload: dict[str, Any], *, job_id: str, dimension: int, body: BinaryIO | None = None
    ) -> dict[str, Any]:
        """Stage the input and start the Bedrock job; returns the payload with its ARN and output URI.

        A local file is uploaded from ``body``, the source's open file (read front to back; it fails the upload
        if the bytes are not the hashed ones), never reopened by path. A row without one (left ``pending`` by
        an older release) is refused: its file must be indexed again.
        """
        key = f"{self.staging_prefix}inputs/{payload['content_hash']}.{payload['format']}"
        if payload["source_uri"].startswith("s3://"):
            input_uri = payload["source_uri"]
        elif body is None:
            raise InvalidInput(
                f"{payload.get('source_display') or payload['source_uri']} was queued by an older release and is "
                "not uploaded by path.",
                "Index the file again.",
            )
        else:
            await anyio.to_thread.run_sync(lambda: self.s3_client.upload_fileobj(body, self.staging_bucket, key))
            input_uri = f"s3://{self.staging_bucket}/{key}"
        if payload["modality"] == Modality.TEXT.value:
            request = segmented_text_request(
                input_uri, dimension=dimension, max_length_chars=payload["max_length_chars"], size_bytes=payload["size"]
            )
            output = f"s3://{self.staging_bucket}/{self.staging_prefix}outputs/"
            arn = await self.embedder.start_segmented(request, output, client_token=job_id)
            return {**payload, "arn": arn, "output_uri": output}
        request = segmented_media_request(
            payload["modality"],
            payload["format"],
            input_uri,
            dimension=dimension,
            segment_seconds=payload["segment_seconds"],
            duration_s=payload.get("duration_s"),
            mode=self.video_mode,
        )
        output = f"s3://{self.staging_bucket}/{self.staging_prefix}outputs/"
        arn = await self.embedder.start_segmented(request, output, client_token=job_id)
        return {**payload, "arn": arn, "output_uri": output}

    async def poll(self, payload: dict[str, Any]) -> AsyncJobState:
        return await self.embedder.get_async_job(payload["arn"])

    async def read(self, payload: dict[str, Any]) -> AsyncOutput:
        from nova_mcp_server.embedders.nova import job_id_of  # boto3 stays unimported on the local backend

        uri = payload.get("result_uri") or payload["output_uri"]
        return await self.embedder.read_async_output(uri, job_id=job_id_of(payload["arn"]))


def text_segment_chars(size_bytes: int, wanted: int) -> int:
    """``maxLengthChars`` for a text of ``size_bytes``: the wanted chunk length (within 800-50,000), raised so
    the text stays under Nova's 1,900-segment cap (bytes bound characters, so this is safe before reading it)."""
    low, high, _ = TEXT_SEGMENT_CHARS
    return max(low, min(high, max(wanted, math.ceil(size_bytes / MAX_TEXT_SEGMENTS))))


def char_label(display: str, start: int | None, end: int | None) -> str:
    if start is None:
        return display
    return f"{display} characters {start:,}-{end if end is not None else start:,}"


def time_label(display: str, start: float | None, end: float | None) -> str:
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
