"""fetch's `image` field says what the attached picture shows: when no picture could be cut (the file was
rewritten into something undecodable since indexing), there is no `image` claim, only the note saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.media import make_image, make_pdf
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio


async def test_no_picture_means_no_image_claim(tmp_path: Path, tiny_model: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_image(docs / "red.png", "png", (250, 10, 10), (32, 32))
    make_pdf(docs / "deck.pdf", ["page one"])
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        indexed = await client.call_tool("index_content", {"sources": [str(docs)], "index": "pics"})
        assert not indexed.is_error, indexed.content[0].text
        hits = await client.call_tool("semantic_search", {"query": "red", "index": "pics", "top_k": 10})
        by_modality = {h["modality"]: h for h in hits.structured_content["hits"]}

        shown = await client.call_tool("fetch", {"item": by_modality["image"]["uri"], "include_image": True})
        assert [b.type for b in shown.content] == ["text", "image"]
        assert shown.structured_content["image"] == f"the image {docs / 'red.png'}"

        (docs / "red.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # rewritten: no longer decodable
        (docs / "deck.pdf").write_bytes(b"%PDF-1.4 broken")
        for modality in ("image", "document"):
            gone = await client.call_tool("fetch", {"item": by_modality[modality]["uri"], "include_image": True})
            assert not gone.is_error
            assert [b.type for b in gone.content] == ["text"]
            assert "image" not in gone.structured_content, gone.structured_content
            assert gone.structured_content["note"].startswith("no picture")
