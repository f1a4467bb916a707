"""Arguments of the wrong JSON type or out of range, through a real MCP client: the answer names the argument,
says what it takes and what was sent in JSON words (null, a string, an object), and never shows pydantic's
report (`input_type=NoneType`, `...Arguments`, a link to errors.pydantic.dev) or Python type names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio

PYTHON_WORDS = re.compile(
    r"NoneType|input_type|input_value|validation error|pydantic|Arguments\b|\bdict\b|\blist\b|\bstr\b|\bint\b"
    r"|\bfloat\b|\bbool\b|dict_type|list_type|literal\[|\bNone\b|\bTrue\b|\bFalse\b"
)

# (tool, arguments, what the answer must say: a regex over the text)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("semantic_search", {"query": "x", "top_k": 0}, r"top_k must be at least 1 \(got 0\)"),
    ("semantic_search", {"query": "x", "top_k": 101}, r"top_k must be at most 100 \(got 101\)"),
    ("semantic_search", {"query": "x", "top_k": None}, r"top_k must be an integer \(got null\)"),
    ("semantic_search", {"query": "x", "top_k": 1.5}, r"top_k must be a whole number \(got 1.5\)"),
    ("semantic_search", {"query": "x", "filter": "genre"}, r"filter must be an object \(got the string \"genre\"\)"),
    ("semantic_search", {"query": "x", "filter": [1]}, r"filter must be an object \(got an array\)"),
    ("semantic_search", {"query": "x", "include_images": 5}, r"include_images must be true or false, or 'sheet'"),
    ("semantic_search", {"query": "x", "mode": "fuzzy"}, r"mode must be one of 'vector', 'keyword' or 'hybrid'"),
    ("index_content", {"sources": "/a.txt"}, r"sources must be an array \(got the string \"/a.txt\"\)"),
    ("index_content", {"texts": ["a"], "include": None}, r"include must be an array \(got null\)"),
    ("index_content", {"texts": ["a"], "metadata": [1, 2]}, r"metadata must be an object \(got an array\)"),
    ("index_content", {"texts": [1]}, r"texts\[0\] must be a string \(got 1\)"),
    ("fetch", {"item": None}, r"item must be a string \(got null\)"),
    ("fetch", {"item": "k", "context": 11}, r"context must be at most 10"),
    ("fetch", {}, r"item is required"),
    ("delete_index", {"name": None}, r"name must be a string \(got null\)"),
    ("embed_content", {"contents": []}, r"contents must have at least 1 item"),
    ("embed_content", {"contents": [{}]}, r"contents\[0\]: give exactly one of text, path, s3_uri or data"),
    ("embed_content", {"contents": [{"text": "a"}], "purpose": "BOGUS"}, r"purpose must be one of 'GENERIC_INDEX'"),
    ("embed_content", {"contents": [{"text": "a"}], "dimension": "big"}, r"dimension must be an integer"),
]


async def test_wrong_arguments_are_answered_in_json_words(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    problems = []
    async with Client(build_server(core, poll_seconds=0)) as client:
        for tool, args, says in CASES:
            result = await client.call_tool(tool, args)
            text = " ".join(block.text for block in result.content if block.type == "text")
            label = f"{tool}({args})"
            if not result.is_error:
                problems.append(f"{label}: not an error: {text[:200]}")
                continue
            if not re.search(says, text):
                problems.append(f"{label}: does not say /{says}/: {text}")
            if PYTHON_WORDS.search(text):
                problems.append(f"{label}: speaks Python or pydantic: {text}")
            if "call it again" not in text.lower():
                problems.append(f"{label}: does not say what to do: {text}")
    assert problems == [], "\n".join(problems)


async def test_a_tool_without_arguments_says_so(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("list_indexes", {"index": "docs"})
    text = result.content[0].text
    assert result.is_error
    assert "takes no arguments" in text, text
    assert "It takes: ." not in text


async def test_an_empty_item_says_what_to_give(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await client.call_tool("index_content", {"texts": ["green grass"], "index": "docs"})
        for tool, args in (("fetch", {"item": " ", "index": "docs"}), ("fetch", {"item": ""})):
            result = await client.call_tool(tool, args)
            text = result.content[0].text
            assert result.is_error and "no item" in text.lower() and "uri" in text and "key" in text, text


async def test_a_writer_called_on_a_read_only_server_says_why_it_is_missing(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model, read_only=True)
    async with Client(build_server(core, poll_seconds=0)) as client:
        for tool, args in (("index_content", {"texts": ["x"]}), ("delete_index", {"name": "docs"})):
            result = await client.call_tool(tool, args)
            text = result.content[0].text
            assert result.is_error and "read-only" in text and "NOVA_MCP_READ_ONLY" in text, text
        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error and "read-only" not in unknown.content[0].text
    assert core.store.list_indexes() == []


async def test_the_withheld_writers_are_exactly_the_ones_a_writable_server_adds(
    tmp_path: Path, tiny_model: Path
) -> None:
    from nova_mcp_server.server.tools import WRITE_TOOLS

    names = {}
    for read_only in (False, True):
        core = local_core(tmp_path / str(read_only), tiny_model, read_only=read_only)
        async with Client(build_server(core, poll_seconds=0)) as client:
            names[read_only] = {t.name for t in (await client.list_tools()).tools}
    assert names[False] - names[True] == set(WRITE_TOOLS)
