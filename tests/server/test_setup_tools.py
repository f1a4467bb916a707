"""The set-up tools through the MCP client: doctor and the dry run, on the local default and on aws (fakes),
and embedding calls that answer at once while the local model is still downloading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import make_image, make_pdf
from mcp import Client
from moto import mock_aws
from stores_support import S3VectorsEmulator
from support import local_core

from nova_mcp_server.app import build_app
from nova_mcp_server.aws import AwsClients
from nova_mcp_server.server import build_server
from nova_mcp_server.settings import Settings

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_doctor_on_the_local_default(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["doctor"].annotations.read_only_hint is True
        report = await call(client, "doctor")
    checks = {c["name"]: c for c in report["checks"]}
    assert report["backend"] == "local"
    assert checks["identity"]["status"] == "skipped" and "no AWS calls" in checks["identity"]["detail"]
    assert any(c["status"] == "pass" and str(tmp_path) in c["detail"] for c in report["checks"]), report


async def test_dry_run_counts_and_prices_without_embedding_or_writing(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("word " * 1200)  # ~6,000 characters: several Nova chunks
    make_image(folder / "b.png", "png", (10, 200, 10), (32, 32))
    make_pdf(folder / "c.pdf", ["first page", "second page"])
    with mock_aws():
        fake = FakeBedrockRuntime()
        vectors = S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1"))
        clients = AwsClients("us-east-1", overrides={"bedrock-runtime": fake, "s3vectors": vectors})
        settings = Settings(data_dir=tmp_path / "data", vector_bucket="team-vectors", allowed_roots=[tmp_path])
        core = build_app(settings, clients=clients)
        async with Client(build_server(core, poll_seconds=0)) as client:
            dry = await call(client, "index_content", sources=[str(folder)], index="cost", dry_run=True)
            assert fake.count("invoke_model") == 0 and core.store.list_indexes() == []
            assert dry["dry_run"] is True and dry["indexed_sources"] == 0
            counts = dry["estimate"]["counts"]
            assert counts["sources"] == 3 and counts["images"] >= 3  # the image and two PDF pages
            assert counts["text_tokens"] > 1000 and counts["segments"] > 5
            assert dry["estimate"]["bedrock_usd"] > 0 and dry["estimate"]["prices_as_of"]
            await call(client, "index_content", sources=[str(folder)], index="cost")
            embedded = fake.count("invoke_model")
            assert embedded == counts["segments"], "the dry run counted exactly what the real run embeds"
            again = await call(client, "index_content", sources=[str(folder)], index="cost", dry_run=True)
            assert again["skipped_unchanged"] == 3 and again["estimate"]["counts"]["segments"] == 0


async def test_embedding_answers_at_once_while_the_model_downloads(tmp_path: Path, tiny_model: Path) -> None:
    import threading

    from nova_mcp_server.app import assemble
    from nova_mcp_server.model_download import ModelDownloader

    core = local_core(tmp_path, tiny_model)
    started, release = threading.Event(), threading.Event()

    def blocking_download(kind: str, name: str, cache: Path, tqdm_class: type, cache_only: bool) -> Path:
        started.set()
        release.wait(60)
        return cache

    downloader = ModelDownloader(core.embedder.family, tmp_path / "cache", download=blocking_download)  # type: ignore[attr-defined]
    app = assemble(core.settings, core.embedder, core.store, core.ingest, downloader=downloader)
    try:
        async with Client(build_server(app, poll_seconds=0)) as client:  # the lifespan starts the download
            assert started.wait(30)
            result = await client.call_tool("embed_content", {"contents": [{"text": "hello"}]})
            text = result.content[0].text
            assert result.is_error and "is downloading" in text and "% done" in text, text
            caps = (await client.read_resource("nova://capabilities")).contents[0].text
            assert '"state": "downloading"' in caps
    finally:
        release.set()
    assert downloader.wait(30) and downloader.status().state == "ready"


async def test_argument_completion_offers_what_exists(tmp_path: Path, tiny_model: Path) -> None:
    from mcp.types import PromptReference, ResourceTemplateReference

    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", texts=["one note"], index="notes-a")
        await call(client, "index_content", texts=["two notes"], index="notes-b")
        await call(client, "index_content", texts=["other"], index="misc")
        job = (await call(client, "index_content", texts=["later"], index="misc", wait=False))["jobs"][0]
        by_index = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="nova://indexes/{name}"),
            {"name": "name", "value": "notes"},
        )
        assert by_index.completion.values == ["notes-a", "notes-b"]
        jobs = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="nova://jobs/{job_id}"),
            {"name": "job_id", "value": "job-"},
        )
        assert job in jobs.completion.values
        keys = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="nova://indexes/{name}/items/{key}"),
            {"name": "key", "value": ""},
            context_arguments={"name": "misc"},
        )
        assert sorted(keys.completion.values) == sorted(v.key for v in core.store.list_vectors("misc").vectors)
        prompt = await client.complete(
            PromptReference(type="ref/prompt", name="answer_with_citations"), {"name": "index", "value": "m"}
        )
        assert prompt.completion.values == ["misc"]


async def test_dry_run_on_the_local_default_through_the_mcp_client(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    (tmp_path / "notes.txt").write_text("a note about the pump " * 40)
    async with Client(build_server(core, poll_seconds=0)) as client:
        dry = await call(
            client, "index_content", sources=[str(tmp_path / "notes.txt")], index="local-dry", dry_run=True
        )
        assert dry["dry_run"] is True and dry["estimate"]["backend"] == "local"
        assert dry["estimate"]["counts"]["segments"] >= 1 and dry["estimate"]["total_once_usd"] == 0
        assert core.store.list_indexes() == [], "a dry run creates nothing"
