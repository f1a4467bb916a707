"""Pydantic models of the Nova Multimodal Embeddings request and response bodies.

These are the contract every embedder speaks: the Nova embedder sends them to Bedrock as they are, the
local embedder answers the same requests. Invalid combinations fail here, before any call is made, with a
message that lists what is allowed. Attribute names are snake_case; the wire (``to_body``) is camelCase.
"""

from __future__ import annotations

import base64
import binascii
import json
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from nova_mcp_server.errors import InvalidInput

MODEL_ID = "amazon.nova-2-multimodal-embeddings-v1:0"
SCHEMA_VERSION: Final = "nova-multimodal-embed-v1"
DIMENSIONS: tuple[int, ...] = (3072, 1024, 384, 256)
DEFAULT_DIMENSION: Final = 3072
MAX_INLINE_TEXT_CHARS = 8192
MAX_SYNC_BODY_BYTES = 25_000_000  # InvokeModel body limit, after base64
MAX_SYNC_MEDIA_SECONDS = 30.0
TEXT_SEGMENT_CHARS = (800, 50_000, 32_000)  # min, max, default of maxLengthChars
MEDIA_SEGMENT_SECONDS = (1, 30, 5)  # min, max, default of durationSeconds
MAX_TEXT_SEGMENTS = 1900
MAX_MEDIA_SEGMENTS = 1434

Dimension = Literal[3072, 1024, 384, 256]


class TaskType(StrEnum):
    SINGLE_EMBEDDING = "SINGLE_EMBEDDING"
    SEGMENTED_EMBEDDING = "SEGMENTED_EMBEDDING"


class EmbeddingPurpose(StrEnum):
    GENERIC_INDEX = "GENERIC_INDEX"
    GENERIC_RETRIEVAL = "GENERIC_RETRIEVAL"
    TEXT_RETRIEVAL = "TEXT_RETRIEVAL"
    IMAGE_RETRIEVAL = "IMAGE_RETRIEVAL"
    VIDEO_RETRIEVAL = "VIDEO_RETRIEVAL"
    DOCUMENT_RETRIEVAL = "DOCUMENT_RETRIEVAL"
    AUDIO_RETRIEVAL = "AUDIO_RETRIEVAL"
    CLASSIFICATION = "CLASSIFICATION"
    CLUSTERING = "CLUSTERING"


class TruncationMode(StrEnum):
    START = "START"
    END = "END"
    NONE = "NONE"


class DetailLevel(StrEnum):
    STANDARD_IMAGE = "STANDARD_IMAGE"
    DOCUMENT_IMAGE = "DOCUMENT_IMAGE"


class ImageFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    GIF = "gif"
    WEBP = "webp"


class AudioFormat(StrEnum):
    MP3 = "mp3"
    WAV = "wav"
    OGG = "ogg"


class VideoFormat(StrEnum):
    MP4 = "mp4"
    MOV = "mov"
    MKV = "mkv"
    WEBM = "webm"
    FLV = "flv"
    MPEG = "mpeg"
    MPG = "mpg"
    WMV = "wmv"
    THREE_GP = "3gp"


class VideoEmbeddingMode(StrEnum):
    AUDIO_VIDEO_COMBINED = "AUDIO_VIDEO_COMBINED"
    AUDIO_VIDEO_SEPARATE = "AUDIO_VIDEO_SEPARATE"


class EmbeddingType(StrEnum):
    TEXT = "TEXT"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    AUDIO = "AUDIO"
    AUDIO_VIDEO_COMBINED = "AUDIO_VIDEO_COMBINED"


class Modality(StrEnum):
    """What a vector was made from; stored in metadata and used to filter searches."""

    TEXT = "text"
    DOCUMENT = "document"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


S3Uri = Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", max_length=1024)]


class S3Location(_Wire):
    uri: S3Uri
    bucket_owner: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None


def nameable_by_s3_location(uri: str) -> bool:
    """Whether ``uri`` fits the documented ``s3Location.uri`` (S3 keys may hold characters it does not take,
    a newline for one: such an object is read here and sent inline instead)."""
    try:
        S3Location(uri=uri)
    except ValidationError:
        return False
    return True


class TextSource(_Wire):
    """Text may come from S3 only; inline text goes in ``value`` (``bytes`` is not valid for text)."""

    s3_location: S3Location

    @model_validator(mode="before")
    @classmethod
    def _no_bytes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "bytes" in data:
            raise ValueError("text takes no 'bytes' source; put inline text in 'value' or use an s3Location")
        return data


class MediaSource(_Wire):
    """Exactly one of inline base64 ``bytes`` or an ``s3Location``."""

    data: str | None = Field(default=None, alias="bytes")
    s3_location: S3Location | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MediaSource:
        if (self.data is None) == (self.s3_location is None):
            raise ValueError("a source needs exactly one of 'bytes' (base64) or 's3Location' ({'uri': 's3://...'})")
        if self.data is not None:
            if not self.data:
                raise ValueError("'bytes' is empty; give the base64 of a non-empty file")
            try:
                base64.b64decode(self.data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"'bytes' is not valid base64 ({exc})") from None
        return self

    @classmethod
    def from_bytes(cls, raw: bytes) -> MediaSource:
        return cls(data=base64.b64encode(raw).decode("ascii"))

    @classmethod
    def from_s3(cls, uri: str, bucket_owner: str | None = None) -> MediaSource:
        return cls(s3_location=S3Location(uri=uri, bucket_owner=bucket_owner))

    def raw_bytes(self) -> bytes:
        if self.data is None:
            raise InvalidInput("This source is in S3; its bytes are not inline.")
        return base64.b64decode(self.data)


class TextInput(_Wire):
    truncation_mode: TruncationMode = TruncationMode.END
    value: Annotated[str, Field(min_length=1, max_length=MAX_INLINE_TEXT_CHARS)] | None = None
    source: TextSource | None = None

    @model_validator(mode="after")
    def _value_or_source(self) -> TextInput:
        if (self.value is None) == (self.source is None):
            raise ValueError("text needs exactly one of 'value' (inline, <= 8192 chars) or 'source' (S3)")
        if self.value is not None and not self.value.strip():
            raise ValueError("text 'value' is blank; give some non-whitespace text")
        return self


class ImageInput(_Wire):
    format: ImageFormat
    source: MediaSource
    detail_level: DetailLevel = DetailLevel.STANDARD_IMAGE


class AudioInput(_Wire):
    format: AudioFormat
    source: MediaSource


class VideoInput(_Wire):
    format: VideoFormat
    source: MediaSource
    embedding_mode: VideoEmbeddingMode = VideoEmbeddingMode.AUDIO_VIDEO_COMBINED


class _OneModality(_Wire):
    text: Any = None
    image: Any = None
    audio: Any = None
    video: Any = None

    @model_validator(mode="after")
    def _exactly_one_modality(self) -> _OneModality:
        present = [name for name in ("text", "image", "audio", "video") if getattr(self, name) is not None]
        if len(present) != 1:
            raise ValueError(
                f"exactly one of text, image, audio, video must be given per request (got {present or 'none'})"
            )
        return self

    @property
    def modality(self) -> str:
        return next(name for name in ("text", "image", "audio", "video") if getattr(self, name) is not None)


class SingleEmbeddingParams(_OneModality):
    embedding_purpose: EmbeddingPurpose
    embedding_dimension: Dimension = DEFAULT_DIMENSION
    text: TextInput | None = None
    image: ImageInput | None = None
    audio: AudioInput | None = None
    video: VideoInput | None = None


class SingleEmbeddingRequest(_Wire):
    """Body of a synchronous ``InvokeModel`` call."""

    schema_version: Literal["nova-multimodal-embed-v1"] = SCHEMA_VERSION
    task_type: Literal[TaskType.SINGLE_EMBEDDING] = TaskType.SINGLE_EMBEDDING
    single_embedding_params: SingleEmbeddingParams

    @model_validator(mode="after")
    def _body_fits(self) -> SingleEmbeddingRequest:
        params = self.single_embedding_params
        media = params.image or params.audio or params.video
        if media is not None and media.source.data is not None and len(media.source.data) > MAX_SYNC_BODY_BYTES:
            raise ValueError(
                f"inline media is {len(media.source.data):,} bytes after base64; a sync call takes at most "
                f"{MAX_SYNC_BODY_BYTES:,}. Stage the file in S3 (s3Location) or split it"
            )
        return self

    @property
    def params(self) -> SingleEmbeddingParams:
        return self.single_embedding_params

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class TextSegmentation(_Wire):
    max_length_chars: Annotated[int, Field(ge=TEXT_SEGMENT_CHARS[0], le=TEXT_SEGMENT_CHARS[1])] = TEXT_SEGMENT_CHARS[2]


class MediaSegmentation(_Wire):
    duration_seconds: Annotated[int, Field(ge=MEDIA_SEGMENT_SECONDS[0], le=MEDIA_SEGMENT_SECONDS[1])] = (
        MEDIA_SEGMENT_SECONDS[2]
    )


class SegmentedTextInput(TextInput):
    segmentation_config: TextSegmentation = TextSegmentation()


class SegmentedAudioInput(AudioInput):
    segmentation_config: MediaSegmentation = MediaSegmentation()


class SegmentedVideoInput(VideoInput):
    segmentation_config: MediaSegmentation = MediaSegmentation()


class SegmentedEmbeddingParams(_OneModality):
    embedding_purpose: EmbeddingPurpose = EmbeddingPurpose.GENERIC_INDEX
    embedding_dimension: Dimension = DEFAULT_DIMENSION
    text: SegmentedTextInput | None = None
    image: ImageInput | None = None
    audio: SegmentedAudioInput | None = None
    video: SegmentedVideoInput | None = None

    @model_validator(mode="after")
    def _s3_only(self) -> SegmentedEmbeddingParams:
        media = self.image or self.audio or self.video
        if media is not None and media.source.s3_location is None:
            raise ValueError("async (segmented) requests accept only S3 inputs; upload the file and use s3Location")
        return self


class SegmentedEmbeddingRequest(_Wire):
    """``modelInput`` of an asynchronous ``StartAsyncInvoke`` call."""

    schema_version: Literal["nova-multimodal-embed-v1"] = SCHEMA_VERSION
    task_type: Literal[TaskType.SEGMENTED_EMBEDDING] = TaskType.SEGMENTED_EMBEDDING
    segmented_embedding_params: SegmentedEmbeddingParams

    @property
    def params(self) -> SegmentedEmbeddingParams:
        return self.segmented_embedding_params

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# ---- responses -------------------------------------------------------------------------------------------


class _Response(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class EmbeddingItem(_Response):
    embedding_type: EmbeddingType | None = None
    embedding: list[float]
    truncated_char_length: int | None = None


class EmbeddingResponse(_Response):
    """Body returned by ``InvokeModel``: one item, two for ``AUDIO_VIDEO_SEPARATE``."""

    embeddings: Annotated[list[EmbeddingItem], Field(min_length=1)]


class ResultStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    PARTIAL_SUCCESS = "PARTIAL_SUCCESS"


def lenient_status(value: Any) -> Any:
    """A result status outside the documented set counts as a failure of that entry (never a parse error)."""
    if value is None or isinstance(value, ResultStatus):
        return value
    text = str(value).upper()
    return text if text in ResultStatus.__members__ else ResultStatus.FAILURE


class EmbeddingResultFile(_Response):
    embedding_type: EmbeddingType
    status: ResultStatus

    _status = field_validator("status", mode="before")(classmethod(lambda cls, v: lenient_status(v)))
    failure_reason: str | None = None
    message: str | None = None
    output_file_uri: str | None = None


class SegmentedEmbeddingResult(_Response):
    """``segmented-embedding-result.json``: the index of an async job's output files."""

    source_file_uri: str | None = None
    embedding_dimension: int
    embedding_results: list[EmbeddingResultFile]


class SegmentRecord(BaseModel):
    """One line of an async job's JSONL output, normalised across the documented and blog field names."""

    embedding_type: EmbeddingType
    index: int
    embedding: list[float] | None
    status: ResultStatus = ResultStatus.SUCCESS
    failure_reason: str | None = None
    message: str | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    char_start: int | None = None
    char_end: int | None = None
    truncated_char_length: int | None = None

    _status = field_validator("status", mode="before")(classmethod(lambda cls, v: lenient_status(v)))

    @field_validator("embedding")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not value:
            raise ValueError("empty embedding")
        return value

    @classmethod
    def from_line(cls, line: dict[str, Any], embedding_type: EmbeddingType, position: int) -> SegmentRecord:
        """Parse a JSONL line; ``segmentMetadata.segmentStartSeconds`` (docs) or top-level ``startTime`` (blogs)."""
        meta = line.get("segmentMetadata") or {}

        def pick(*names: str) -> Any:
            for name in names:
                if name in meta and meta[name] is not None:
                    return meta[name]
                if name in line and line[name] is not None:
                    return line[name]
            return None

        index = pick("segmentIndex")
        return cls(
            embedding_type=embedding_type,
            index=int(index) if index is not None else position,
            embedding=line.get("embedding"),
            status=line.get("status") or ResultStatus.SUCCESS,  # unknown values: FAILURE (lenient_status)
            failure_reason=line.get("failureReason"),
            message=line.get("message"),
            start_seconds=pick("segmentStartSeconds", "startTime", "startSeconds"),
            end_seconds=pick("segmentEndSeconds", "endTime", "endSeconds"),
            char_start=pick("segmentStartCharPosition"),
            char_end=pick("segmentEndCharPosition"),
            truncated_char_length=pick("truncatedCharLength"),
        )


# ---- helpers ---------------------------------------------------------------------------------------------


def explain(exc: ValidationError, what: str = "request") -> InvalidInput:
    """Turn a pydantic error into an agent-facing message that says which field and what is allowed."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or what
        parts.append(f"{loc}: {err['msg']}")
    return InvalidInput(f"Invalid {what}: " + "; ".join(parts))


def parse_single(body: dict[str, Any] | str) -> SingleEmbeddingRequest:
    try:
        data = json.loads(body) if isinstance(body, str) else body
        return SingleEmbeddingRequest.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, "Nova embedding request") from None


def check_dimension(dimension: int) -> int:
    if dimension not in DIMENSIONS:
        raise InvalidInput(f"Dimension {dimension} is not supported by Nova; use one of 3072, 1024, 384, 256.")
    return dimension
