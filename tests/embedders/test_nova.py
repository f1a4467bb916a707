"""NovaEmbedder against botocore's Stubber (exact wire params), the fake Bedrock runtime, and moto S3."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from fakes.nova import TEST_BUCKET as OUTPUT_BUCKET
from fakes.nova import FakeBedrockRuntime, split_text, text_vector
from support import REPO

from nova_mcp_server.aws import AwsClients, is_retryable, scrub, to_nova_error
from nova_mcp_server.embedders.base import Embedder
from nova_mcp_server.embedders.nova import NovaEmbedder, job_id_of
from nova_mcp_server.errors import AccessDenied, BackendUnavailable, InvalidInput, ModelUnavailable, NotFound
from nova_mcp_server.schema import (
    MODEL_ID,
    AudioInput,
    EmbeddingType,
    ImageInput,
    MediaSegmentation,
    MediaSource,
    ResultStatus,
    SegmentedAudioInput,
    SegmentedEmbeddingParams,
    SegmentedEmbeddingRequest,
    SegmentedTextInput,
    SegmentedVideoInput,
    SingleEmbeddingParams,
    SingleEmbeddingRequest,
    TextInput,
    TextSegmentation,
    VideoInput,
)

pytestmark = pytest.mark.anyio

ARN = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghij12"
PNG = b"\x89PNG\r\n\x1a\n not really a png"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def text_request(value: str, dim: int = 256, purpose: str = "GENERIC_INDEX") -> SingleEmbeddingRequest:
    return SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=purpose, embedding_dimension=dim, text=TextInput(value=value)
        )
    )


def streaming(payload: dict[str, Any]) -> StreamingBody:
    data = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def unit(dim: int, hot: int = 0) -> list[float]:
    return [1.0 if i == hot else 0.0 for i in range(dim)]


MEDIA_INPUTS = ["clip.mp4", "a.mp4", "x.mp4", "y.mp4", "s.mp4", "p.png", "talk.mp3"] + [f"{n}.mp4" for n in "abc"]


@pytest.fixture(autouse=True)
def staged_inputs(request: pytest.FixtureRequest) -> None:
    """The S3 inputs the async tests name exist (the fake, like Bedrock, refuses a missing input)."""
    if "nova_embedder" not in request.fixturenames and "moto_s3" not in request.fixturenames:
        return
    s3 = request.getfixturevalue("moto_s3")
    s3.create_bucket(Bucket="media-b")
    for name in MEDIA_INPUTS:
        s3.put_object(Bucket="media-b", Key=name, Body=b"stand-in media " + name.encode())
    s3.put_object(Bucket=OUTPUT_BUCKET, Key="in/movie.mp4", Body=b"stand-in movie")


# ---- exact request shapes on a real boto3 client ---------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber, list[dict[str, Any]]]]:
    """A real bedrock-runtime client under Stubber, plus the params our code passed to each call."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.*", lambda params, **_: seen.append(dict(params))
    )
    with Stubber(client) as stubber:
        yield client, stubber, seen
        stubber.assert_no_pending_responses()


async def test_invoke_model_wire_shape(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, seen = stubbed
    expected = {"modelId": MODEL_ID, "body": ANY, "contentType": "application/json", "accept": "application/json"}
    stubber.add_response(
        "invoke_model",
        {
            "body": streaming({"embeddings": [{"embeddingType": "TEXT", "embedding": unit(256)}]}),
            "contentType": "application/json",
        },
        expected,
    )
    embedder = NovaEmbedder(bedrock=client, s3=object())
    [[item]] = await embedder.embed([text_request("foundation models", purpose="GENERIC_RETRIEVAL")])
    assert item.embedding_type == EmbeddingType.TEXT and item.embedding == unit(256)
    assert json.loads(seen[0]["body"]) == {
        "schemaVersion": "nova-multimodal-embed-v1",
        "taskType": "SINGLE_EMBEDDING",
        "singleEmbeddingParams": {
            "embeddingPurpose": "GENERIC_RETRIEVAL",
            "embeddingDimension": 256,
            "text": {"truncationMode": "END", "value": "foundation models"},
        },
    }


async def test_image_and_separate_video_wire_shapes(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, seen = stubbed
    stubber.add_response(
        "invoke_model",
        {
            "body": streaming({"embeddings": [{"embeddingType": "IMAGE", "embedding": unit(384)}]}),
            "contentType": "application/json",
        },
    )
    two = [{"embeddingType": "VIDEO", "embedding": unit(384, 1)}, {"embeddingType": "AUDIO", "embedding": unit(384, 2)}]
    stubber.add_response("invoke_model", {"body": streaming({"embeddings": two}), "contentType": "application/json"})
    embedder = NovaEmbedder(bedrock=client, s3=object(), concurrency=1)  # one at a time: stub order = call order
    image = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose="GENERIC_INDEX",
            embedding_dimension=384,
            image=ImageInput(format="png", detail_level="DOCUMENT_IMAGE", source=MediaSource.from_bytes(PNG)),
        )
    )
    video = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose="GENERIC_INDEX",
            embedding_dimension=384,
            video=VideoInput(
                format="mp4", embedding_mode="AUDIO_VIDEO_SEPARATE", source=MediaSource.from_s3("s3://media-b/v.mp4")
            ),
        )
    )
    out = await embedder.embed([image, video])
    assert [len(x) for x in out] == [1, 2]
    assert [i.embedding_type for i in out[1]] == [EmbeddingType.VIDEO, EmbeddingType.AUDIO]
    sent = [json.loads(p["body"])["singleEmbeddingParams"] for p in seen]
    assert sent[0]["image"] == {
        "format": "png",
        "detailLevel": "DOCUMENT_IMAGE",
        "source": {"bytes": MediaSource.from_bytes(PNG).data},
    }
    assert sent[1]["video"] == {
        "format": "mp4",
        "embeddingMode": "AUDIO_VIDEO_SEPARATE",
        "source": {"s3Location": {"uri": "s3://media-b/v.mp4"}},
    }


async def test_start_async_invoke_wire_shape(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, seen = stubbed
    request = SegmentedEmbeddingRequest(
        segmented_embedding_params=SegmentedEmbeddingParams(
            embedding_dimension=1024,
            video=SegmentedVideoInput(
                format="mp4",
                source=MediaSource.from_s3("s3://media-b/long.mp4"),
                segmentation_config=MediaSegmentation(duration_seconds=10),
            ),
        )
    )
    model_input = {
        "schemaVersion": "nova-multimodal-embed-v1",
        "taskType": "SEGMENTED_EMBEDDING",
        "segmentedEmbeddingParams": {
            "embeddingPurpose": "GENERIC_INDEX",
            "embeddingDimension": 1024,
            "video": {
                "format": "mp4",
                "source": {"s3Location": {"uri": "s3://media-b/long.mp4"}},
                "embeddingMode": "AUDIO_VIDEO_COMBINED",
                "segmentationConfig": {"durationSeconds": 10},
            },
        },
    }
    output = {"s3OutputDataConfig": {"s3Uri": "s3://out-b/jobs/"}}
    stubber.add_response(
        "start_async_invoke",
        {"invocationArn": ARN},
        {"modelId": MODEL_ID, "modelInput": model_input, "outputDataConfig": output, "clientRequestToken": "tok-1"},
    )
    stubber.add_client_error("start_async_invoke", "ServiceUnavailableException", "busy", 503)
    stubber.add_response(
        "start_async_invoke",
        {"invocationArn": ARN},
        {"modelId": MODEL_ID, "modelInput": model_input, "outputDataConfig": output, "clientRequestToken": ANY},
    )
    embedder = NovaEmbedder(bedrock=client, s3=object(), backoff_base=0.001)
    assert await embedder.start_segmented(request, "s3://out-b/jobs/", client_token="tok-1") == ARN
    assert await embedder.start_segmented(request, "s3://out-b/jobs/") == ARN
    assert isinstance(seen[0]["modelInput"], dict)  # a document member: a dict, not a JSON string
    # Without a caller token we still send one, the same on our retry, so a retry cannot start a second job.
    assert len(seen) == 3 and seen[1]["clientRequestToken"] == seen[2]["clientRequestToken"] != "tok-1"


async def test_get_async_invoke_wire_shape(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, _ = stubbed
    submitted = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
    stubber.add_response(
        "get_async_invoke",
        {
            "invocationArn": ARN,
            "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL_ID}",
            "status": "Failed",
            "failureMessage": "Internal error",
            "submitTime": submitted,
            "endTime": submitted,
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://out-b/jobs/abcdefghij12"}},
        },
        {"invocationArn": ARN},
    )
    state = await NovaEmbedder(bedrock=client, s3=object()).get_async_job(ARN)
    assert (state.status, state.failure_message, state.job_id) == ("Failed", "Internal error", "abcdefghij12")
    assert state.output_s3_uri == "s3://out-b/jobs/abcdefghij12" and state.submit_time == submitted and state.done


async def test_stubbed_throttling_is_retried_then_succeeds(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, _ = stubbed
    stubber.add_client_error("invoke_model", "ThrottlingException", "Too many requests", 429)
    stubber.add_client_error("invoke_model", "ServiceUnavailableException", "unavailable", 503)
    stubber.add_response(
        "invoke_model",
        {"body": streaming({"embeddings": [{"embedding": unit(256)}]}), "contentType": "application/json"},
    )
    embedder = NovaEmbedder(bedrock=client, s3=object(), backoff_base=0.001)
    [[item]] = await embedder.embed([text_request("x")])
    assert item.embedding == unit(256)


@pytest.mark.parametrize(
    ("code", "status", "error", "needles"),
    [
        ("AccessDeniedException", 403, AccessDenied, ["model access", MODEL_ID, "bedrock:InvokeModel", "us-east-1"]),
        ("ValidationException", 400, InvalidInput, ["Malformed input request: bad field"]),
        ("ResourceNotFoundException", 404, ModelUnavailable, ["us-east-1", "region"]),
    ],
)
async def test_stubbed_errors_map_to_clear_nova_errors(
    stubbed: tuple[Any, Stubber, list[dict[str, Any]]], code: str, status: int, error: type, needles: list[str]
) -> None:
    client, stubber, _ = stubbed
    message = "Malformed input request: bad field" if code == "ValidationException" else "nope"
    stubber.add_client_error("invoke_model", code, message, status)  # one stub: a retry would fail the test
    embedder = NovaEmbedder(bedrock=client, s3=object(), region="us-east-1", backoff_base=0.001)
    with pytest.raises(error) as info:
        await embedder.embed([text_request("x")])
    for needle in needles:
        assert needle in info.value.text


async def test_wrong_length_vector_is_rejected(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, _ = stubbed
    stubber.add_response(
        "invoke_model",
        {"body": streaming({"embeddings": [{"embedding": unit(1024)}]}), "contentType": "application/json"},
    )
    with pytest.raises(BackendUnavailable, match="1024-value vector for a 256-dimension request"):
        await NovaEmbedder(bedrock=client, s3=object()).embed([text_request("x", dim=256)])


async def test_non_nova_body_is_rejected(stubbed: tuple[Any, Stubber, list[dict[str, Any]]]) -> None:
    client, stubber, _ = stubbed
    stubber.add_response("invoke_model", {"body": streaming({}), "contentType": "application/json"})  # moto's answer
    with pytest.raises(BackendUnavailable, match="not a Nova embedding response"):
        await NovaEmbedder(bedrock=client, s3=object()).embed([text_request("x")])


# ---- behaviour with the fake -----------------------------------------------------------------------------


async def test_embedder_satisfies_protocol_and_info(nova_embedder: NovaEmbedder) -> None:
    assert isinstance(nova_embedder, Embedder)
    info = nova_embedder.info
    assert (info.provider, info.model, info.dimensions) == ("nova", MODEL_ID, [3072, 1024, 384, 256])
    assert info.modalities == ["text", "image", "audio", "video"]
    assert (info.max_text_chars, info.max_sync_media_seconds, info.supports_async) == (8192, 30, True)
    assert nova_embedder.status() == "ready"
    assert await nova_embedder.embed([]) == []


async def test_fake_throttling_retried_then_succeeds(
    nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime
) -> None:
    fake_bedrock.fail_next("ThrottlingException", 2)
    fake_bedrock.fail_next("ModelNotReadyException", 1)
    [[item]] = await nova_embedder.embed([text_request("hello world")])
    assert item.embedding == text_vector("hello world", 256)
    assert fake_bedrock.count() == 4
    assert [c.error for c in fake_bedrock.calls] == ["ThrottlingException"] * 2 + ["ModelNotReadyException", None]


async def test_persistent_throttling_gives_up_after_twice_max_attempts(
    fake_bedrock: FakeBedrockRuntime, moto_s3: Any
) -> None:
    fake_bedrock.throttle_rate = 1.0
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, max_attempts=3, backoff_base=0.001)
    with pytest.raises(BackendUnavailable, match="lower NOVA_MCP_CONCURRENCY"):
        await embedder.embed([text_request("x")])
    assert fake_bedrock.count() == 6  # "slow down" gets twice the attempts of other faults


async def test_access_denied_not_retried_and_shown_in_status(
    nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime
) -> None:
    fake_bedrock.access_denied = True
    with pytest.raises(AccessDenied, match="Enable model access"):
        await nova_embedder.embed([text_request("x")])
    assert fake_bedrock.count() == 1
    assert nova_embedder.status().startswith("error: Amazon Bedrock denied access")
    fake_bedrock.access_denied = False
    await nova_embedder.embed([text_request("x")])
    assert nova_embedder.status() == "ready"


async def test_unknown_model_id_is_model_unavailable(fake_bedrock: FakeBedrockRuntime, moto_s3: Any) -> None:
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, model_id="amazon.nova-9-nope", region="eu-west-3")
    with pytest.raises(ModelUnavailable, match="eu-west-3"):
        await embedder.embed([text_request("x")])


async def test_concurrency_is_bounded_and_order_kept(fake_bedrock: FakeBedrockRuntime, moto_s3: Any) -> None:
    fake_bedrock.latency = (0.01, 0.04)  # random latencies finish out of order
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, concurrency=3)
    texts = [f"document number {i} about topic{i}" for i in range(15)]
    out = await embedder.embed([text_request(t) for t in texts])
    assert fake_bedrock.max_in_flight == 3
    assert [items[0].embedding for items in out] == [text_vector(t, 256) for t in texts]


async def test_concurrency_above_default_thread_pool(fake_bedrock: FakeBedrockRuntime, moto_s3: Any) -> None:
    fake_bedrock.latency = 0.3  # long enough for 50 threads to start while the first ones still wait
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, concurrency=50)
    await embedder.embed([text_request(f"t{i}") for i in range(60)])
    assert 40 < fake_bedrock.max_in_flight <= 50  # not capped by anyio's default 40 worker threads


async def test_one_failure_fails_the_batch_with_a_nova_error(fake_bedrock: FakeBedrockRuntime, moto_s3: Any) -> None:
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, concurrency=1)
    fake_bedrock.fail_next("ValidationException", 1, "Malformed input request: nope")
    with pytest.raises(InvalidInput, match="nope"):  # a NovaError, not an ExceptionGroup
        await embedder.embed([text_request(f"t{i}") for i in range(5)])
    assert fake_bedrock.count() < 5  # the rest were cancelled


async def test_fault_injection_with_retries_recovers(fake_bedrock: FakeBedrockRuntime, moto_s3: Any) -> None:
    fake_bedrock.throttle_rate = 0.3
    fake_bedrock.error_rate = 0.2
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, max_attempts=12, backoff_base=0.001, backoff_cap=0.005)
    out = await embedder.embed([text_request(f"t{i}") for i in range(20)])
    assert len(out) == 20
    errors = {c.error for c in fake_bedrock.calls} - {None}
    assert errors & {"ThrottlingException"} and errors & {"ServiceUnavailableException", "InternalServerException"}


async def test_fake_vectors_support_retrieval(nova_embedder: NovaEmbedder) -> None:
    chunks = [
        "The quarterly revenue grew by twelve percent in Europe.",
        "Our cat sleeps on the warm windowsill every afternoon.",
        "Install the package with pip and run the tests.",
    ]
    index = await nova_embedder.embed([text_request(c) for c in chunks])
    [[query]] = await nova_embedder.embed([text_request("where does the cat sleep", purpose="GENERIC_RETRIEVAL")])
    scores = [sum(a * b for a, b in zip(query.embedding, items[0].embedding, strict=True)) for items in index]
    assert max(range(3), key=scores.__getitem__) == 1
    assert abs(sum(v * v for v in query.embedding) - 1.0) < 1e-9


async def test_fake_media_vectors_are_content_determined(nova_embedder: NovaEmbedder, moto_s3: Any) -> None:
    moto_s3.put_object(Bucket=OUTPUT_BUCKET, Key="a.png", Body=PNG)

    def image(source: MediaSource) -> SingleEmbeddingRequest:
        return SingleEmbeddingRequest(
            single_embedding_params=SingleEmbeddingParams(
                embedding_purpose="GENERIC_INDEX",
                embedding_dimension=256,
                image=ImageInput(format="png", source=source),
            )
        )

    inline, from_s3, other = await nova_embedder.embed(
        [
            image(MediaSource.from_bytes(PNG)),
            image(MediaSource.from_s3(f"s3://{OUTPUT_BUCKET}/a.png")),
            image(MediaSource.from_bytes(b"other")),
        ]
    )
    assert inline[0].embedding == from_s3[0].embedding != other[0].embedding
    audio = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose="GENERIC_INDEX", audio=AudioInput(format="mp3", source=MediaSource.from_bytes(b"ID3"))
        )
    )
    [[item]] = await nova_embedder.embed([audio])
    assert (item.embedding_type, len(item.embedding)) == (EmbeddingType.AUDIO, 3072)


def test_fake_rejects_invalid_bodies_like_bedrock(fake_bedrock: FakeBedrockRuntime) -> None:
    bad = [
        "not json",
        json.dumps({"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX"}}),
        json.dumps(text_request("x").to_body() | {"extra": 1}),
    ]
    for body in bad:
        with pytest.raises(ClientError) as info:
            fake_bedrock.invoke_model(
                modelId=MODEL_ID, body=body, contentType="application/json", accept="application/json"
            )
        assert info.value.response["Error"]["Code"] == "ValidationException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "Malformed input request" in info.value.response["Error"]["Message"]
    response = fake_bedrock.invoke_model(modelId=MODEL_ID, body=json.dumps(text_request("ok").to_body()).encode())
    assert isinstance(response["body"], StreamingBody) and response["contentType"] == "application/json"
    assert fake_bedrock.invoke_bodies == [text_request("ok").to_body()]


# ---- async segmented jobs end to end (fake Bedrock writes into moto S3) ----------------------------------


def video_job(uri: str, seconds: int = 10, mode: str = "AUDIO_VIDEO_COMBINED") -> SegmentedEmbeddingRequest:
    return SegmentedEmbeddingRequest(
        segmented_embedding_params=SegmentedEmbeddingParams(
            embedding_dimension=256,
            video=SegmentedVideoInput(
                format="mp4",
                embedding_mode=mode,
                source=MediaSource.from_s3(uri),
                segmentation_config=MediaSegmentation(duration_seconds=seconds),
            ),
        )
    )


async def run_job(embedder: NovaEmbedder, request: SegmentedEmbeddingRequest, out: str) -> tuple[str, Any]:
    arn = await embedder.start_segmented(request, out)
    for _ in range(10):
        state = await embedder.get_async_job(arn)
        if state.done:
            return arn, state
    raise AssertionError("job never finished")


async def test_async_video_partial_failure(nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime) -> None:
    fake_bedrock.media_seconds = 95.0
    fake_bedrock.failed_segments = {3}
    fake_bedrock.segment_failure_reason = "RAI_VIOLATION_INPUT_IMAGE_DEFLECTION"
    fake_bedrock.in_progress_polls = 2
    arn, state = await run_job(
        nova_embedder, video_job(f"s3://{OUTPUT_BUCKET}/in/movie.mp4"), f"s3://{OUTPUT_BUCKET}/out/"
    )
    assert state.status == "Completed" and fake_bedrock.count("get_async_invoke") == 3
    assert state.output_s3_uri == f"s3://{OUTPUT_BUCKET}/out/{job_id_of(arn)}"
    output = await nova_embedder.read_async_output(state.output_s3_uri)
    assert output.result.source_file_uri == f"s3://{OUTPUT_BUCKET}/in/movie.mp4"
    [entry] = output.result.embedding_results
    assert (entry.embedding_type, entry.status) == (EmbeddingType.AUDIO_VIDEO_COMBINED, ResultStatus.PARTIAL_SUCCESS)
    assert entry.output_file_uri.endswith("/embedding-audio-video.jsonl")
    assert [r.index for r in output.records] == list(range(10))  # ceil(95 / 10)
    assert [(r.start_seconds, r.end_seconds) for r in output.records][-2:] == [(80.0, 90.0), (90.0, 95.0)]
    [failed] = output.failed
    assert (failed.index, failed.failure_reason, failed.embedding) == (3, "RAI_VIOLATION_INPUT_IMAGE_DEFLECTION", None)
    assert len(output.succeeded) == 9 and all(len(r.embedding) == 256 for r in output.succeeded)


async def test_async_blog_field_names(nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime) -> None:
    fake_bedrock.blog_field_names = True
    fake_bedrock.media_seconds = 12.0
    _, state = await run_job(nova_embedder, video_job("s3://media-b/clip.mp4", seconds=5), f"s3://{OUTPUT_BUCKET}/o")
    lines = await nova_embedder.read_async_output(state.output_s3_uri)
    raw = moto_line(fake_bedrock, state.output_s3_uri + "/embedding-audio-video.jsonl")
    assert "segmentMetadata" not in raw and "startTime" in raw  # the fake really wrote the blog shape
    assert [(r.index, r.start_seconds, r.end_seconds) for r in lines.records] == [(0, 0, 5), (1, 5, 10), (2, 10, 12)]


def moto_line(fake: FakeBedrockRuntime, uri: str) -> dict[str, Any]:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(fake.s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()[0])


@pytest.mark.parametrize("trailing", ["", "/"])
async def test_async_output_found_under_job_folder(
    nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime, trailing: str
) -> None:
    fake_bedrock.report_uri_with_job_id = False  # s3Uri comes back as submitted, without the job id
    prefix = f"s3://{OUTPUT_BUCKET}/runs{trailing}"
    arn, state = await run_job(nova_embedder, video_job("s3://media-b/a.mp4"), prefix)
    assert state.output_s3_uri == prefix
    by_id = await nova_embedder.read_async_output(state.output_s3_uri, job_id=job_id_of(arn))
    found = await nova_embedder.read_async_output(state.output_s3_uri)  # discovers the single job folder
    assert (
        by_id.result_uri
        == found.result_uri
        == f"s3://{OUTPUT_BUCKET}/runs/{job_id_of(arn)}/segmented-embedding-result.json"
    )
    assert len(found.records) == 6


class NoListS3:
    """moto S3 as seen by a caller without s3:ListBucket: a missing key is a 403, not a 404."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def get_object(self, **kwargs: Any) -> Any:
        try:
            return self._s3.get_object(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchKey":
                error = {
                    "Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                }
                raise ClientError(error, "GetObject") from None
            raise


async def test_async_output_probe_tolerates_403_without_list_permission(
    fake_bedrock: FakeBedrockRuntime, moto_s3: Any
) -> None:
    fake_bedrock.report_uri_with_job_id = False
    embedder = NovaEmbedder(bedrock=fake_bedrock, s3=NoListS3(moto_s3), backoff_base=0.001)
    arn, state = await run_job(embedder, video_job("s3://media-b/a.mp4"), f"s3://{OUTPUT_BUCKET}/np")
    output = await embedder.read_async_output(state.output_s3_uri, job_id=job_id_of(arn))
    assert len(output.records) == 6
    with pytest.raises(AccessDenied, match="s3:GetObject"):
        await embedder.read_async_output(f"s3://{OUTPUT_BUCKET}/elsewhere", job_id=job_id_of(arn))


async def test_async_output_ambiguous_or_missing(nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime) -> None:
    with pytest.raises(InvalidInput, match="No segmented-embedding-result.json"):
        await nova_embedder.read_async_output(f"s3://{OUTPUT_BUCKET}/nothing-here")
    fake_bedrock.report_uri_with_job_id = False
    for name in ("a", "b"):
        await run_job(nova_embedder, video_job(f"s3://media-b/{name}.mp4"), f"s3://{OUTPUT_BUCKET}/shared")
    with pytest.raises(InvalidInput, match="2 job folders"):
        await nova_embedder.read_async_output(f"s3://{OUTPUT_BUCKET}/shared")


async def test_async_output_in_missing_bucket_is_not_found(nova_embedder: NovaEmbedder) -> None:
    with pytest.raises(NotFound):
        await nova_embedder.read_async_output("s3://no-such-bucket-x/out/", job_id="abcdefghij12")


async def test_async_text_from_s3_has_char_positions(nova_embedder: NovaEmbedder, moto_s3: Any) -> None:
    text = " ".join(f"word{i}" for i in range(400))  # 3,089 chars
    moto_s3.put_object(Bucket=OUTPUT_BUCKET, Key="docs/long.txt", Body=text.encode())
    request = SegmentedEmbeddingRequest(
        segmented_embedding_params=SegmentedEmbeddingParams(
            embedding_dimension=256,
            text=SegmentedTextInput(
                source={"s3Location": {"uri": f"s3://{OUTPUT_BUCKET}/docs/long.txt"}},
                segmentation_config=TextSegmentation(max_length_chars=1000),
            ),
        )
    )
    _, state = await run_job(nova_embedder, request, f"s3://{OUTPUT_BUCKET}/text-out")
    output = await nova_embedder.read_async_output(state.output_s3_uri)
    spans = split_text(text, 1000)
    assert len(spans) == 4
    assert [(r.char_start, r.char_end) for r in output.records] == spans
    assert output.records[1].embedding == text_vector(text[spans[1][0] : spans[1][1]], 256)
    assert all(end - start <= 1000 for start, end in spans)


async def test_async_image_json_and_separate_video(
    nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime
) -> None:
    image = SegmentedEmbeddingRequest(
        segmented_embedding_params=SegmentedEmbeddingParams(
            embedding_dimension=256, image=ImageInput(format="png", source=MediaSource.from_s3("s3://media-b/p.png"))
        )
    )
    _, state = await run_job(nova_embedder, image, f"s3://{OUTPUT_BUCKET}/img")
    output = await nova_embedder.read_async_output(state.output_s3_uri)
    assert output.result.embedding_results[0].output_file_uri.endswith("embedding-image.json")
    assert [(r.embedding_type, r.index) for r in output.records] == [(EmbeddingType.IMAGE, 0)]

    fake_bedrock.media_seconds = 10.0
    _, state = await run_job(
        nova_embedder, video_job("s3://media-b/s.mp4", 5, "AUDIO_VIDEO_SEPARATE"), f"s3://{OUTPUT_BUCKET}/sep"
    )
    output = await nova_embedder.read_async_output(state.output_s3_uri)
    assert [r.embedding_type for r in output.records] == ["VIDEO", "VIDEO", "AUDIO", "AUDIO"]


async def test_async_audio_segments(nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime) -> None:
    fake_bedrock.media_seconds = lambda uri: 61.0 if uri.endswith("talk.mp3") else 1.0
    request = SegmentedEmbeddingRequest(
        segmented_embedding_params=SegmentedEmbeddingParams(
            embedding_dimension=256,
            audio=SegmentedAudioInput(format="mp3", source=MediaSource.from_s3("s3://media-b/talk.mp3")),
        )
    )
    _, state = await run_job(nova_embedder, request, f"s3://{OUTPUT_BUCKET}/aud")
    output = await nova_embedder.read_async_output(state.output_s3_uri)
    assert len(output.records) == 13 and output.records[-1].end_seconds == 61.0  # default 5 s segments
    assert {r.embedding_type for r in output.records} == {EmbeddingType.AUDIO}


async def test_async_job_failure(nova_embedder: NovaEmbedder, fake_bedrock: FakeBedrockRuntime) -> None:
    fake_bedrock.fail_job = "The input file could not be decoded."
    _, state = await run_job(nova_embedder, video_job("s3://media-b/x.mp4"), f"s3://{OUTPUT_BUCKET}/f")
    assert (state.status, state.failure_message) == ("Failed", "The input file could not be decoded.")
    assert state.end_time is not None


async def test_async_idempotent_client_token(nova_embedder: NovaEmbedder) -> None:
    request = video_job("s3://media-b/x.mp4")
    first = await nova_embedder.start_segmented(request, f"s3://{OUTPUT_BUCKET}/i", client_token="job-1")
    assert await nova_embedder.start_segmented(request, f"s3://{OUTPUT_BUCKET}/i", client_token="job-1") == first
    with pytest.raises(InvalidInput, match="conflict"):
        await nova_embedder.start_segmented(
            video_job("s3://media-b/y.mp4"), f"s3://{OUTPUT_BUCKET}/i", client_token="job-1"
        )


async def test_start_segmented_rejects_bad_output_uri(nova_embedder: NovaEmbedder) -> None:
    with pytest.raises(InvalidInput, match="not an s3:// URI"):
        await nova_embedder.start_segmented(video_job("s3://media-b/x.mp4"), "https://example.com/out")


# ---- clients and error translation -----------------------------------------------------------------------


def test_aws_clients_are_lazy_shared_and_configured() -> None:
    clients = AwsClients("us-west-2", concurrency=32, max_attempts=7, read_timeout=90)
    assert clients._clients == {}  # nothing built yet
    built: list[Any] = []
    threads = [threading.Thread(target=lambda: built.append(clients.bedrock_runtime())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in built}) == 1
    config = built[0].meta.config
    # one retry layer: botocore makes one attempt per call, ours makes up to max_attempts inside a budget
    assert config.retries["mode"] == "standard" and config.retries["total_max_attempts"] == 1
    assert built[0].policy.max_attempts == 7 and built[0].policy.attempt_timeout_s == 10 + 90
    assert config.max_pool_connections >= 32 and config.read_timeout == 90
    assert built[0].meta.region_name == "us-west-2"
    assert clients.s3().meta.service_model.service_name == "s3"
    assert clients.s3vectors().meta.service_model.service_name == "s3vectors"
    fake = object()
    assert AwsClients(overrides={"bedrock-runtime": fake}).bedrock_runtime() is fake


async def test_missing_credentials_give_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    embedder = NovaEmbedder(clients=AwsClients("us-east-1"), max_attempts=1)
    with pytest.raises(AccessDenied) as info:
        await embedder.embed([text_request("x")])
    assert "AWS_PROFILE" in info.value.text and "NOVA_MCP_BACKEND=local" in info.value.text


def test_missing_profile_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AccessDenied, match="'nope' does not exist"):
        AwsClients("us-east-1", profile="nope").bedrock_runtime()


def test_error_translation_of_transport_failures() -> None:
    assert "AWS_REGION" in to_nova_error(NoCredentialsError(), service="bedrock-runtime").text
    down = to_nova_error(EndpointConnectionError(endpoint_url="https://x"), service="bedrock-runtime", region="ap-x-1")
    assert isinstance(down, BackendUnavailable) and "ap-x-1" in down.text
    slow = to_nova_error(ReadTimeoutError(endpoint_url="https://x"), service="bedrock-runtime")
    assert isinstance(slow, BackendUnavailable) and "try again later" in slow.text.lower()
    assert is_retryable(ReadTimeoutError(endpoint_url="https://x")) and not is_retryable(NoCredentialsError())


@pytest.mark.parametrize(
    ("code", "status", "service", "error"),
    [
        ("ThrottlingException", 429, "bedrock-runtime", BackendUnavailable),
        ("ModelNotReadyException", 429, "bedrock-runtime", BackendUnavailable),
        ("InternalServerException", 500, "bedrock-runtime", BackendUnavailable),
        ("ServiceQuotaExceededException", 400, "bedrock-runtime", BackendUnavailable),
        ("ExpiredTokenException", 403, "bedrock-runtime", AccessDenied),
        ("AccessDenied", 403, "s3", AccessDenied),
        ("NoSuchKey", 404, "s3", NotFound),
        ("ValidationException", 400, "s3vectors", InvalidInput),
    ],
)
def test_client_error_translation(code: str, status: int, service: str, error: type) -> None:
    exc = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")
    assert type(to_nova_error(exc, service=service)) is error


def test_messages_never_leak_signed_urls_or_keys() -> None:
    message = (
        "Denied for https://b.s3.amazonaws.com/k?X-Amz-Signature=abc123&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F "
        "by AKIAABCDEFGHIJKLMNOP"
    )
    exc = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetObject",
    )
    text = to_nova_error(exc, service="s3", operation="GetObject").text
    assert "X-Amz-Signature" not in text and "AKIA" not in text and "abc123" not in text
    assert "amazonaws.com" not in text and "<presigned-url>" in text  # the whole presigned URL goes
    assert "s3:GetObject" in text
    assert scrub("word " * 400).endswith("...")


# ---- the fake can fail: its own checks from the docs, missing S3 objects, sync media over 30 s ----------------


def wav(seconds: float, rate: int = 8000) -> bytes:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def test_fake_validates_from_the_docs_not_from_our_schema(fake_bedrock: FakeBedrockRuntime) -> None:

    for name in ("nova.py", "nova_docs.py"):
        source = (REPO / "tests" / "fakes" / name).read_text()
        assert "nova_mcp_server" not in source.split('"""', 2)[-1]  # no import of our code below the docstring
    good = text_request("hello", dim=256).to_body()
    fake_bedrock.invoke_model(modelId=MODEL_ID, body=json.dumps(good))
    for mutate, needle in [
        (lambda b: b["singleEmbeddingParams"].update(embeddingDimension=512), "embeddingDimension"),
        (lambda b: b["singleEmbeddingParams"]["text"].pop("truncationMode"), "truncationMode is required"),
        (lambda b: b["singleEmbeddingParams"].pop("embeddingPurpose"), "embeddingPurpose is required"),
        (lambda b: b.update(taskType="SEGMENTED_EMBEDDING"), "taskType must be SINGLE_EMBEDDING"),
        (lambda b: b["singleEmbeddingParams"]["text"].update(value="x" * 8193), "longer than 8192"),
        (lambda b: b["singleEmbeddingParams"].update(image={"format": "png"}), "exactly one of"),
        (lambda b: b["singleEmbeddingParams"]["text"].update(source={"bytes": "aGk="}), "exactly one of value"),
    ]:
        body = json.loads(json.dumps(good))
        mutate(body)
        with pytest.raises(ClientError) as info:
            fake_bedrock.invoke_model(modelId=MODEL_ID, body=json.dumps(body))
        assert info.value.response["Error"]["Code"] == "ValidationException" and needle in str(info.value), needle


async def test_fake_refuses_a_missing_s3_object(nova_embedder: NovaEmbedder) -> None:
    missing = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose="GENERIC_INDEX",
            embedding_dimension=256,
            image=ImageInput(format="png", source=MediaSource.from_s3("s3://media-b/nope.png")),
        )
    )
    with pytest.raises(InvalidInput, match="Unable to access the S3 object s3://media-b/nope.png"):
        await nova_embedder.embed([missing])
    with pytest.raises(InvalidInput, match="Unable to access the S3 object"):
        await nova_embedder.start_segmented(video_job("s3://media-b/nope.mp4"), f"s3://{OUTPUT_BUCKET}/o")


async def test_fake_refuses_sync_media_over_30_seconds(nova_embedder: NovaEmbedder, moto_s3: Any) -> None:
    def audio(data: bytes) -> SingleEmbeddingRequest:
        return SingleEmbeddingRequest(
            single_embedding_params=SingleEmbeddingParams(
                embedding_purpose="GENERIC_INDEX",
                embedding_dimension=256,
                audio=AudioInput(format="wav", source=MediaSource.from_bytes(data)),
            )
        )

    [items] = await nova_embedder.embed([audio(wav(10))])
    assert len(items[0].embedding) == 256
    with pytest.raises(InvalidInput, match="maximum duration is 30 seconds"):
        await nova_embedder.embed([audio(wav(31))])
    moto_s3.put_object(Bucket="media-b", Key="long.wav", Body=wav(45))
    by_reference = SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose="GENERIC_INDEX",
            embedding_dimension=256,
            audio=AudioInput(format="wav", source=MediaSource.from_s3("s3://media-b/long.wav")),
        )
    )
    with pytest.raises(InvalidInput, match="maximum duration is 30 seconds"):
        await nova_embedder.embed([by_reference])
