"""Which way each Nova input goes: by S3 reference, through the async task, or not at all; and query purposes.

Limits from the schema page ("Synchronous / Asynchronous input size limits"), formats from its enums. These
are the predicates and request builders the indexing and media services call, so the rules live once:

- `sync_s3_problem` / `s3_sync_request`: an S3 object sent by ``s3Location`` in a sync call (no download)
  when it fits (image 50 MB; audio/video 100 MB and at most 30 s; text 1 MB / 50,000 characters);
- `async_media_problem` / `segmented_media_request`: only Nova-native audio/video formats go async, within
  video 2 GB / 2 h and audio 1 GB / 2 h, checked before any upload; a problem is an InvalidInput with its
  reason, never a bare ValueError;
- `segmented_text_request`: large S3 text through ``SEGMENTED_EMBEDDING`` with ``maxLengthChars``;
- `video_mode`: ``NOVA_MCP_VIDEO_EMBEDDING_MODE`` (combined | separate) as the embeddingMode, and
  `embedding_type_tag` for the ``embedding_type`` metadata of each returned vector;
- `query_purpose`: GENERIC_RETRIEVAL unless the searched vectors are one modality (DOCUMENT_RETRIEVAL only
  for page images alone).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.schema import (
    MAX_SYNC_MEDIA_SECONDS,
    TEXT_SEGMENT_CHARS,
    AudioFormat,
    AudioInput,
    DetailLevel,
    EmbeddingItem,
    EmbeddingPurpose,
    EmbeddingType,
    ImageFormat,
    ImageInput,
    MediaSegmentation,
    MediaSource,
    S3Location,
    SegmentedAudioInput,
    SegmentedEmbeddingParams,
    SegmentedEmbeddingRequest,
    SegmentedTextInput,
    SegmentedVideoInput,
    SingleEmbeddingParams,
    SingleEmbeddingRequest,
    TextInput,
    TextSegmentation,
    TextSource,
    VideoEmbeddingMode,
    VideoFormat,
    VideoInput,
    explain,
)

# Limits from the schema page ("Synchronous/Asynchronous input size limits"); formats from its enums.

MB = 1_000_000
GB = 1_000_000_000
S3_SYNC_MAX_BYTES = {"text": 1 * MB, "image": 50 * MB, "audio": 100 * MB, "video": 100 * MB}
S3_SYNC_MAX_TEXT_CHARS = 50_000
ASYNC_MAX_BYTES = {"text": 634 * MB, "image": 50 * MB, "audio": 1 * GB, "video": 2 * GB}
ASYNC_MAX_SECONDS = 2 * 3600.0
NATIVE_FORMATS: dict[str, frozenset[str]] = {
    "image": frozenset(f.value for f in ImageFormat),
    "audio": frozenset(f.value for f in AudioFormat),
    "video": frozenset(f.value for f in VideoFormat),
}
VIDEO_MODES = {"combined": VideoEmbeddingMode.AUDIO_VIDEO_COMBINED, "separate": VideoEmbeddingMode.AUDIO_VIDEO_SEPARATE}


def video_mode(setting: str | VideoEmbeddingMode) -> VideoEmbeddingMode:
    """``NOVA_MCP_VIDEO_EMBEDDING_MODE`` (combined | separate) as the schema's embeddingMode."""
    if isinstance(setting, VideoEmbeddingMode):
        return setting
    try:
        return VIDEO_MODES[str(setting).lower()]
    except KeyError:
        raise InvalidInput(f"Video embedding mode {setting!r} is not one of combined, separate.") from None


def is_native(modality: str, fmt: str) -> bool:
    """Whether Nova takes this image/audio/video format as it is (others must be transcoded first)."""
    return fmt.lower() in NATIVE_FORMATS.get(str(modality).lower(), frozenset())


def async_media_problem(modality: str, fmt: str, size_bytes: int | None, duration_s: float | None) -> str | None:
    """Why this audio/video must not go to the async path, or None when it may; check before any upload.

    The async path uploads the file as it is, so only Nova-native formats go (an m4a, flac, avi ... is
    transcoded or windowed sync instead), and the documented limits hold: video 2 GB / 2 h, audio 1 GB / 2 h.
    """
    kind = str(modality).lower()
    if kind not in ("audio", "video"):
        return f"only audio and video go to the async path, not {kind}"
    if not is_native(kind, fmt):
        allowed = ", ".join(sorted(NATIVE_FORMATS[kind]))
        return f"{fmt} is not a format Nova takes for {kind} ({allowed}); transcode it or use sync windows"
    if size_bytes is not None and size_bytes > ASYNC_MAX_BYTES[kind]:
        return f"{size_bytes:,} bytes is over the async {kind} limit of {ASYNC_MAX_BYTES[kind]:,}"
    if duration_s is not None and duration_s > ASYNC_MAX_SECONDS:
        return f"{duration_s:,.0f} s is over the async limit of {ASYNC_MAX_SECONDS:,.0f} s (2 hours)"
    return None


def sync_s3_problem(
    modality: str, fmt: str, size_bytes: int | None, duration_s: float | None = None, chars: int | None = None
) -> str | None:
    """Why an S3 object cannot be sent by reference (``s3Location``) in a sync call, or None when it can."""
    kind = str(modality).lower()
    if kind not in S3_SYNC_MAX_BYTES:
        return f"{kind} cannot be sent by reference"
    if kind != "text" and not is_native(kind, fmt):
        return f"{fmt} is not a format Nova takes for {kind}"
    if size_bytes is None:
        return "the object's size is unknown"
    if size_bytes > S3_SYNC_MAX_BYTES[kind]:
        return f"{size_bytes:,} bytes is over the sync S3 {kind} limit of {S3_SYNC_MAX_BYTES[kind]:,}"
    if kind in ("audio", "video") and (duration_s is None or duration_s > MAX_SYNC_MEDIA_SECONDS):
        return "sync audio/video by reference must be known to last at most 30 s"
    if kind == "text" and chars is not None and chars > S3_SYNC_MAX_TEXT_CHARS:
        return f"{chars:,} characters is over the sync S3 text limit of {S3_SYNC_MAX_TEXT_CHARS:,}"
    return None


def s3_sync_request(
    modality: str,
    fmt: str,
    uri: str,
    *,
    purpose: EmbeddingPurpose,
    dimension: int,
    size_bytes: int | None,
    duration_s: float | None = None,
    chars: int | None = None,
    detail_level: DetailLevel | None = None,
    mode: str | VideoEmbeddingMode = VideoEmbeddingMode.AUDIO_VIDEO_COMBINED,
    bucket_owner: str | None = None,
) -> SingleEmbeddingRequest:
    """A sync request naming the S3 object (no download), within the documented sync S3 limits.

    Raises InvalidInput saying which limit when the object must be downloaded (PDF pages, transcoding) or
    go async instead; `sync_s3_problem` answers the same question without raising.
    """
    problem = sync_s3_problem(modality, fmt, size_bytes, duration_s, chars)
    if problem:
        raise InvalidInput(f"{uri} cannot be embedded by reference: {problem}.")
    kind = str(modality).lower()
    body: dict[str, Any] = {"embedding_purpose": purpose, "embedding_dimension": dimension}
    try:
        location = S3Location(uri=uri, bucket_owner=bucket_owner)
        if kind == "text":
            body["text"] = TextInput(source=TextSource(s3_location=location))
        elif kind == "image":
            body["image"] = ImageInput(
                format=fmt.lower(),
                source=MediaSource(s3_location=location),
                detail_level=detail_level or DetailLevel.STANDARD_IMAGE,
            )
        elif kind == "audio":
            body["audio"] = AudioInput(format=fmt.lower(), source=MediaSource(s3_location=location))
        else:
            body["video"] = VideoInput(
                format=fmt.lower(), source=MediaSource(s3_location=location), embedding_mode=video_mode(mode)
            )
        return SingleEmbeddingRequest(single_embedding_params=SingleEmbeddingParams(**body))
    except ValidationError as exc:
        raise explain(exc, "Nova embedding request") from None


def segmented_media_request(
    modality: str,
    fmt: str,
    uri: str,
    *,
    dimension: int,
    segment_seconds: int,
    size_bytes: int | None = None,
    duration_s: float | None = None,
    mode: str | VideoEmbeddingMode = VideoEmbeddingMode.AUDIO_VIDEO_COMBINED,
) -> SegmentedEmbeddingRequest:
    """The async request for staged audio/video; InvalidInput (never a bare ValueError) when it cannot go."""
    problem = async_media_problem(modality, fmt, size_bytes, duration_s)
    if problem:
        raise InvalidInput(f"{uri} cannot go through the async segmented path: {problem}.")
    try:
        source = MediaSource.from_s3(uri)
        seg = MediaSegmentation(duration_seconds=segment_seconds)
        if str(modality).lower() == "video":
            media: dict[str, Any] = {
                "video": SegmentedVideoInput(
                    format=fmt.lower(), source=source, segmentation_config=seg, embedding_mode=video_mode(mode)
                )
            }
        else:
            media = {"audio": SegmentedAudioInput(format=fmt.lower(), source=source, segmentation_config=seg)}
        return SegmentedEmbeddingRequest(
            segmented_embedding_params=SegmentedEmbeddingParams(embedding_dimension=dimension, **media)
        )
    except ValidationError as exc:
        raise explain(exc, "Nova segmented request") from None


def segmented_text_request(
    uri: str, *, dimension: int, max_length_chars: int = TEXT_SEGMENT_CHARS[2], size_bytes: int | None = None
) -> SegmentedEmbeddingRequest:
    """Large S3 text through the async task: Nova cuts it into segments of at most ``max_length_chars``
    (800-50,000) and reports each segment's char range (``segmentStartCharPosition``/``EndCharPosition``)."""
    if size_bytes is not None and size_bytes > ASYNC_MAX_BYTES["text"]:
        raise InvalidInput(f"{uri} is {size_bytes:,} bytes; async text takes at most {ASYNC_MAX_BYTES['text']:,}.")
    try:
        text = SegmentedTextInput(
            source=TextSource(s3_location=S3Location(uri=uri)),
            segmentation_config=TextSegmentation(max_length_chars=max_length_chars),
        )
        return SegmentedEmbeddingRequest(
            segmented_embedding_params=SegmentedEmbeddingParams(embedding_dimension=dimension, text=text)
        )
    except ValidationError as exc:
        raise explain(exc, "Nova segmented text request") from None


_SINGLE_PURPOSE = {
    "text": EmbeddingPurpose.TEXT_RETRIEVAL,
    "image": EmbeddingPurpose.IMAGE_RETRIEVAL,
    "audio": EmbeddingPurpose.AUDIO_RETRIEVAL,
    "video": EmbeddingPurpose.VIDEO_RETRIEVAL,
}


def query_purpose(modalities: Any = None, *, document_images_only: bool = False) -> EmbeddingPurpose:
    """The retrieval purpose for a query over vectors of ``modalities`` (None or several: mixed).

    The docs reserve DOCUMENT_RETRIEVAL for collections of DOCUMENT_IMAGE embeddings only; our "document"
    vectors are page images *and* page text, so a document search is GENERIC_RETRIEVAL unless the caller
    knows it searches page images alone.
    """
    kinds = {str(getattr(m, "value", m)).lower() for m in (modalities or [])}
    if len(kinds) != 1:
        return EmbeddingPurpose.GENERIC_RETRIEVAL
    (kind,) = kinds
    if kind == "document":
        return EmbeddingPurpose.DOCUMENT_RETRIEVAL if document_images_only else EmbeddingPurpose.GENERIC_RETRIEVAL
    return _SINGLE_PURPOSE.get(kind, EmbeddingPurpose.GENERIC_RETRIEVAL)


def embedding_type_tag(item: EmbeddingItem) -> str:
    """The ``embedding_type`` metadata value for one vector: ``audio``/``video`` for AUDIO_VIDEO_SEPARATE's
    two vectors, ``audio_video`` for a combined one, the modality otherwise."""
    kind = item.embedding_type or EmbeddingType.TEXT
    return "audio_video" if kind == EmbeddingType.AUDIO_VIDEO_COMBINED else kind.value.lower()
