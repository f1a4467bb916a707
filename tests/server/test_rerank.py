"""rerank=true: the request is what botocore's bedrock-agent-runtime model accepts (Stubber), the order and
rerank_score come from its answer, and the local backend says clearly that it has no reranker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from fakes.nova import FakeBedrockRuntime
from mcp import Client
from moto import mock_aws
from stores_support import S3VectorsEmulator
from support import local_core

from nova_mcp_server.app import build_app
from nova_mcp_server.aws import AwsClients
from nova_mcp_server.server import build_server
from nova_mcp_server.settings import Settings

pytestmark = pytest.mark.anyio
TEXTS = ["glaciers carve valleys", "glaciers melt in summer heat", "deserts are dry and hot"]


async def test_rerank_orders_text_hits_by_bedrock_rerank(tmp_path: Path) -> None:
    agent = boto3.client("bedrock-agent-runtime", region_name="us-east-1")
    with mock_aws(), Stubber(agent) as stub:
        vectors = S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1"))
        clients = AwsClients(
            "us-east-1",
            overrides={"bedrock-runtime": FakeBedrockRuntime(), "s3vectors": vectors, "bedrock-agent-runtime": agent},
        )
        settings = Settings(data_dir=tmp_path / "data", vector_bucket="team-vectors", allowed_roots=[tmp_path])
        core = build_app(settings, clients=clients)
        async with Client(build_server(core, poll_seconds=0)) as client:
            await client.call_tool("index_content", {"texts": TEXTS, "index": "geo"})
            plain = await client.call_tool("semantic_search", {"query": "glaciers", "index": "geo", "top_k": 3})
            vector_order = [h["snippet"] for h in plain.structured_content["hits"]]
            # the reranker puts the vector search's last hit first
            scores = {text: s for text, s in zip(vector_order, [0.2, 0.1, 0.9], strict=True)}
            stub.add_response(
                "rerank",
                {"results": [{"index": i, "relevanceScore": scores[t]} for i, t in enumerate(vector_order)]},
                {
                    "queries": [{"type": "TEXT", "textQuery": {"text": "glaciers"}}],
                    "sources": ANY,
                    "rerankingConfiguration": {
                        "type": "BEDROCK_RERANKING_MODEL",
                        "bedrockRerankingConfiguration": {
                            "numberOfResults": 3,
                            "modelConfiguration": {
                                "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0"
                            },
                        },
                    },
                },
            )
            result = await client.call_tool(
                "semantic_search", {"query": "glaciers", "index": "geo", "top_k": 3, "rerank": True}
            )
            assert not result.is_error, result.content[0].text
            hits: list[dict[str, Any]] = result.structured_content["hits"]
            assert [h["snippet"] for h in hits] == sorted(vector_order, key=lambda t: -scores[t])
            assert [h["rerank_score"] for h in hits] == [0.9, 0.2, 0.1]
            assert "amazon.rerank-v1:0" in result.structured_content["note"]
            stub.assert_no_pending_responses()


async def test_rerank_on_the_local_backend_says_it_is_not_available(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await client.call_tool("index_content", {"texts": ["a note"], "index": "local-rr"})
        result = await client.call_tool("semantic_search", {"query": "note", "index": "local-rr", "rerank": True})
        text = result.content[0].text
        assert result.is_error and "reranker" in text and "hybrid" in text
