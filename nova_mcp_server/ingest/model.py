"""What ingestion passes around: a resolved source and the segments cut from it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from nova_mcp_server.ingest.opening import FileIdentity
from nova_mcp_server.schema import (
    AudioInput,
    DetailLevel,
    Dimension,
    EmbeddingPurpose,
    ImageInput,
    MediaSource,
    Modality,
    S3Location,
    SingleEmbeddingParams,
    SingleEmbeddingRequest,
    TextInput,
    TextSource,
    VideoInput,
)

EmbedAs = Literal["text", "image", "audio", "video"]


class SourceRef(BaseModel):
    """One resolved source. ``uri`` is its identity (vector keys derive from it); ``content_hash`` its version.

    A local file is only looked at when resolved (no descriptor is kept per resolved file): its ``format``,
    ``modality`` and ``content_hash`` stay None until the worker opens it once (`loading.open_source`), which
    returns them with the open file. Inline content and S3 objects (by HeadObject) carry them from resolution.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    uri: str  # file:///abs/path, s3://bucket/key, inline:<sha256-prefix>
    display: str  # what the agent sees: the path as given, the s3 URI, or "inline text"
    kind: Literal["file", "s3", "inline"]
    # detected by content: text, markdown, html, code, pdf, png, jpeg, gif, webp, mp3, wav, ogg, mp4, ...
    format: str | None = None
    modality: Modality | None = None
    size: int  # bytes when resolved (a local file's lstat); the open file's fstat is what the limits check
    # sha256 hex of the bytes; S3: the object's version (s3-sha256:<checksum> or s3-etag:<etag>)
    content_hash: str | None = None
    local_path: Path | None = None  # readable file on disk (files, downloaded S3 objects)
    data: bytes | None = None  # inline content when there is no file
    root: Path | None = None  # the allowed root (or download folder) local_path is opened beneath
    identity: FileIdentity | None = None  # inode, size and mtime when resolved (informative: the open decides)
    etag: str | None = None  # S3: the ETag HeadObject reported; a download is made only of that version (IfMatch)


class SourceFailure(BaseModel):
    """An item (or a file found under it) that could not be resolved, and why."""

    model_config = ConfigDict(frozen=True)

    source: str
    reason: str


class Segment(BaseModel):
    """One vector's worth of a source, with where it sits in the source (page, seconds, characters)."""

    ordinal: int  # 0..N-1 within the source; the vector key ends with it
    modality: Modality  # what the agent searched for: a video key frame is still modality "video"
    embed_as: EmbedAs  # what is sent to the embedder
    text: str | None = None
    media: bytes | None = None
    media_format: str | None = None  # png/jpeg/gif/webp, mp3/wav/ogg, mp4/...
    detail_level: DetailLevel | None = None  # DOCUMENT_IMAGE for rendered PDF pages
    page: int | None = None  # 1-based
    start_s: float | None = None
    end_s: float | None = None
    char_start: int | None = None
    char_end: int | None = None
    snippet: str | None = None  # short human-readable text shown with a hit
    s3_uri: str | None = None  # an S3 object Nova reads itself (s3Location): no bytes here

    def to_request(self, purpose: EmbeddingPurpose, dimension: Dimension | None) -> SingleEmbeddingRequest:
        """A Nova request for this segment; `dimension` None leaves it to the embedder (the local model has one)."""
        params: dict[str, object] = {"embedding_purpose": purpose}
        if dimension is not None:
            params["embedding_dimension"] = dimension
        if self.embed_as == "text":
            by_ref = TextSource(s3_location=S3Location(uri=self.s3_uri)) if self.s3_uri else None
            params["text"] = TextInput(source=by_ref) if by_ref else TextInput(value=self.text)
        else:
            source = (
                MediaSource(s3_location=S3Location(uri=self.s3_uri))
                if self.s3_uri
                else MediaSource.from_bytes(self.media or b"")
            )
            if self.embed_as == "image":
                params["image"] = ImageInput(
                    format=self.media_format,
                    source=source,
                    detail_level=self.detail_level or DetailLevel.STANDARD_IMAGE,
                )
            elif self.embed_as == "audio":
                params["audio"] = AudioInput(format=self.media_format, source=source)
            else:
                params["video"] = VideoInput(format=self.media_format, source=source)
        return SingleEmbeddingRequest(single_embedding_params=SingleEmbeddingParams(**params))
