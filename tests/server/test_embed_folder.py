"""embed_content embeds single items (at most 32): a folder or an S3 prefix is refused with the way to
index one, instead of quietly embedding the first segment of every file under it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio


async def test_a_folder_given_to_embed_content_is_refused_with_the_way_forward(
    tmp_path: Path, tiny_model: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(40):
        (folder / f"n{n}.txt").write_text(f"note number {n}")
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("embed_content", {"contents": [{"path": str(folder)}]})
        text = result.content[0].text
        assert result.is_error, text[:300]
        assert str(folder) in text and "folder" in text and "index_content" in text, text
        one = await client.call_tool("embed_content", {"contents": [{"path": str(folder / "n1.txt")}]})
        assert not one.is_error and len(one.structured_content["embeddings"]) == 1
