"""Which way each Nova input goes (embedders/nova_inputs.py), and lenient parsing of async statuses."""

from __future__ import annotations

from typing import Any

import pytest

from nova_mcp_server.embedders import nova_inputs as ni
from nova_mcp_server.embedders.nova import NovaEmbedder, normalise_job_status
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.schema import (
    EmbeddingItem,
    EmbeddingPurpose,
    EmbeddingType,
    ResultStatus,
    SegmentedEmbeddingResult,
    SegmentRecord,
)

pytestmark = pytest.mark.anyio
GIB = 1 << 30


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("modality", "fmt", "size", "seconds", "needle"),
    [
        ("audio", "m4a", 10, 60, "not a format Nova takes"),
        ("audio", "flac", 10, 60, "not a format Nova takes"),
        ("video", "avi", 10, 60, "not a format Nova takes"),
        ("video", "ts", 10, 60, "not a format Nova takes"),
        ("video", "mp4", 2 * GIB + 1, 60, "over the async video limit"),
        ("audio", "mp3", GIB + 1, 60, "over the async audio limit"),
        ("video", "mp4", 10, 7201, "2 hours"),
        ("image", "png", 10, None, "only audio and video"),
    ],
)
def test_what_never_goes_async(modality: str, fmt: str, size: int, seconds: float | None, needle: str) -> None:
    problem = ni.async_media_problem(modality, fmt, size, seconds)
    assert problem is not None and needle in problem
    with pytest.raises(InvalidInput, match="cannot go through the async segmented path"):
        ni.segmented_media_request(
            modality,
            fmt,
            "s3://media-b/x." + fmt,
            dimension=1024,
            segment_seconds=5,
            size_bytes=size,
            duration_s=seconds,
        )


@pytest.mark.parametrize(("modality", "fmt"), [("audio", "mp3"), ("audio", "wav"), ("video", "mkv"), ("video", "3gp")])
def test_native_long_media_goes_async(modality: str, fmt: str) -> None:
    assert ni.async_media_problem(modality, fmt, 10 * 1 << 20, 3600) is None
    request = ni.segmented_media_request(
        modality, fmt, "s3://media-b/x", dimension=1024, segment_seconds=6, mode="separate", duration_s=3600
    )
    body = request.to_body()["segmentedEmbeddingParams"]
    assert body[modality]["format"] == fmt and body[modality]["segmentationConfig"] == {"durationSeconds": 6}
    if modality == "video":
        assert body["video"]["embeddingMode"] == "AUDIO_VIDEO_SEPARATE"


def test_s3_objects_by_reference_within_the_sync_limits() -> None:
    purpose = EmbeddingPurpose.GENERIC_INDEX
    image = ni.s3_sync_request(
        "image", "png", "s3://media-b/a.png", purpose=purpose, dimension=256, size_bytes=49_000_000
    )
    assert image.to_body()["singleEmbeddingParams"]["image"]["source"] == {"s3Location": {"uri": "s3://media-b/a.png"}}
    video = ni.s3_sync_request(
        "video", "mp4", "s3://media-b/v.mp4", purpose=purpose, dimension=256, size_bytes=99_000_000, duration_s=29.5
    )
    assert "bytes" not in str(video.to_body())
    text = ni.s3_sync_request("text", "text", "s3://media-b/t.txt", purpose=purpose, dimension=256, size_bytes=900_000)
    assert text.to_body()["singleEmbeddingParams"]["text"]["source"] == {"s3Location": {"uri": "s3://media-b/t.txt"}}
    for args, needle in [
        (("image", "png", 51_000_000, None, None), "sync S3 image limit"),
        (("video", "mp4", 101_000_000, 10.0, None), "sync S3 video limit"),
        (("audio", "mp3", 1_000, 31.0, None), "at most 30 s"),
        (("audio", "mp3", 1_000, None, None), "at most 30 s"),
        (("audio", "m4a", 1_000, 5.0, None), "not a format"),
        (("text", "text", 1_100_000, None, None), "sync S3 text limit"),
        (("text", "text", 900_000, None, 60_000), "50,000"),
        (("image", "png", None, None, None), "size is unknown"),
    ]:
        problem = ni.sync_s3_problem(*args)
        assert problem is not None and needle in problem, (args, problem)


def test_large_s3_text_goes_segmented_with_max_length_chars() -> None:
    body = ni.segmented_text_request("s3://media-b/book.txt", dimension=1024, max_length_chars=1000).to_body()
    text = body["segmentedEmbeddingParams"]["text"]
    assert text["source"] == {"s3Location": {"uri": "s3://media-b/book.txt"}}
    assert text["segmentationConfig"] == {"maxLengthChars": 1000}
    with pytest.raises(InvalidInput, match="maxLengthChars|max_length_chars"):
        ni.segmented_text_request("s3://media-b/book.txt", dimension=1024, max_length_chars=500)


def test_query_purpose_is_generic_unless_one_modality() -> None:
    assert ni.query_purpose(None) == EmbeddingPurpose.GENERIC_RETRIEVAL
    assert ni.query_purpose(["text", "image"]) == EmbeddingPurpose.GENERIC_RETRIEVAL
    assert ni.query_purpose(["document"]) == EmbeddingPurpose.GENERIC_RETRIEVAL  # page images + page text
    assert ni.query_purpose(["document"], document_images_only=True) == EmbeddingPurpose.DOCUMENT_RETRIEVAL
    assert ni.query_purpose(["video"]) == EmbeddingPurpose.VIDEO_RETRIEVAL
    assert ni.query_purpose(["text"]) == EmbeddingPurpose.TEXT_RETRIEVAL


def test_video_mode_setting() -> None:
    assert ni.video_mode("separate").value == "AUDIO_VIDEO_SEPARATE"
    assert ni.video_mode("combined").value == "AUDIO_VIDEO_COMBINED"
    with pytest.raises(InvalidInput, match="combined, separate"):
        ni.video_mode("both")


async def test_separate_mode_gives_two_tagged_vectors(nova_embedder: NovaEmbedder, moto_s3: Any) -> None:
    moto_s3.put_object(Bucket="nova-test-output", Key="clip.mp4", Body=b"\x00\x00\x00\x18ftypmp42 a short clip")
    request = ni.s3_sync_request(
        "video",
        "mp4",
        "s3://nova-test-output/clip.mp4",
        purpose=EmbeddingPurpose.GENERIC_INDEX,
        dimension=256,
        size_bytes=40,
        duration_s=12.0,
        mode="separate",
    )
    [items] = await nova_embedder.embed([request])
    assert sorted(ni.embedding_type_tag(i) for i in items) == ["audio", "video"]
    assert items[0].embedding != items[1].embedding
    combined = EmbeddingItem(embedding_type=EmbeddingType.AUDIO_VIDEO_COMBINED, embedding=[1.0])
    assert ni.embedding_type_tag(combined) == "audio_video"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("InProgress", "InProgress"),
        ("Completed", "Completed"),
        ("Failed", "Failed"),
        ("Expired", "Failed"),
        ("Scheduled", "InProgress"),
        (None, "InProgress"),
    ],
)
def test_unknown_job_statuses_parse_leniently(raw: Any, status: str) -> None:
    assert normalise_job_status(raw)[0] == status


def test_unknown_result_statuses_count_as_failures() -> None:
    result = SegmentedEmbeddingResult.model_validate(
        {"embeddingDimension": 4, "embeddingResults": [{"embeddingType": "VIDEO", "status": "FAILED"}]}
    )
    assert result.embedding_results[0].status == ResultStatus.FAILURE
    line = SegmentRecord.from_line({"embedding": [1.0], "status": "SKIPPED"}, EmbeddingType.AUDIO, 0)
    assert line.status == ResultStatus.FAILURE


def test_which_s3_objects_go_async_by_reference() -> None:
    from nova_mcp_server.embedders.nova_async import NovaAsyncMedia, text_segment_chars
    from nova_mcp_server.schema import Modality

    media = NovaAsyncMedia(None, None, "staging", "p/", 10, duration_of=lambda _: 0.0)
    wants = media.wants_by_reference
    assert wants(Modality.TEXT, "text", 2001, text_chunk=2000) and not wants(
        Modality.TEXT, "text", 2000, text_chunk=2000
    )
    assert not wants(Modality.TEXT, "html", 90_000, text_chunk=2000)  # its visible text is extracted here
    assert wants(Modality.VIDEO, "mp4", 5_000_000, text_chunk=2000)
    assert not wants(Modality.AUDIO, "flac", 5_000_000, text_chunk=2000)  # transcoded here: its bytes are needed
    with pytest.raises(InvalidInput, match="over the async video limit"):
        wants(Modality.VIDEO, "mp4", 3_000_000_000, text_chunk=2000)
    assert text_segment_chars(10_000, 2000) == 2000
    assert text_segment_chars(100_000_000, 2000) == 50_000  # capped: Nova takes 800-50,000
    assert text_segment_chars(10_000_000, 2000) == 5264  # raised so 10 MB stays under 1,900 segments
