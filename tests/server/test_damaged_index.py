"""One damaged index (its files overwritten) must not take the others down, and must be removable."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("damaged_file", ["index.sqlite", "index.json"])
async def test_a_damaged_index_is_named_the_others_work_and_delete_index_removes_it(
    tmp_path: Path, tiny_model: Path, damaged_file: str
) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        for name in ("docs", "notes"):
            done = await client.call_tool("index_content", {"texts": [f"a red car in {name}"], "index": name})
            assert not done.is_error, done.content[0].text
    (tmp_path / "data" / "store" / "docs" / damaged_file).write_bytes(b"\x00garbage" * 512)

    core = local_core(tmp_path, tiny_model)  # a restart: nothing of the index is cached
    async with Client(build_server(core, poll_seconds=0)) as client:
        listed = await client.call_tool("list_indexes", {})
        assert not listed.is_error, listed.content[0].text
        assert [i["name"] for i in listed.structured_content["indexes"]] == ["notes"]
        search = await client.call_tool("semantic_search", {"query": "red car", "index": "docs"})
        text = search.content[0].text
        assert search.is_error and "Index 'docs' is damaged" in text and "delete_index" in text
        assert "internal error" not in text
        other = await client.call_tool("semantic_search", {"query": "red car", "index": "notes"})
        assert not other.is_error and other.structured_content["hits"]
        deleted = await client.call_tool("delete_index", {"name": "docs"})
        assert not deleted.is_error, deleted.content[0].text
        again = await client.call_tool("index_content", {"texts": ["a red car again"], "index": "docs"})
        assert not again.is_error, again.content[0].text
        assert (await client.call_tool("semantic_search", {"query": "red car", "index": "docs"})).structured_content[
            "hits"
        ]


async def test_windows_device_names_are_refused_as_index_names_on_every_system(
    tmp_path: Path, tiny_model: Path
) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        for name in ("con", "nul", "aux", "com1", "lpt9", "prn.docs"):
            refused = await client.call_tool("create_index", {"name": name})
            assert refused.is_error and "device name on Windows" in refused.content[0].text, name
        assert not (await client.call_tool("create_index", {"name": "con-docs"})).is_error
