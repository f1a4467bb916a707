"""Keyword and hybrid search on the local store: FTS5 rows written with the vectors, found where the tiny
model cannot, filtered like vector hits, removed with their vectors, and built for indexes that predate them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server
from nova_mcp_server.stores.local.keywords import TABLE

pytestmark = pytest.mark.anyio
FILLER = "the weather was mild and the river ran slowly past the old mill"


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


def corpus() -> list[str]:
    texts = [f"note {i}: {FILLER} on day {i}" for i in range(30)]
    texts[17] = f"note 17: {FILLER}; the pump reported error qzv4471 twice"
    return texts


async def test_hybrid_finds_an_exact_term_the_model_cannot(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    assert core.search.keyword_available
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", texts=corpus(), index="hybrid", metadata={"team": "ops"})
        keyword = await call(client, "semantic_search", query="qzv4471", index="hybrid", mode="keyword", top_k=3)
        assert keyword["mode"] == "keyword" and [h["snippet"] for h in keyword["hits"]][0].endswith("qzv4471 twice")
        assert len(keyword["hits"]) == 1, "only one text holds the word"
        default = await call(client, "semantic_search", query="error qzv4471", index="hybrid", top_k=3)
        assert default["mode"] == "hybrid", "hybrid is the local default for text queries"
        assert "qzv4471" in default["hits"][0]["snippet"]
        assert all(isinstance(h["score"], float) for h in default["hits"]), "every hit keeps its cosine score"
        filtered = await call(
            client, "semantic_search", query="qzv4471", index="hybrid", mode="keyword", filter={"team": "other"}
        )
        assert filtered["hits"] == []


async def test_keyword_rows_follow_their_vectors(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    doc = tmp_path / "pump.txt"
    doc.write_text("the pump reported error qzv4471")
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(doc)], index="follow")
        assert (
            len((await call(client, "semantic_search", query="qzv4471", index="follow", mode="keyword"))["hits"]) == 1
        )
        doc.write_text("the pump is fine now")  # a changed source replaces its words too
        await call(client, "index_content", sources=[str(doc)], index="follow")
        assert (await call(client, "semantic_search", query="qzv4471", index="follow", mode="keyword"))["hits"] == []
        assert len((await call(client, "semantic_search", query="fine", index="follow", mode="keyword"))["hits"]) == 1
        await call(client, "delete_content", source=str(doc), index="follow")
        assert (await call(client, "semantic_search", query="fine", index="follow", mode="keyword"))["hits"] == []


async def test_an_index_from_before_the_keyword_table_gets_one(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", texts=corpus(), index="older")
    core.store.close()
    db = sqlite3.connect(tmp_path / "data" / "store" / "older" / "index.sqlite")
    db.execute(f"DROP TABLE {TABLE.fts}")
    db.execute(f"DROP TABLE {TABLE.keys}")
    db.commit()
    db.close()
    again = local_core(tmp_path, tiny_model)
    async with Client(build_server(again, poll_seconds=0)) as client:
        hits = (await call(client, "semantic_search", query="qzv4471", index="older", mode="keyword"))["hits"]
        assert len(hits) == 1 and "qzv4471" in hits[0]["snippet"]
