"""`build_app` wires each backend as a user configures it; the aws one end to end on moto + the Nova fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from fakes.nova import FakeBedrockRuntime
from mcp import Client
from moto import mock_aws
from stores_support import S3VectorsEmulator

from nova_mcp_server.app import build_app
from nova_mcp_server.aws import AwsClients
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.server import build_server
from nova_mcp_server.settings import Settings

pytestmark = pytest.mark.anyio


def test_local_is_the_default_and_aws_follows_a_vector_bucket(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).resolved_backend == "local"
    assert Settings(data_dir=tmp_path, vector_bucket="vbk").resolved_backend == "aws"
    assert Settings(data_dir=tmp_path, vector_bucket="vbk", backend="local").resolved_backend == "local"


def test_aws_backend_needs_a_vector_bucket(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="NOVA_MCP_VECTOR_BUCKET"):
        build_app(Settings(data_dir=tmp_path, backend="aws"))


def test_building_the_aws_core_makes_no_client_and_imports_no_model(tmp_path: Path) -> None:
    clients = AwsClients("us-east-1")
    core = build_app(
        Settings(data_dir=tmp_path, vector_bucket="vbk", staging_bucket="sb", dimension=384), clients=clients
    )
    assert clients._clients == {}
    caps = core.capabilities()
    assert (caps["backend"], caps["provider"], caps["dimension"], caps["async_jobs"]) == ("aws", "nova", 384, True)


async def test_aws_backend_end_to_end_on_moto(tmp_path: Path) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="staging-bucket")
        s3.put_object(Bucket="staging-bucket", Key="docs/kb.txt", Body=b"glaciers carve deep valleys in the alps")
        vectors = S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1"))
        fake = FakeBedrockRuntime(s3=s3)
        clients = AwsClients("us-east-1", overrides={"bedrock-runtime": fake, "s3": s3, "s3vectors": vectors})
        settings = Settings(
            data_dir=tmp_path / "data",
            vector_bucket="team-vectors",
            staging_bucket="staging-bucket",
            allowed_roots=[tmp_path],
            dimension=1024,
        )
        core = build_app(settings, clients=clients)
        async with Client(build_server(core, poll_seconds=0)) as client:
            indexed = await client.call_tool(
                "index_content",
                {"sources": ["s3://staging-bucket/docs/kb.txt"], "texts": ["deserts are dry"], "index": "geo"},
            )
            assert not indexed.is_error, indexed.content[0].text
            assert indexed.structured_content["indexed_sources"] == 2
            found = await client.call_tool("semantic_search", {"query": "glaciers valleys", "index": "geo"})
            assert not found.is_error, found.content[0].text
            hit: dict[str, Any] = found.structured_content["hits"][0]
            assert hit["source"] == "s3://staging-bucket/docs/kb.txt" and hit["modality"] == "text"
            listing = (await client.call_tool("list_indexes", {})).structured_content["indexes"]
            assert [(i["name"], i["dimension"], i["provider"]) for i in listing] == [("geo", 1024, "nova")]
        created = vectors._client.get_index(vectorBucketName="team-vectors", indexName="geo")["index"]
        assert created["dimension"] == 1024 and created["distanceMetric"] == "cosine"
        query = [params for op, params in vectors.calls if op == "query_vectors"][-1]  # the search, last
        assert query["topK"] == 5 and len(query["queryVector"]["float32"]) == 1024


async def test_an_index_refuses_vectors_from_another_embedder(
    tmp_path: Path, tiny_model: Path, fake_bedrock: FakeBedrockRuntime
) -> None:
    from support import local_core, nova_core

    local = local_core(tmp_path, tiny_model)
    async with Client(build_server(local, poll_seconds=0)) as client:
        made = await client.call_tool("index_content", {"texts": ["red apples"], "index": "shared"})
        assert not made.is_error, made.content[0].text
    nova = nova_core(tmp_path, fake_bedrock)  # same data dir, so the same local store
    async with Client(build_server(nova, poll_seconds=0)) as client:
        for tool, args in (
            ("semantic_search", {"query": "apples", "index": "shared"}),
            ("index_content", {"texts": ["green pears"], "index": "shared"}),
        ):
            result = await client.call_tool(tool, args)
            assert result.is_error, tool
            text = result.content[0].text
            assert "built with local/tiny-clip-test at dimension 16" in text and "nova/" in text, text
            assert "another index name" in text
    assert local.store.get_index("shared").vector_count == 1


def test_without_a_chosen_family_the_existing_local_indexes_decide(tmp_path: Path) -> None:
    """CLIP indexes from before jina became the default keep working with no setting."""
    from nova_mcp_server.stores.base import EmbedderStamp, IndexSpec
    from nova_mcp_server.stores.local import LocalVectorStore

    data = tmp_path / "data"
    store = LocalVectorStore(data / "store")
    clip = EmbedderStamp(provider="local", model="Qdrant/clip-ViT-B-32", dimension=512)
    store.create_index(IndexSpec(name="old-clip", dimension=512, embedder=clip))
    store.close()
    app = build_app(Settings(data_dir=data, backend="local"))
    assert (app.embedder.info.model, app.policy.dimension) == ("Qdrant/clip-ViT-B-32", 512)
    fresh = build_app(Settings(data_dir=tmp_path / "fresh", backend="local"))
    assert fresh.embedder.info.model == "jinaai/jina-clip-v1"
