"""Request checks for the fake Bedrock runtime, written from the Nova Multimodal Embeddings schema page.

Deliberately independent of `nova_mcp_server.schema`: a mistake there must show up here as a
ValidationException, as it would from Bedrock. Each rule cites the docs text it comes from
(https://docs.aws.amazon.com/nova/latest/userguide/embeddings-schema.html, "Complete synchronous schema" and
"Complete asynchronous schema"). `problems_single` / `problems_segmented` return what Bedrock would refuse
(empty when the body is valid).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

SCHEMA_VERSION = "nova-multimodal-embed-v1"  # "Allowed values: nova-multimodal-embed-v1"
PURPOSES = {  # "embeddingPurpose (Required)"
    "GENERIC_INDEX",
    "GENERIC_RETRIEVAL",
    "TEXT_RETRIEVAL",
    "IMAGE_RETRIEVAL",
    "VIDEO_RETRIEVAL",
    "DOCUMENT_RETRIEVAL",
    "AUDIO_RETRIEVAL",
    "CLASSIFICATION",
    "CLUSTERING",
}
DIMENSIONS = {256, 384, 1024, 3072}  # "Allowed values: 256 | 384 | 1024 | 3072. Default: 3072"
TRUNCATION = {"START", "END", "NONE"}  # "truncationMode (Required)"
DETAIL = {"STANDARD_IMAGE", "DOCUMENT_IMAGE"}
IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
AUDIO_FORMATS = {"mp3", "wav", "ogg"}
VIDEO_FORMATS = {"mp4", "mov", "mkv", "webm", "flv", "mpeg", "mpg", "wmv", "3gp"}
VIDEO_MODES = {"AUDIO_VIDEO_COMBINED", "AUDIO_VIDEO_SEPARATE"}  # "embeddingMode (Required)"
MAX_TEXT_VALUE = 8192  # "value ... Max length: 8192 characters"
MAX_CHARS = (800, 50_000)  # "maxLengthChars ... Min: 800 Max: 50000"
DURATION = (1, 30)  # "durationSeconds ... Min: 1 Max: 30"
MODALITIES = ("text", "image", "audio", "video")  # "Exactly one of text, image, video, audio must be present"
_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")


def _source(source: Any, where: str, *, text: bool, s3_only: bool) -> list[str]:
    if not isinstance(source, dict):
        return [f"{where}.source must be an object"]
    kinds = [k for k in ("bytes", "s3Location") if k in source]
    extra = set(source) - {"bytes", "s3Location"}
    out = [f"{where}.source has unknown field {name}" for name in sorted(extra)]
    if len(kinds) != 1:
        return out + [f"{where}.source needs exactly one of bytes or s3Location"]
    if kinds[0] == "bytes":
        if text:  # "the bytes option of the SourceObject is not applicable for text inputs"
            return out + [f"{where}.source.bytes is not valid for text"]
        if s3_only:  # "Asynchronous operations can only accept S3 inputs"
            return out + [f"{where}: asynchronous operations only accept S3 inputs"]
        data = source["bytes"]
        try:
            if not isinstance(data, str) or not data or not base64.b64decode(data, validate=True):
                return out + [f"{where}.source.bytes must be non-empty base64"]
        except (binascii.Error, ValueError):
            return out + [f"{where}.source.bytes is not base64"]
        return out
    location = source["s3Location"]
    if not isinstance(location, dict) or not isinstance(location.get("uri"), str) or not _URI.match(location["uri"]):
        return out + [f"{where}.source.s3Location.uri must be s3://bucket/key"]
    owner = location.get("bucketOwner")
    if owner is not None and not re.fullmatch(r"\d{12}", str(owner)):
        out.append(f"{where}.source.s3Location.bucketOwner must be a 12-digit account id")
    return out + [
        f"{where}.source.s3Location has unknown field {k}" for k in sorted(set(location) - {"uri", "bucketOwner"})
    ]


def _allowed(value: Any, allowed: set[Any], where: str, required: bool = True) -> list[str]:
    if value is None:
        return [f"{where} is required"] if required else []
    return [] if value in allowed else [f"{where} {value!r} is not one of {sorted(map(str, allowed))}"]


def _modality(params: dict[str, Any], kind: str, *, segmented: bool) -> list[str]:
    spec = params[kind]
    where = kind
    if not isinstance(spec, dict):
        return [f"{where} must be an object"]
    out: list[str] = []
    fields = {
        "text": {"truncationMode", "value", "source"},
        "image": {"format", "source", "detailLevel"},
        "audio": {"format", "source"},
        "video": {"format", "source", "embeddingMode"},
    }[kind] | ({"segmentationConfig"} if segmented and kind != "image" else set())
    out += [f"{where} has unknown field {name}" for name in sorted(set(spec) - fields)]
    if kind == "text":
        out += _allowed(spec.get("truncationMode"), TRUNCATION, "text.truncationMode")
        has_value, has_source = "value" in spec, "source" in spec
        if has_value == has_source:
            out.append("text needs exactly one of value or source")
        if has_value and (not isinstance(spec["value"], str) or not spec["value"]):
            out.append("text.value must be a non-empty string")
        elif has_value and len(spec["value"]) > MAX_TEXT_VALUE:
            out.append(f"text.value is longer than {MAX_TEXT_VALUE} characters")
        if has_source:
            out += _source(spec["source"], "text", text=True, s3_only=False)
    else:
        formats = {"image": IMAGE_FORMATS, "audio": AUDIO_FORMATS, "video": VIDEO_FORMATS}[kind]
        out += _allowed(spec.get("format"), formats, f"{kind}.format")
        if "source" not in spec:
            out.append(f"{kind}.source is required")
        else:
            out += _source(spec["source"], kind, text=False, s3_only=segmented)
        if kind == "image":
            out += _allowed(spec.get("detailLevel"), DETAIL, "image.detailLevel", required=False)
        if kind == "video":
            out += _allowed(spec.get("embeddingMode"), VIDEO_MODES, "video.embeddingMode")
    if segmented and kind != "image":
        config = spec.get("segmentationConfig")
        if not isinstance(config, dict):
            out.append(f"{kind}.segmentationConfig is required")  # "segmentationConfig (Required)"
        elif kind == "text":
            chars = config.get("maxLengthChars", 32_000)
            if not isinstance(chars, int) or not MAX_CHARS[0] <= chars <= MAX_CHARS[1]:
                out.append("text.segmentationConfig.maxLengthChars must be 800-50000")
        else:
            seconds = config.get("durationSeconds", 5)
            if not isinstance(seconds, int) or not DURATION[0] <= seconds <= DURATION[1]:
                out.append(f"{kind}.segmentationConfig.durationSeconds must be 1-30")
    return out


def _params(body: Any, task: str, key: str) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(body, dict):
        return None, ["the body must be a JSON object"]
    out = [f"unknown field {name}" for name in sorted(set(body) - {"schemaVersion", "taskType", key})]
    if body.get("schemaVersion", SCHEMA_VERSION) != SCHEMA_VERSION:
        out.append(f"schemaVersion must be {SCHEMA_VERSION}")
    if body.get("taskType") != task:  # "Must be SINGLE_EMBEDDING for synchronous calls" (SEGMENTED for async)
        out.append(f"taskType must be {task}")
    params = body.get(key)
    if not isinstance(params, dict):
        return None, out + [f"{key} is required"]
    return params, out


def _common(params: dict[str, Any], *, segmented: bool) -> list[str]:
    out = _allowed(params.get("embeddingPurpose"), PURPOSES, "embeddingPurpose")
    out += _allowed(params.get("embeddingDimension", 3072), DIMENSIONS, "embeddingDimension")
    present = [m for m in MODALITIES if m in params]
    known = {"embeddingPurpose", "embeddingDimension", *MODALITIES}
    out += [f"unknown field {name}" for name in sorted(set(params) - known)]
    if len(present) != 1:
        return out + [f"exactly one of text, image, audio, video must be present (got {present or 'none'})"]
    return out + _modality(params, present[0], segmented=segmented)


def problems_single(body: Any) -> list[str]:
    params, out = _params(body, "SINGLE_EMBEDDING", "singleEmbeddingParams")
    return out if params is None else out + _common(params, segmented=False)


def problems_segmented(body: Any) -> list[str]:
    params, out = _params(body, "SEGMENTED_EMBEDDING", "segmentedEmbeddingParams")
    return out if params is None else out + _common(params, segmented=True)


def modality_of(params: dict[str, Any]) -> str:
    return next(m for m in MODALITIES if m in params)
