"""The MCP surface through a real in-memory client session, on the embedded default with the tiny CLIP model."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.media import make_image
from mcp import Client, MCPError
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio

WRITERS = {"index_content", "create_index", "delete_index", "delete_content"}
READERS = {"embed_content", "semantic_search", "fetch", "describe_index", "doctor", "list_indexes", "job_status"}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "fruit.txt").write_text("apples and bananas are sweet fruit from the market")
    (folder / "notes" / "cars.md").write_text("# Cars\n\nfast cars race on the track every sunday")
    (folder / "skip.log").write_text("this file is excluded by the glob")
    make_image(folder / "red.png", "png", (250, 10, 10), (32, 32))
    make_image(folder / "blue.jpg", "jpeg", (10, 10, 250), (32, 32))
    return folder


@pytest.fixture
def server(tmp_path: Path, tiny_model: Path) -> Any:
    return build_server(local_core(tmp_path, tiny_model))


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def call_error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def test_tools_resources_and_prompts_as_a_client_sees_them(server: Any) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == WRITERS | READERS
        assert tools["semantic_search"].annotations.read_only_hint is True
        assert tools["delete_index"].annotations.destructive_hint is True
        assert tools["delete_content"].annotations.idempotent_hint is True
        assert tools["index_content"].annotations.read_only_hint is False
        assert "ctx" not in tools["semantic_search"].input_schema["properties"]
        assert tools["semantic_search"].input_schema["properties"]["top_k"]["maximum"] == 100
        assert tools["semantic_search"].output_schema["title"] == "SearchResult"
        resources = {r.uri for r in (await client.list_resources()).resources}
        assert resources == {"nova://capabilities", "nova://indexes", "nova://jobs"}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {
            "nova://indexes/{name}",
            "nova://indexes/{name}/items",
            "nova://indexes/{name}/items/{key}",
            "nova://jobs/{job_id}",
        }
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"answer_with_citations", "find_in_video"}
        caps = json.loads((await client.read_resource("nova://capabilities")).contents[0].text)
        assert caps["backend"] == "local" and caps["dimension"] == 16 and caps["model_status"] == "not loaded yet"


async def test_read_only_mode_removes_every_writer(tmp_path: Path, tiny_model: Path) -> None:
    server = build_server(local_core(tmp_path, tiny_model, read_only=True))
    async with Client(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == READERS


async def test_index_search_reindex_and_delete(server: Any, corpus: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(server) as client:
        result = await client.call_tool(
            "index_content",
            {"sources": [str(corpus)], "index": "docs", "exclude": ["*.log"], "metadata": {"team": "a"}},
            progress_callback=on_progress,
        )
        report = result.structured_content
        assert not result.is_error, result.content
        assert report["indexed_sources"] == 4 and report["failed"] == [] and report["skipped_unchanged"] == 0
        assert seen and seen[-1][0] == seen[-1][1] == 4

        again = await call(client, "index_content", sources=[str(corpus)], index="docs", exclude=["*.log"])
        assert again["indexed_sources"] == 0 and again["skipped_unchanged"] == 4

        hits = (await call(client, "semantic_search", query="red", index="docs", top_k=3, detail="full"))["hits"]
        assert hits[0]["modality"] == "image" and hits[0]["source"].endswith("red.png")
        assert hits[0]["metadata"] == {"team": "a"}
        compact = (await call(client, "semantic_search", query="red", index="docs", top_k=3))["hits"]
        assert [h["key"] for h in compact] == [h["key"] for h in hits] and "metadata" not in compact[0]
        item = json.loads((await client.read_resource(hits[0]["uri"])).contents[0].text)
        assert item["metadata"]["source"].endswith("red.png")

        text_hits = (
            await call(client, "semantic_search", query="sweet apples", index="docs", top_k=2, modality=["text"])
        )["hits"]
        assert text_hits[0]["source"].endswith("fruit.txt")
        assert {h["modality"] for h in text_hits} == {"text"}
        assert text_hits[0]["char_start"] == 0 and "apples" in text_hits[0]["snippet"]

        filtered = (
            await call(client, "semantic_search", query="red", index="docs", filter={"format": {"$eq": "jpeg"}})
        )["hits"]
        assert [h["source"].rsplit("/", 1)[1] for h in filtered] == ["blue.jpg"]

        (corpus / "notes" / "fruit.txt").write_text("pears are green")
        changed = await call(client, "index_content", sources=[str(corpus / "notes")], index="docs")
        assert changed["indexed_sources"] == 1 and changed["skipped_unchanged"] == 1

        deleted = await call(client, "delete_content", source=str(corpus / "red.png"), index="docs")
        assert deleted["deleted"] == 1
        hits = (await call(client, "semantic_search", query="red", index="docs", top_k=10))["hits"]
        assert all(not h["source"].endswith("red.png") for h in hits)

        listing = (await call(client, "list_indexes"))["indexes"]
        assert [(i["name"], i["vector_count"], i["provider"]) for i in listing] == [("docs", 3, "local")]
        await call(client, "delete_index", name="docs")
        assert (await call(client, "list_indexes"))["indexes"] == []


async def test_image_query_and_image_content_in_results(server: Any, corpus: Path, tmp_path: Path) -> None:
    probe = make_image(tmp_path / "probe.webp", "webp", (240, 20, 20), (16, 16))
    async with Client(server) as client:
        await call(client, "index_content", sources=[str(corpus)], index="pics", include=["*.png", "*.jpg"])
        result = await client.call_tool(
            "semantic_search", {"image": {"path": str(probe)}, "index": "pics", "top_k": 2, "include_images": True}
        )
        assert not result.is_error, result.content[0].text
        hits = result.structured_content["hits"]
        assert hits[0]["source"].endswith("red.png") and result.structured_content["purpose"] == "GENERIC_RETRIEVAL"
        images = [block for block in result.content if block.type == "image"]
        assert len(images) == 2 and images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data)[:8] == b"\x89PNG\r\n\x1a\n"


async def test_embed_content_preview_similarity_and_handle_search(server: Any, corpus: Path) -> None:
    async with Client(server) as client:
        out = await call(
            client,
            "embed_content",
            contents=[{"text": "red"}, {"path": str(corpus / "red.png")}, {"text": "fast cars"}],
        )
        first = out["embeddings"][0]
        assert first["dimension"] == 16 and first["vector"] is None and len(first["preview"]) == 8
        assert abs(first["norm"] - 1.0) < 1e-3
        sim = out["similarity"]
        assert len(sim) == 3 and abs(sim[0][0] - 1.0) < 1e-4 and sim[0][1] > sim[0][2]
        full = await call(client, "embed_content", contents=[{"text": "red"}], include_vector=True)
        assert len(full["embeddings"][0]["vector"]) == 16

        await call(client, "index_content", sources=[str(corpus)], index="handles", exclude=["*.log"])
        hits = (await call(client, "semantic_search", vector_handle=first["handle"], index="handles", top_k=1))["hits"]
        assert hits[0]["source"].endswith("red.png")


async def test_bad_input_is_a_clear_tool_error_and_changes_nothing(server: Any, corpus: Path, tmp_path: Path) -> None:
    async with Client(server) as client:
        text = await call_error(client, "semantic_search", query="x", index="nope")
        assert "does not exist" in text and "list_indexes" in text
        await call(client, "index_content", texts=["hello world"], index="docs")
        assert "top_k" in await call_error(client, "semantic_search", query="x", index="docs", top_k=101)
        assert "$regex" in await call_error(
            client, "semantic_search", query="x", index="docs", filter={"a": {"$regex": "x"}}
        )
        assert "non-filterable" in (
            await call_error(client, "semantic_search", query="x", index="docs", filter={"snippet": "x"})
        )
        assert "exactly one" in await call_error(client, "semantic_search", index="docs")
        assert "reserved" in await call_error(
            client, "index_content", texts=["a"], index="docs", metadata={"source": "x"}
        )
        assert "Invalid index name" in await call_error(client, "index_content", texts=["a"], index="A_B")
        outside = tmp_path.parent / "outside.txt"
        outside.write_text("secret")
        report = await call_error(client, "index_content", sources=[str(outside)], index="docs")
        assert "Nothing was indexed" in report and "allowed" in report
        assert "base64" in await call_error(client, "embed_content", contents=[{"data": "!!!", "format": "png"}])
        listing = (await call(client, "list_indexes"))["indexes"]
        assert [(i["name"], i["vector_count"]) for i in listing] == [("docs", 1)]
        with pytest.raises(MCPError):
            await client.read_resource("nova://jobs/job-missing")


async def test_first_embedding_call_says_the_model_is_loading(server: Any) -> None:
    messages: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)

    async with Client(server) as client:
        caps = json.loads((await client.read_resource("nova://capabilities")).contents[0].text)
        assert caps["model_status"] == "not loaded yet"
        result = await client.call_tool(
            "embed_content", {"contents": [{"text": "hello"}]}, progress_callback=on_progress
        )
        assert not result.is_error
        assert messages == ["loading the local embedding model (first use)"]
        await client.call_tool("embed_content", {"contents": [{"text": "again"}]}, progress_callback=on_progress)
        assert len(messages) == 1
        caps = json.loads((await client.read_resource("nova://capabilities")).contents[0].text)
        assert caps["model_status"] == "ready"


async def test_new_metadata_on_an_unchanged_source_is_written(server: Any, corpus: Path) -> None:
    fruit = str(corpus / "notes" / "fruit.txt")
    async with Client(server) as client:
        await call(client, "index_content", sources=[fruit], index="meta", metadata={"team": "a"})
        same = await call(client, "index_content", sources=[fruit], index="meta", metadata={"team": "a"})
        assert same["skipped_unchanged"] == 1
        moved = await call(client, "index_content", sources=[fruit], index="meta", metadata={"team": "b"})
        assert moved["indexed_sources"] == 1 and moved["skipped_unchanged"] == 0
        hits = (
            await call(client, "semantic_search", query="apples", index="meta", filter={"team": "b"}, detail="full")
        )["hits"]
        assert len(hits) == 1 and hits[0]["metadata"] == {"team": "b"}
        (corpus / "notes" / "fruit.txt").write_text("apples, now with cherries")
        changed = await call(client, "index_content", sources=[fruit], index="meta")
        assert changed["indexed_sources"] == 1
        hits = (await call(client, "semantic_search", query="cherries", index="meta", detail="full"))["hits"]
        assert hits[0]["metadata"] == {"team": "b"}, "a call without metadata keeps the source's metadata"
