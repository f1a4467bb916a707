"""Bad input through a real MCP client: every call is a clear tool error and no index changes.

Each case names what must be said about the problem (`wrong`) and what to do about it (`todo`), both as
regular expressions over the error text. The index state (tool-level listing, item resources and the
store's own keys, vectors and metadata) is compared before and after every case, so a failed call that
writes, re-writes or creates anything is caught. Cases run in one session per group, and every problem
is collected before failing, so one regression does not hide the others.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import (
    make_image,
    make_mislabelled,
    make_pdf,
    make_png_bomb,
    make_zero_byte,
    truncate,
)
from mcp import Client
from support import local_core, nova_core

from nova_mcp_server.app import App
from nova_mcp_server.errors import InvalidInput, LimitExceeded
from nova_mcp_server.server import build_server
from nova_mcp_server.stores.base import IndexSpec, VectorRecord
from nova_mcp_server.stores.local import LocalVectorStore

pytestmark = pytest.mark.anyio


@dataclass
class Case:
    tool: str
    args: dict[str, Any]
    wrong: str  # regex: says what was wrong
    todo: str = ""  # regex: says what to do ("" when the first one already does)
    label: str = field(default="")


async def snapshot(client: Client, core: App) -> dict[str, Any]:
    """Everything a failed call must leave alone: listing, item resources, and every stored key/vector/metadata."""
    listing = (await client.call_tool("list_indexes", {})).structured_content["indexes"]
    state: dict[str, Any] = {"listing": listing, "items": {}, "store": {}}
    for entry in listing:
        name = entry["name"]
        items = json.loads((await client.read_resource(f"nova://indexes/{name}/items")).contents[0].text)
        state["items"][name] = items
        for item in items["items"][:3]:
            one = await client.read_resource(item["uri"])
            state["items"][f"{name}/{item['key']}"] = json.loads(one.contents[0].text)
        page = core.store.list_vectors(name, max_results=1000, return_data=True, return_metadata=True)
        assert page.next_token is None
        state["store"][name] = sorted((v.key, v.data, json.dumps(v.metadata, sort_keys=True)) for v in page.vectors)
    return state


async def run_cases(client: Client, core: App, cases: list[Case]) -> list[str]:
    """Call every case; return a description of each one that was not a clear error or changed the state."""
    problems: list[str] = []
    before = await snapshot(client, core)
    assert before["listing"], "the fixture must index something first"
    for case in cases:
        label = case.label or f"{case.tool}({json.dumps(case.args)[:90]})"
        result = await client.call_tool(case.tool, case.args)
        text = " ".join(block.text for block in result.content if block.type == "text")
        if not result.is_error:
            problems.append(f"{label}: not an error: {text[:200]}")
        else:
            if text.strip() == f"Error executing tool {case.tool}":
                problems.append(f"{label}: crashed (the server caught an unexpected exception)")
            if not re.search(case.wrong, text, re.I | re.S):
                problems.append(f"{label}: does not say /{case.wrong}/: {text[:300]}")
            if case.todo and not re.search(case.todo, text, re.I | re.S):
                problems.append(f"{label}: does not say what to do /{case.todo}/: {text[:300]}")
        after = await snapshot(client, core)
        if after != before:
            problems.append(f"{label}: changed the index state")
            before = after
    return problems


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "good.txt").write_text("green grass grows in spring")
    make_image(folder / "red.png", "png", (250, 10, 10), (32, 32))
    make_zero_byte(folder / "zero.txt")
    make_zero_byte(folder / "zero.png")
    truncate(make_image(folder / "cut.png", "png", (0, 0, 250), (64, 64)), 0.5)
    truncate(make_image(folder / "cut.jpg", "jpeg", (0, 250, 0), (64, 64)), 0.3)
    truncate(make_pdf(folder / "cut.pdf", ["page one", "page two"]), 0.5)
    (folder / "photo.png").write_bytes(b"\x00\x01\x02garbage that is no image at all\xff\xfe" * 10)
    make_mislabelled(folder / "notes.txt")  # PNG bytes under a .txt name: indexed as the image it is
    (folder / "archive.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    (folder / "tool.exe").write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 4)
    (folder / "doc.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    make_png_bomb(folder / "bomb.png")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text("the launch code is 0000")
    os.symlink(outside / "secret.txt", folder / "link-out.txt")
    os.symlink(outside, folder / "dir-out")
    os.symlink(folder / "missing-target", folder / "dangling.txt")
    return folder


@pytest.fixture
async def local(tmp_path: Path, tiny_model: Path, files: Path) -> Any:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        first = await client.call_tool(
            "index_content", {"sources": [str(files / "good.txt"), str(files / "red.png")], "index": "docs"}
        )
        assert not first.is_error and first.structured_content["indexed_sources"] == 2, first.content
        await client.call_tool("index_content", {"texts": ["blue sky over the sea"], "index": "docs"})
        yield client, core


async def test_search_arguments(local: Any) -> None:
    client, core = local
    q = {"query": "grass", "index": "docs"}
    cases = [
        Case("semantic_search", {"query": "x", "index": "nope"}, "'nope' does not exist", "list_indexes"),
        Case("semantic_search", {"query": "x", "index": "Bad_Name"}, "invalid index name", "3-63 characters"),
        Case("semantic_search", {**q, "top_k": 0}, "top_k", "at least 1"),
        Case("semantic_search", {**q, "top_k": 101}, "top_k", "at most 100"),
        Case("semantic_search", {**q, "top_k": "ten"}, "top_k", "must be an integer"),
        Case("semantic_search", {"index": "docs"}, "exactly one of query", ""),
        Case("semantic_search", {**q, "vector_handle": "vec-0"}, "exactly one of query", ""),
        Case("semantic_search", {"query": "   ", "index": "docs"}, "query is empty", "give some text"),
        Case("semantic_search", {"vector_handle": "vec-nope", "index": "docs"}, "no vector with handle", "embed"),
        Case("semantic_search", {**q, "modality": ["smell"]}, "modality", "one of 'text'"),
        Case("semantic_search", {**q, "filter": {"page": {"$regex": "a"}}}, r"unknown operator '\$regex'", r"\$eq"),
        Case("semantic_search", {**q, "filter": {"page": {"$in": []}}}, r"\$in", "non-empty array"),
        Case("semantic_search", {**q, "filter": {"page": {"$gt": "3"}}}, r"\$gt", "takes a number"),
        Case("semantic_search", {**q, "filter": {"$and": {"page": 1}}}, r"\$and", "array of filter objects"),
        Case("semantic_search", {**q, "filter": {"$or": []}}, r"\$or", "non-empty array"),
        Case("semantic_search", {**q, "filter": {"page": {"sub": {"$eq": 1}}}}, "page", r"\$eq"),
        Case("semantic_search", {**q, "filter": {"page": {"$eq": 1, "$foo": 2}}}, r"\$foo", r"operators are"),
        Case("semantic_search", {**q, "filter": {"$not": {"page": 1}}}, r"\$not", r"\$and"),
        Case("semantic_search", {**q, "filter": {"page": {"$exists": "yes"}}}, r"\$exists", "true or false|boolean"),
        Case("semantic_search", {**q, "filter": {"snippet": "x"}}, "non-filterable", "cannot be used in filters"),
        Case("semantic_search", {**q, "filter": ["page", 1]}, "filter", "object|dictionary"),
        Case("semantic_search", {"query": "x" * 10_000_000, "index": "docs"}, "10,000,000 characters", "passage"),
        Case("semantic_search", {**q, "image": {"text": "not an image"}}, "exactly one of query", ""),
    ]
    assert await run_cases(client, core, cases) == []


async def test_metadata_and_index_names(local: Any) -> None:
    client, core = local
    t = {"texts": ["some new text"], "index": "docs"}
    cases = [
        Case("index_content", {**t, "metadata": {"k": "x" * 3000}}, "3,00[0-9] bytes", "shorten"),
        Case("index_content", {**t, "metadata": {"k": "y" * 41_000}}, "41,0[0-9]{2} bytes", "shorten"),
        Case("index_content", {**t, "metadata": {f"k{i}": i for i in range(51)}}, "51 keys", "drop keys"),
        Case("index_content", {**t, "metadata": {f"k{i}": i for i in range(35)}}, "35 keys", "drop keys"),
        Case("index_content", {**t, "metadata": {"source": "mine"}}, r"reserved key\(s\) \['source'\]", "rename"),
        Case("index_content", {**t, "metadata": {"snippet": "x", "page": 1}}, "reserved", "rename"),
        Case("index_content", {**t, "metadata": {"$x": 1}}, r"key '\$x' is invalid", "not starting with"),
        Case("index_content", {**t, "metadata": {"": 1}}, "invalid", "non-empty name"),
        Case("index_content", {**t, "metadata": {"k": {"nested": 1}}}, "has an object", "a string, a number"),
        Case("index_content", {**t, "metadata": {"k": [[1]]}}, "has a nested array", "a string, a number"),
        Case("index_content", {**t, "metadata": {"k": []}}, "empty array", "at least one value"),
        Case("index_content", {**t, "metadata": {"k": None}}, "has null", "a string, a number, a boolean"),
        Case("index_content", {**t, "index": "A_B"}, "invalid index name", "lowercase"),
        Case("index_content", {**t, "index": "ab"}, "invalid index name", "3-63"),
        Case("index_content", {**t, "index": "x" * 64}, "invalid index name", "3-63"),
        Case("index_content", {"index": "docs"}, "at least one path", ""),
        Case("create_index", {"name": "-bad"}, "invalid index name", "starting and ending"),
        Case("delete_index", {"name": "nope"}, "'nope' does not exist", "list_indexes"),
        Case("delete_content", {"source": "/never/indexed.txt", "index": "docs"}, "holds no vectors", "source"),
        Case("delete_content", {"source": "/x", "index": "nope"}, "does not exist", "list_indexes"),
        Case("job_status", {"job_id": "job-nope"}, "no job 'job-nope'", "without an id"),
    ]
    assert await run_cases(client, core, cases) == []


async def test_contents_files_and_uris(local: Any, files: Path, tmp_path: Path) -> None:
    client, core = local

    def idx(*sources: str, index: str = "docs") -> dict[str, Any]:
        return {"sources": list(sources), "index": index}

    f = files
    huge = "lorem ipsum dolor " * 600_000  # 10.8 MB
    cases = [
        # Empty and huge text: empty is refused, past 1 MiB inline text must be a file.
        Case("index_content", {"texts": [""], "index": "docs"}, "empty text", "non-whitespace"),
        Case("index_content", {"texts": [" \n\t "], "index": "fresh"}, "empty text", "non-whitespace"),
        Case("embed_content", {"contents": [{"text": ""}]}, "empty text", "non-whitespace"),
        Case("index_content", {"texts": [huge], "index": "docs"}, "10,800,000 bytes", "save it as a file"),
        Case("embed_content", {"contents": [{"text": huge}]}, "10,800,000 bytes", "save it as a file"),
        # Files: zero-byte, truncated, garbage under an image name, unsupported formats, not UTF-8, a bomb.
        Case("index_content", idx(str(f / "zero.txt")), "zero-byte", ""),
        Case("index_content", idx(str(f / "zero.png"), index="fresh"), "zero-byte", ""),
        Case("index_content", idx(str(f / "cut.png")), "truncated", ""),
        Case("index_content", idx(str(f / "cut.jpg")), "truncated|corrupt", ""),
        Case("index_content", idx(str(f / "cut.pdf"), index="fresh"), "corrupt or truncated pdf", ""),
        Case("index_content", idx(str(f / "photo.png")), "not a supported format", "supported:"),
        Case("index_content", idx(str(f / "archive.zip")), "zip archive", "supported:"),
        Case("index_content", idx(str(f / "doc.docx")), "word document", "export it to pdf"),
        Case("index_content", idx(str(f / "tool.exe")), "windows executable", "supported:"),
        Case("index_content", idx(str(f / "latin1.txt")), "neither a known media type nor utf-8", "utf-8"),
        Case("index_content", idx(str(f / "bomb.png")), "too large to decode safely", "downscale"),
        Case("embed_content", {"contents": [{"path": str(f / "bomb.png")}]}, "too large to decode", "downscale"),
        Case("index_content", idx(str(f / "zero.txt"), str(f / "cut.png")), "2 source", "zero-byte.*truncated"),
        # Base64 that is not base64, and base64 of something unsupported.
        Case("embed_content", {"contents": [{"data": "not base64!!", "format": "png"}]}, "not valid base64", "encoded"),
        Case("embed_content", {"contents": [{"data": "QUJD=A==", "format": "png"}]}, "not valid base64", "encoded"),
        Case("embed_content", {"contents": [{"data": "", "format": "png"}]}, "zero-byte", ""),
        Case(
            "embed_content",
            {"contents": [{"data": base64.b64encode(b"PK\x03\x04" + bytes(100)).decode(), "format": "zip"}]},
            "zip archive",
            "supported:",
        ),
        Case("embed_content", {"contents": [{}]}, "exactly one of", ""),
        Case("embed_content", {"contents": [{"text": "a", "path": "b"}]}, "exactly one of", ""),
        Case("embed_content", {"contents": []}, "contents", "at least 1"),
        Case("embed_content", {"contents": [{"text": "x"}] * 33}, "contents", "at most 32"),
        Case("embed_content", {"contents": [{"text": "x"}], "dimension": 1024}, "not available", "produces"),
        # Paths: '..' and symlinks out of the allowed roots, folders that point outside, missing files.
        Case("index_content", idx(str(f / ".." / ".." / "etc" / "passwd")), "outside the allowed roots", "allowed"),
        Case("index_content", idx(f"{f}/../../{tmp_path.name}-outside/secret.txt"), "outside the allowed", "roots"),
        Case("index_content", idx(str(f / "link-out.txt")), "outside the allowed roots", "allowed_roots"),
        Case("index_content", idx(str(f / "dir-out")), "outside the allowed roots", "allowed_roots"),
        Case("embed_content", {"contents": [{"path": str(f / "link-out.txt")}]}, "outside the allowed", "roots"),
        Case("index_content", idx("/etc/passwd", index="fresh"), "outside the allowed roots", "allowed"),
        Case("index_content", idx("file:///etc/hostname"), "outside the allowed roots", "allowed"),
        Case("index_content", idx("~/.ssh/id_rsa"), "outside the allowed roots", "allowed"),
        Case("index_content", idx(str(f / "dangling.txt")), "broken symlink", ""),
        Case("index_content", idx(str(f / "missing.txt")), "does not exist", ""),
        Case("index_content", idx(""), "empty path", ""),
        # Malformed s3:// URIs.
        Case("index_content", idx("s3://"), "no bucket name", r"s3://bucket/key"),
        Case("index_content", idx("s3:///key"), "no bucket name", r"s3://bucket/key"),
        Case("index_content", idx("s3://Bad_Bucket/x"), "not a valid bucket name", r"s3://bucket/key"),
        Case("index_content", idx("s3://a/x"), "not a valid bucket name", r"s3://bucket/key"),
        Case("index_content", idx("s3:/bucket/x"), "must start with 's3://'", r"s3://bucket/key"),
        Case("index_content", idx("S3://bucket/x"), "must start with 's3://'", r"s3://bucket/key"),
        Case("index_content", idx("s3://bucket/" + "k" * 1100), "longer than 1024 bytes", ""),
        Case("embed_content", {"contents": [{"s3_uri": "s3://"}]}, "no bucket name", r"s3://bucket/key"),
        Case("semantic_search", {"image": {"s3_uri": "http://x/y"}, "index": "docs"}, "must start with 's3://'", ""),
        Case(
            "semantic_search",
            {"image": {"path": str(f / "good.txt")}, "index": "docs"},
            "not an image",
            "png, jpeg",
        ),
    ]
    assert await run_cases(client, core, cases) == []


async def test_a_mislabelled_file_is_indexed_as_what_it_is(local: Any, files: Path) -> None:
    """Bytes decide the format, not the name: a PNG called notes.txt is an image (documented behaviour)."""
    client, _ = local
    result = await client.call_tool("index_content", {"sources": [str(files / "notes.txt")], "index": "docs"})
    assert not result.is_error and result.structured_content["indexed_sources"] == 1
    hits = (
        await client.call_tool("semantic_search", {"query": "blue", "index": "docs", "modality": ["image"]})
    ).structured_content["hits"]
    assert hits[0]["source"].endswith("notes.txt") and hits[0]["modality"] == "image"


async def test_a_bad_source_beside_good_ones_is_reported_and_the_good_ones_land(local: Any, files: Path) -> None:
    client, core = local
    result = await client.call_tool(
        "index_content", {"sources": [str(files / "zero.txt"), str(files / "notes.txt")], "index": "mixed"}
    )
    report = result.structured_content
    assert not result.is_error and report["indexed_sources"] == 1
    assert [f["source"] for f in report["failed"]] == [str(files / "zero.txt")]
    assert core.store.get_index("mixed").vector_count == 1


async def test_nova_dimension_and_backend_limits(tmp_path: Path, fake_bedrock: FakeBedrockRuntime) -> None:
    core = nova_core(tmp_path, fake_bedrock)
    async with Client(build_server(core, poll_seconds=0)) as client:
        seeded = await client.call_tool("index_content", {"texts": ["wind turbines"], "index": "energy"})
        assert not seeded.is_error, seeded.content
        cases = [
            Case("embed_content", {"contents": [{"text": "x"}], "dimension": d}, f"{d}", "3072, 1024, 384")
            for d in (512, 0, -1, 4096, 1023)
        ] + [
            Case("embed_content", {"contents": [{"text": "x"}], "dimension": "big"}, "dimension", "must be an integer"),
            Case("embed_content", {"contents": [{"text": "x"}], "purpose": "FOO"}, "purpose", "GENERIC_INDEX"),
            Case("semantic_search", {"query": "x", "index": "energy", "top_k": 1000}, "top_k", "100"),
        ]
        calls_before = fake_bedrock.count()
        assert await run_cases(client, core, cases) == []
        assert fake_bedrock.count() == calls_before  # every case was refused before Bedrock was called


@pytest.mark.parametrize("kind", ["local", "s3vectors"])
def test_store_level_limits(kind: str, tmp_path: Path) -> None:
    """The limits the core cannot see coming (keys, 40 KB total with non-filterable text) at both stores."""
    from stores_support import make_store

    with make_store(kind, tmp_path) as store:
        store.create_index(IndexSpec(name="idx", dimension=4, non_filterable_keys=["text"]))
        store.put_vectors("idx", [VectorRecord(key="k" * 1024, data=[1, 0, 0, 0], metadata={"text": "t" * 39_000})])
        before = [(v.key, v.metadata) for v in store.list_vectors("idx", return_metadata=True).vectors]
        bad = [
            (VectorRecord(key="k" * 1025, data=[1, 0, 0, 0]), InvalidInput, "1-1024 characters"),
            (VectorRecord(key="", data=[1, 0, 0, 0]), InvalidInput, "1-1024 characters"),
            (VectorRecord(key="a", data=[1, 0, 0, 0], metadata={"text": "t" * 41_000}), LimitExceeded, "40960 bytes"),
            (VectorRecord(key="a", data=[1, 0, 0, 0], metadata={"f": "t" * 2100}), LimitExceeded, "2048 bytes"),
            (VectorRecord(key="a", data=[1, 0, 0, 0], metadata={f"m{i}": i for i in range(51)}), LimitExceeded, "50"),
            (VectorRecord(key="a", data=[1, 0, 0]), InvalidInput, "3 dimensions; the index expects 4"),
            (VectorRecord(key="a", data=[0, 0, 0, 0]), InvalidInput, "all zeros"),
            (VectorRecord(key="a", data=[float("nan"), 0, 0, 1]), InvalidInput, "NaN"),
        ]
        for record, error, says in bad:
            with pytest.raises(error, match=re.escape(says)):
                store.put_vectors("idx", [VectorRecord(key="good", data=[0, 1, 0, 0]), record])
        with pytest.raises(LimitExceeded, match="at most 500"):
            store.put_vectors("idx", [VectorRecord(key=f"v{i}", data=[1, 0, 0, 0]) for i in range(501)])
        after = [(v.key, v.metadata) for v in store.list_vectors("idx", return_metadata=True).vectors]
        assert after == before  # a rejected batch writes none of its vectors, not even the good one
        if isinstance(store, LocalVectorStore):
            assert store.integrity_check("idx") == []


async def test_the_checker_itself_catches_success_crashes_and_changes(local: Any, files: Path) -> None:
    """run_cases must fail a call that succeeds, writes, or says nothing useful; else the tests above prove nothing."""
    client, core = local
    problems = await run_cases(
        client,
        core,
        [
            Case("index_content", {"texts": ["a brand new text"], "index": "docs"}, "x"),
            Case("semantic_search", {"query": "x", "index": "nope"}, "unrelated words", "nothing like this"),
        ],
    )
    assert len(problems) == 4, problems
    assert "not an error" in problems[0] and "changed the index state" in problems[1]
    assert "does not say" in problems[2] and "does not say what to do" in problems[3]


async def test_text_that_is_not_valid_unicode_is_refused_with_the_reason(tmp_path: Path, tiny_model: Path) -> None:
    """A lone surrogate (JSON allows the escape "\\ud800") in inline text or in metadata: a reason, not an
    internal error, and the index is left as it was."""
    from support import local_core

    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        text = await client.call_tool("index_content", {"texts": ["a \ud800 red car"], "index": "sur"})
        assert text.is_error and "not valid Unicode" in text.content[0].text
        meta = await client.call_tool(
            "index_content", {"texts": ["a red car"], "metadata": {"k": "\ud800"}, "index": "sur"}
        )
        assert meta.is_error and "not valid Unicode" in meta.content[0].text
        assert "internal error" not in text.content[0].text + meta.content[0].text
    assert core.store.list_indexes() == []
