"""An index_content whose sources name no file at all (an empty folder, include patterns that keep nothing) is
an error that says so, not a success with every count at zero that an agent reads as "done"."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio


async def test_sources_that_name_no_file_are_an_error_that_says_why(tmp_path: Path, tiny_model: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("green grass grows in spring")
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        nothing = await client.call_tool("index_content", {"sources": [str(empty)], "index": "found"})
        text = nothing.content[0].text
        assert nothing.is_error, text
        assert "no file" in text and str(empty) in text and "check" in text.lower()

        kept_none = await client.call_tool(
            "index_content", {"sources": [str(docs)], "include": ["*.pdf"], "index": "found"}
        )
        text = kept_none.content[0].text
        assert kept_none.is_error, text
        assert "no file" in text and "*.pdf" in text
        assert core.store.list_indexes() == []  # the failed calls created nothing

        some = await client.call_tool("index_content", {"sources": [str(docs), str(empty)], "index": "found"})
        assert not some.is_error and some.structured_content["indexed_sources"] == 1
        again = await client.call_tool("index_content", {"sources": [str(docs)], "index": "found"})
        assert not again.is_error and again.structured_content["skipped_unchanged"] == 1  # unchanged is not nothing
