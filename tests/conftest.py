"""Shared pytest fixtures. Each engineer keeps their fixtures in a marked block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# ---- AWS / Nova fixtures (owner: Nova embedder) -----------------------------------------------------------
# Every test runs with fake AWS credentials and no profile or config file, so nothing can reach a real
# account; moto and FakeBedrockRuntime stand in for the services.
from fakes.nova import TEST_BUCKET as OUTPUT_BUCKET


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.getbasetemp() / "aws-empty-config"
    empty.touch()
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto_s3() -> Iterator[Any]:
    """A moto S3 client with the bucket ``OUTPUT_BUCKET`` created."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=OUTPUT_BUCKET)
        yield client


@pytest.fixture
def fake_bedrock(moto_s3: Any) -> Any:
    from fakes.nova import FakeBedrockRuntime

    return FakeBedrockRuntime(s3=moto_s3)


@pytest.fixture
def nova_embedder(fake_bedrock: Any, moto_s3: Any) -> Any:
    """A NovaEmbedder on the fake Bedrock runtime and moto S3, with millisecond backoff."""
    from nova_mcp_server.embedders.nova import NovaEmbedder

    return NovaEmbedder(bedrock=fake_bedrock, s3=moto_s3, default_dimension=256, backoff_base=0.001)


# ---- end AWS / Nova fixtures -------------------------------------------------------------------------------


# ---- core / MCP fixtures (owner: core + server) ------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny CLIP pair the tests build themselves, loaded through the real fastembed loading code."""
    from fixtures.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
