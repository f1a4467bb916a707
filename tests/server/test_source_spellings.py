"""How agents spell local sources: file:// URIs as clients write them (percent-encoded, `localhost`), and
relative paths, which resolve against a working directory the agent cannot see."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio


async def test_file_uris_are_decoded_like_the_clients_roots(tmp_path: Path, tiny_model: Path) -> None:
    docs = tmp_path / "My Docs"
    docs.mkdir()
    (docs / "café notes.txt").write_text("tidal power comes from the moon")
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        for uri in ((docs / "café notes.txt").as_uri(), "file://localhost" + (docs / "café notes.txt").as_uri()[7:]):
            assert "%20" in uri
            result = await client.call_tool("index_content", {"sources": [uri], "index": "uris"})
            assert not result.is_error, result.content[0].text
            report = result.structured_content
            assert report["indexed_sources"] + report["skipped_unchanged"] == 1
        hits = await client.call_tool("semantic_search", {"query": "tidal power", "index": "uris"})
        assert hits.structured_content["hits"][0]["source"] == str(docs / "café notes.txt")
        remote = await client.call_tool("index_content", {"sources": ["file://server/share/a.txt"], "index": "uris"})
        assert remote.is_error and "remote host" in remote.content[0].text


async def test_a_relative_path_is_told_to_be_absolute(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("index_content", {"sources": ["notes/a.txt"], "index": "rel"})
    text = result.content[0].text
    assert result.is_error and "relative" in text and "absolute path" in text, text


async def test_a_web_url_is_told_what_sources_are_read(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        for url in ("https://example.com/paper.pdf", "ftp://example.com/a.txt"):
            result = await client.call_tool("index_content", {"sources": [url], "index": "urls"})
            text = result.content[0].text
            assert result.is_error and "not read" in text and "s3://" in text and "relative" not in text, text
