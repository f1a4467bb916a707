"""The Nova request/response models accept exactly the documented shapes and explain every rejection."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.schema import (
    DIMENSIONS,
    MAX_SYNC_BODY_BYTES,
    AudioFormat,
    EmbeddingPurpose,
    EmbeddingResponse,
    EmbeddingType,
    ImageFormat,
    MediaSource,
    ResultStatus,
    SegmentedEmbeddingRequest,
    SegmentedEmbeddingResult,
    SegmentRecord,
    VideoFormat,
    check_dimension,
    parse_single,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image").decode()
S3 = {"s3Location": {"uri": "s3://my-bucket/media/file"}}


def single(modality: str, spec: dict[str, Any], purpose: str = "GENERIC_INDEX", dim: int | None = 1024) -> dict:
    params: dict[str, Any] = {"embeddingPurpose": purpose, modality: spec}
    if dim is not None:
        params["embeddingDimension"] = dim
    return {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": params}


def segmented(modality: str, spec: dict[str, Any], dim: int = 1024) -> dict:
    return {
        "taskType": "SEGMENTED_EMBEDDING",
        "segmentedEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": dim, modality: spec},
    }


def rejected(body: dict | str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_single(body)
    return info.value.text


def rejected_segmented(body: dict) -> str:
    with pytest.raises(ValidationError) as info:
        SegmentedEmbeddingRequest.model_validate(body)
    return str(info.value)


# ---- valid sync bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", [p.value for p in EmbeddingPurpose])
@pytest.mark.parametrize("dim", DIMENSIONS)
def test_text_every_purpose_and_dimension(purpose: str, dim: int) -> None:
    body = single("text", {"truncationMode": "END", "value": "foundation models"}, purpose, dim)
    request = parse_single(body)
    assert request.params.embedding_dimension == dim
    assert request.params.embedding_purpose == purpose
    assert request.params.modality == "text"
    # The wire form is the documented camelCase body, with the default schemaVersion filled in.
    assert request.to_body() == {"schemaVersion": "nova-multimodal-embed-v1", **body}


def test_docs_text_query_example_round_trips_exactly() -> None:
    raw = (
        '{"taskType":"SINGLE_EMBEDDING","singleEmbeddingParams":{"embeddingPurpose":"GENERIC_RETRIEVAL",'
        '"embeddingDimension":1024,"text":{"truncationMode":"END","value":"foundation models"}}}'
    )
    body = parse_single(raw).to_body()
    body.pop("schemaVersion")
    assert body == json.loads(raw)


def test_dimension_defaults_to_3072() -> None:
    assert (
        parse_single(single("text", {"truncationMode": "END", "value": "x"}, dim=None)).params.embedding_dimension
        == 3072
    )


@pytest.mark.parametrize("fmt", [f.value for f in ImageFormat])
@pytest.mark.parametrize("source", [{"bytes": PNG}, S3])
def test_image_formats_and_sources(fmt: str, source: dict) -> None:
    request = parse_single(single("image", {"format": fmt, "source": source}))
    assert request.params.image.format == fmt
    assert request.to_body()["singleEmbeddingParams"]["image"]["detailLevel"] == "STANDARD_IMAGE"


def test_document_image_detail_level() -> None:
    body = single(
        "image", {"format": "png", "detailLevel": "DOCUMENT_IMAGE", "source": {"bytes": PNG}}, "GENERIC_INDEX"
    )
    assert parse_single(body).to_body()["singleEmbeddingParams"]["image"]["detailLevel"] == "DOCUMENT_IMAGE"


@pytest.mark.parametrize("fmt", [f.value for f in AudioFormat])
def test_audio_formats(fmt: str) -> None:
    assert parse_single(single("audio", {"format": fmt, "source": S3})).params.modality == "audio"


@pytest.mark.parametrize("fmt", [f.value for f in VideoFormat])
@pytest.mark.parametrize("mode", ["AUDIO_VIDEO_COMBINED", "AUDIO_VIDEO_SEPARATE"])
def test_video_formats_and_modes(fmt: str, mode: str) -> None:
    body = single("video", {"format": fmt, "embeddingMode": mode, "source": S3})
    assert parse_single(body).to_body()["singleEmbeddingParams"]["video"] == {
        "format": fmt,
        "embeddingMode": mode,
        "source": S3,
    }


def test_s3_location_with_bucket_owner() -> None:
    source = {"s3Location": {"uri": "s3://my-bucket/a.mp3", "bucketOwner": "123456789012"}}
    body = parse_single(single("audio", {"format": "mp3", "source": source})).to_body()
    assert body["singleEmbeddingParams"]["audio"]["source"] == source


def test_text_from_s3() -> None:
    body = single("text", {"truncationMode": "NONE", "source": {"s3Location": {"uri": "s3://b-1/doc.txt"}}})
    assert parse_single(body).params.text.source.s3_location.uri == "s3://b-1/doc.txt"


def test_media_source_helpers_round_trip() -> None:
    assert MediaSource.from_bytes(b"abc").raw_bytes() == b"abc"
    with pytest.raises(InvalidInput, match="in S3"):
        MediaSource.from_s3("s3://bucket-a/k").raw_bytes()


# ---- rejected sync bodies --------------------------------------------------------------------------------


def test_two_modalities_rejected() -> None:
    body = single("text", {"truncationMode": "END", "value": "hi"})
    body["singleEmbeddingParams"]["image"] = {"format": "png", "source": {"bytes": PNG}}
    assert "exactly one of text, image, audio, video" in rejected(body)


def test_no_modality_rejected() -> None:
    body = {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX"}}
    assert "exactly one of text, image, audio, video" in rejected(body)


@pytest.mark.parametrize("dim", [0, 128, 512, 768, 4096])
def test_bad_dimension_rejected(dim: int) -> None:
    message = rejected(single("text", {"truncationMode": "END", "value": "x"}, dim=dim))
    assert "embeddingDimension" in message or "embedding_dimension" in message
    assert "3072" in message and "256" in message


def test_text_limit_is_8192_chars() -> None:
    assert parse_single(single("text", {"truncationMode": "END", "value": "a" * 8192}))
    message = rejected(single("text", {"truncationMode": "END", "value": "a" * 8193}))
    assert "8192" in message


def test_bytes_not_allowed_for_text() -> None:
    message = rejected(single("text", {"truncationMode": "END", "source": {"bytes": PNG}}))
    assert "no 'bytes'" in message and "'value'" in message


def test_text_value_and_source_together_rejected() -> None:
    spec = {"truncationMode": "END", "value": "x", "source": {"s3Location": {"uri": "s3://b-1/k"}}}
    assert "exactly one of 'value'" in rejected(single("text", spec))


def test_blank_text_rejected() -> None:
    assert "blank" in rejected(single("text", {"truncationMode": "END", "value": "   \n"}))


def test_bad_base64_rejected() -> None:
    message = rejected(single("image", {"format": "png", "source": {"bytes": "not base64!!"}}))
    assert "base64" in message


def test_source_needs_exactly_one_of_bytes_or_s3() -> None:
    assert "exactly one of 'bytes'" in rejected(single("image", {"format": "png", "source": {"bytes": PNG, **S3}}))
    assert "exactly one of 'bytes'" in rejected(single("image", {"format": "png", "source": {}}))


def test_inline_body_over_25mb_rejected() -> None:
    raw = b"\0" * (MAX_SYNC_BODY_BYTES // 4 * 3 + 3)  # base64 of this is just over the limit
    data = base64.b64encode(raw).decode()
    assert len(data) > MAX_SYNC_BODY_BYTES
    message = rejected(
        single("video", {"format": "mp4", "embeddingMode": "AUDIO_VIDEO_COMBINED", "source": {"bytes": data}})
    )
    assert "25,000,000" in message and "S3" in message


def test_inline_body_just_under_limit_accepted() -> None:
    data = base64.b64encode(b"\0" * (MAX_SYNC_BODY_BYTES // 4 * 3 - 3)).decode()
    assert len(data) <= MAX_SYNC_BODY_BYTES
    assert parse_single(single("audio", {"format": "wav", "source": {"bytes": data}}))


@pytest.mark.parametrize(
    ("modality", "spec", "needle"),
    [
        ("image", {"format": "bmp", "source": {"bytes": PNG}}, "png"),
        ("video", {"format": "three_gp", "embeddingMode": "AUDIO_VIDEO_COMBINED", "source": S3}, "3gp"),
        ("audio", {"format": "flac", "source": S3}, "mp3"),
        ("video", {"format": "mp4", "embeddingMode": "SEPARATE", "source": S3}, "AUDIO_VIDEO_SEPARATE"),
        ("text", {"truncationMode": "MIDDLE", "value": "x"}, "START"),
        ("image", {"format": "png", "source": {"s3Location": {"uri": "https://example.com/a.png"}}}, "uri"),
    ],
)
def test_bad_enum_values_list_what_is_allowed(modality: str, spec: dict, needle: str) -> None:
    assert needle in rejected(single(modality, spec))


def test_bad_purpose_and_task_type_rejected() -> None:
    assert "GENERIC_RETRIEVAL" in rejected(single("text", {"truncationMode": "END", "value": "x"}, purpose="SEARCH"))
    body = single("text", {"truncationMode": "END", "value": "x"})
    body["taskType"] = "SEGMENTED_EMBEDDING"
    assert "SINGLE_EMBEDDING" in rejected(body)


def test_missing_purpose_rejected() -> None:
    body = single("text", {"truncationMode": "END", "value": "x"})
    del body["singleEmbeddingParams"]["embeddingPurpose"]
    assert "embeddingPurpose" in rejected(body)


def test_unknown_field_rejected() -> None:
    body = single("text", {"truncationMode": "END", "value": "x"})
    body["singleEmbeddingParams"]["temperature"] = 0.5
    assert "temperature" in rejected(body)


def test_message_is_prefixed_for_the_agent() -> None:
    assert rejected(single("text", {"truncationMode": "END", "value": "a" * 9000})).startswith(
        "Invalid Nova embedding request:"
    )


def test_check_dimension() -> None:
    assert check_dimension(384) == 384
    with pytest.raises(InvalidInput, match="3072, 1024, 384, 256"):
        check_dimension(500)


# ---- async (segmented) bodies ----------------------------------------------------------------------------


def test_segmented_defaults_match_docs() -> None:
    request = SegmentedEmbeddingRequest.model_validate(
        segmented("video", {"format": "mp4", "embeddingMode": "AUDIO_VIDEO_COMBINED", "source": S3})
    )
    video = request.to_body()["segmentedEmbeddingParams"]["video"]
    assert video["segmentationConfig"] == {"durationSeconds": 5}
    text = SegmentedEmbeddingRequest.model_validate(segmented("text", {"truncationMode": "END", "value": "x"}))
    assert text.to_body()["segmentedEmbeddingParams"]["text"]["segmentationConfig"] == {"maxLengthChars": 32000}


@pytest.mark.parametrize(("chars", "ok"), [(799, False), (800, True), (32000, True), (50000, True), (50001, False)])
def test_text_segmentation_range(chars: int, ok: bool) -> None:
    body = segmented("text", {"truncationMode": "END", "value": "x", "segmentationConfig": {"maxLengthChars": chars}})
    if ok:
        assert SegmentedEmbeddingRequest.model_validate(body).params.text.segmentation_config.max_length_chars == chars
    else:
        assert "maxLengthChars" in rejected_segmented(body) or "max_length_chars" in rejected_segmented(body)


@pytest.mark.parametrize(("seconds", "ok"), [(0, False), (1, True), (5, True), (30, True), (31, False)])
@pytest.mark.parametrize("modality", ["audio", "video"])
def test_media_segmentation_range(seconds: int, ok: bool, modality: str) -> None:
    spec: dict[str, Any] = {"format": "mp4" if modality == "video" else "mp3", "source": S3}
    spec["segmentationConfig"] = {"durationSeconds": seconds}
    body = segmented(modality, spec)
    if ok:
        assert SegmentedEmbeddingRequest.model_validate(body)
    else:
        message = rejected_segmented(body)
        assert "durationSeconds" in message or "duration_seconds" in message


@pytest.mark.parametrize("modality", ["image", "audio", "video"])
def test_segmented_rejects_inline_bytes(modality: str) -> None:
    fmt = {"image": "png", "audio": "mp3", "video": "mp4"}[modality]
    message = rejected_segmented(segmented(modality, {"format": fmt, "source": {"bytes": PNG}}))
    assert "only S3 inputs" in message


def test_segmented_rejects_two_modalities() -> None:
    body = segmented("audio", {"format": "mp3", "source": S3})
    body["segmentedEmbeddingParams"]["text"] = {"truncationMode": "END", "value": "x"}
    assert "exactly one of text, image, audio, video" in rejected_segmented(body)


# ---- responses -------------------------------------------------------------------------------------------


def test_embedding_response_parses_docs_shape() -> None:
    body = {"embeddings": [{"embeddingType": "TEXT", "embedding": [0.1, 0.2], "truncatedCharLength": 12645}]}
    item = EmbeddingResponse.model_validate(body).embeddings[0]
    assert item.embedding_type == EmbeddingType.TEXT
    assert item.truncated_char_length == 12645


def test_embedding_response_separate_has_two_items_and_empty_is_rejected() -> None:
    body = {
        "embeddings": [{"embeddingType": "VIDEO", "embedding": [1.0]}, {"embeddingType": "AUDIO", "embedding": [0.0]}]
    }
    assert [i.embedding_type for i in EmbeddingResponse.model_validate(body).embeddings] == ["VIDEO", "AUDIO"]
    with pytest.raises(ValidationError):
        EmbeddingResponse.model_validate({"embeddings": []})


def test_segmented_result_parses_docs_shape() -> None:
    result = SegmentedEmbeddingResult.model_validate(
        {
            "sourceFileUri": "s3://bucket/file.mp4",
            "embeddingDimension": 3072,
            "embeddingResults": [
                {
                    "embeddingType": "AUDIO_VIDEO_COMBINED",
                    "status": "PARTIAL_SUCCESS",
                    "failureReason": "RATE_LIMIT_EXCEEDED",
                    "message": "m",
                    "outputFileUri": "s3://bucket/prefix/abc/embedding-audio-video.jsonl",
                }
            ],
        }
    )
    assert result.embedding_results[0].status == ResultStatus.PARTIAL_SUCCESS


def test_segment_record_documented_field_names() -> None:
    line = {
        "embedding": [0.5, 0.5],
        "segmentMetadata": {"segmentIndex": 3, "segmentStartSeconds": 15.0, "segmentEndSeconds": 20.0},
        "status": "SUCCESS",
    }
    record = SegmentRecord.from_line(line, EmbeddingType.AUDIO_VIDEO_COMBINED, position=0)
    assert (record.index, record.start_seconds, record.end_seconds) == (3, 15.0, 20.0)
    assert record.status == ResultStatus.SUCCESS


def test_segment_record_blog_field_names_fall_back_to_position() -> None:
    line = {"embedding": [0.5, 0.5], "startTime": 10.0, "endTime": 15.0}
    record = SegmentRecord.from_line(line, EmbeddingType.AUDIO_VIDEO_COMBINED, position=2)
    assert (record.index, record.start_seconds, record.end_seconds) == (2, 10.0, 15.0)
    assert record.status == ResultStatus.SUCCESS


def test_segment_record_text_positions_and_failure() -> None:
    text = {
        "embedding": [1.0],
        "segmentMetadata": {
            "segmentIndex": 0,
            "truncatedCharLength": 0,
            "segmentStartCharPosition": 0,
            "segmentEndCharPosition": 794,
        },
    }
    record = SegmentRecord.from_line(text, EmbeddingType.TEXT, position=0)
    assert (record.char_start, record.char_end, record.truncated_char_length) == (0, 794, 0)
    failed = {
        "segmentMetadata": {"segmentIndex": 4},
        "status": "FAILURE",
        "failureReason": "RAI_VIOLATION_INPUT_TEXT_DEFLECTION",
        "message": "blocked",
    }
    record = SegmentRecord.from_line(failed, EmbeddingType.TEXT, position=9)
    assert record.index == 4 and record.embedding is None
    assert (record.status, record.failure_reason) == (ResultStatus.FAILURE, "RAI_VIOLATION_INPUT_TEXT_DEFLECTION")
