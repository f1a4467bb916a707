"""The one AWS error translator and the one retry layer: scrubbed text, IAM actions, budgets, SDK floor."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nova_mcp_server import aws_retry
from nova_mcp_server.aws import AwsClients, check_sdk
from nova_mcp_server.aws_errors import ScrubbingFilter, scrub, translate
from nova_mcp_server.aws_retry import RetryingClient, RetryPolicy, call_with_retries
from nova_mcp_server.errors import AccessDenied, BackendUnavailable, ModelUnavailable
from nova_mcp_server.settings import Settings
from nova_mcp_server.stores.base import check_vector_bucket_name

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PRESIGNED = (
    "https://media.s3.us-east-1.amazonaws.com/private/talk.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={KEY_ID}%2F20261201%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T000000Z"
    "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "ab12" * 16
)
LEAKY = (
    f"User: arn:aws:sts::123456789012:assumed-role/r/s with key {KEY_ID} is not authorized; "
    f"request {PRESIGNED} refused. aws_secret_access_key={SECRET} "
    "Authorization: AWS4-HMAC-SHA256 Credential=ASIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3vectors/aws4_request, "
    "SignedHeaders=host, Signature=" + "cd34" * 16
)


def denied(operation: str, message: str = LEAKY, code: str = "AccessDeniedException", status: int = 403) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def assert_clean(text: str) -> None:
    for secret in (KEY_ID, "ASIAIOSFODNN7EXAMPLE", SECRET, "ab12ab12", "cd34cd34", "talk.mp4", "X-Amz-Credential"):
        assert secret not in text, (secret, text)


@pytest.mark.parametrize(
    ("service", "operation", "params", "action"),
    [
        ("s3", "GetObject", {}, "s3:GetObject"),
        ("s3", "HeadObject", {}, "s3:GetObject"),
        ("s3vectors", "PutVectors", {}, "s3vectors:PutVectors"),
        ("s3vectors", "QueryVectors", {"filter": {"a": 1}}, "s3vectors:QueryVectors and s3vectors:GetVectors"),
        (
            "s3vectors",
            "CreateIndex",
            {"tags": {"nova-mcp:model": "m"}},
            "s3vectors:CreateIndex and s3vectors:TagResource",
        ),
        ("s3vectors", "ListTagsForResource", {}, "s3vectors:ListTagsForResource"),
        ("bedrock-runtime", "InvokeModel", {}, "bedrock:InvokeModel"),
    ],
)
def test_one_translator_scrubs_and_names_the_iam_action(service: str, operation: str, params: Any, action: str) -> None:
    error = translate(denied(operation), service=service, operation=operation, params=params)
    assert isinstance(error, AccessDenied)
    assert_clean(error.text)
    assert action in error.text
    assert "<presigned-url>" in error.text and "<access-key-id>" in error.text


def test_scrub_keeps_what_helps_and_drops_query_strings() -> None:
    assert scrub("s3://bucket/docs/a.pdf is missing") == "s3://bucket/docs/a.pdf is missing"
    assert scrub("see https://example.com/x?token=abc") == "see https://example.com/x"
    assert scrub("sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 kept").endswith("kept")
    assert "da39a3ee5e6b4b0d3255bfef95601890afd80709" in scrub("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    assert_clean(scrub(LEAKY))


def test_logs_are_scrubbed_too(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("nova_mcp_server.test_scrub")
    scrubber = ScrubbingFilter()
    caplog.handler.addFilter(scrubber)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            logger.warning("S3 said %s", LEAKY)
            try:
                raise RuntimeError(f"boom {PRESIGNED}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(scrubber)
    assert_clean(caplog.text)
    assert "S3 said" in caplog.text and "boom" in caplog.text


def test_old_sdk_is_one_clear_error() -> None:
    with pytest.raises(ModelUnavailable) as info:
        check_sdk("1.42.1")
    assert "botocore >= 1.44.0" in info.value.text and "pip install -U 'boto3>=1.44.0'" in info.value.text
    check_sdk("1.44.0")
    check_sdk("2.0.0rc1")


def test_old_sdk_found_when_a_client_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore

    monkeypatch.setattr(botocore, "__version__", "1.40.0")
    with pytest.raises(ModelUnavailable, match="botocore 1.40.0 is installed"):
        AwsClients("us-east-1").s3vectors()


def test_bedrock_may_run_in_its_own_region() -> None:
    clients = AwsClients("eu-central-1", bedrock_region="us-east-1")
    assert clients.bedrock_runtime().meta.region_name == "us-east-1"
    assert clients.s3vectors().meta.region_name == "eu-central-1"
    settings = Settings(region="eu-central-1", bedrock_region="us-east-1", vector_bucket="team-vectors")
    assert AwsClients.from_settings(settings).region_for("bedrock-runtime") == "us-east-1"


@pytest.mark.parametrize("name", ["ab", "a.b.c", "Vectors", "-abc", "abc-", "abc\n", "a" * 64, "ab_c"])
def test_vector_bucket_names_are_validated_whole(name: str) -> None:
    with pytest.raises(Exception, match="Invalid vector bucket name"):
        check_vector_bucket_name(name)
    with pytest.raises(ValueError, match="Invalid vector bucket name"):
        Settings(vector_bucket=name)


def test_valid_vector_bucket_names() -> None:
    for name in ("abc", "team-vectors-01", "a" * 63):
        assert check_vector_bucket_name(name) == name


# ---- the retry layer ------------------------------------------------------------------------------------


STATUS = {
    "ThrottlingException": 429,
    "ModelTimeoutException": 408,
    "ValidationException": 400,
    "InternalServerException": 500,
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def failing(codes: list[str], clock: Clock, took: float = 0.0) -> Any:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        clock.now += took
        if len(calls) <= len(codes):
            code = codes[len(calls) - 1]
            raise denied("InvokeModel", "m", code, STATUS.get(code, 400))
        return "ok"

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def test_transient_failures_retry_then_succeed() -> None:
    clock = Clock()
    fn = failing(["ThrottlingException"] * 3, clock)
    policy = RetryPolicy(max_attempts=4, rng=random.Random(1))
    assert call_with_retries(fn, policy, clock=clock, sleep=clock.sleep) == "ok"
    assert len(fn.calls) == 4 and len(clock.waits) == 3


def test_throttling_gets_twice_the_attempts_of_other_faults() -> None:
    """4 attempts for a 5xx; 8 when the service keeps saying "slow down"; 1 means no retry at all."""
    clock = Clock()
    unavailable = failing(["InternalServerException"] * 20, clock)
    with pytest.raises(ClientError):
        call_with_retries(
            unavailable, RetryPolicy(max_attempts=4, rng=random.Random(3)), clock=clock, sleep=clock.sleep
        )
    assert len(unavailable.calls) == 4
    throttled = failing(["ThrottlingException"] * 20, clock)
    with pytest.raises(ClientError) as info:
        call_with_retries(throttled, RetryPolicy(max_attempts=4, rng=random.Random(3)), clock=clock, sleep=clock.sleep)
    assert len(throttled.calls) == 8 and info.value.attempts == 8  # type: ignore[attr-defined]
    assert (
        call_with_retries(
            failing(["ThrottlingException"] * 7, clock), RetryPolicy(max_attempts=4), clock=clock, sleep=clock.sleep
        )
        == "ok"
    )
    once = failing(["ThrottlingException"] * 3, clock)
    with pytest.raises(ClientError):
        call_with_retries(once, RetryPolicy(max_attempts=1), clock=clock, sleep=clock.sleep)
    assert len(once.calls) == 1


def test_the_budget_bounds_the_whole_call() -> None:
    """Each attempt takes its whole 40 s timeout: a 100 s budget allows two attempts, never a third."""
    clock = Clock()
    fn = failing(["ThrottlingException"] * 10, clock, took=40.0)
    policy = RetryPolicy(budget_s=100.0, attempt_timeout_s=40.0, max_attempts=10, base_s=1.0, rng=random.Random(2))
    with pytest.raises(ClientError) as info:
        call_with_retries(fn, policy, clock=clock, sleep=clock.sleep)
    assert len(fn.calls) == 2 and clock.now <= 100.0
    assert info.value.attempts == 2  # type: ignore[attr-defined]
    assert "after retries (2 attempts)" in translate(info.value, service="bedrock-runtime", attempts=2).text


def test_model_timeout_gets_one_more_attempt_and_its_own_message() -> None:
    clock = Clock()
    fn = failing(["ModelTimeoutException"] * 5, clock)
    with pytest.raises(ClientError) as info:
        call_with_retries(fn, RetryPolicy(max_attempts=6), clock=clock, sleep=clock.sleep)
    assert len(fn.calls) == 2
    text = translate(info.value, service="bedrock-runtime", operation="InvokeModel", attempts=2).text
    assert "timed out" in text and "shorter clip" in text and "throttling" not in text


def test_permanent_errors_are_not_retried() -> None:
    clock = Clock()
    fn = failing(["ValidationException"], clock)
    with pytest.raises(ClientError):
        call_with_retries(fn, RetryPolicy(), clock=clock, sleep=clock.sleep)
    assert len(fn.calls) == 1 and clock.waits == []


def test_clients_make_one_botocore_attempt_each_under_our_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retries wrapping botocore's: a 503 every time costs exactly max_attempts sends."""
    from botocore.stub import Stubber

    waits: list[float] = []
    monkeypatch.setattr(aws_retry, "_sleep", waits.append)
    clients = AwsClients("us-east-1", max_attempts=3)
    client = clients.s3vectors()
    assert isinstance(client, RetryingClient) and client.meta.config.retries["total_max_attempts"] == 1
    with Stubber(client.unwrapped) as stub:
        for _ in range(3):
            stub.add_client_error("list_vector_buckets", "ServiceUnavailableException", http_status_code=503)
        with pytest.raises(ClientError):
            client.list_vector_buckets()
        stub.assert_no_pending_responses()
    assert len(waits) == 2
    error = translate(
        ClientError(
            {"Error": {"Code": "ServiceUnavailableException"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "X"
        ),
        service="s3vectors",
        attempts=3,
    )
    assert isinstance(error, BackendUnavailable) and "3 attempts" in error.text
