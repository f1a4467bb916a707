"""Reading what was found, through the MCP tools on the embedded default (tiny CLIP model):
fetch with neighbours, pages and pictures; compact hits within a token budget; distinct sources;
similar_to without an embedding call; long queries read whole; facets; the contact sheet."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.media import make_image, make_pdf
from mcp import Client
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def long_text(seed: int, sentences: int = 12) -> str:
    """Sentences of distinct words, several local chunks long, each sentence findable by its first word."""
    out = []
    for i in range(sentences):
        words = [WORDS[(seed + i + j) % len(WORDS)] for j in range(8)]
        out.append(f"Sentence {seed}-{i} says " + " ".join(words) + ".")
    return " ".join(out)


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"story{n}.txt").write_text(long_text(n * 5))
    make_image(folder / "red.png", "png", (250, 10, 10), (48, 48))
    make_image(folder / "blue.png", "png", (10, 10, 250), (48, 48))
    make_pdf(folder / "manual.pdf", ["the pump has a red valve on the left", "clean the filter every week"])
    return folder


async def test_fetch_returns_the_full_segment_its_neighbours_and_the_joined_text(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    core = local_core(tmp_path, tiny_model)
    story = docs / "story0.txt"
    async with Client(build_server(core, poll_seconds=0)) as client:
        report = await call(client, "index_content", sources=[str(story)], index="reading")
        assert report["indexed_segments"] >= 3, "the story must span several chunks"
        keys = sorted(v.key for v in core.store.list_vectors("reading").vectors)
        middle = keys[1]
        uri = f"nova://indexes/reading/items/{middle}"
        item = await call(client, "fetch", item=uri, context=1)
        assert item["key"] == middle and item["source"] == str(story.resolve())
        assert item["char_end"] > item["char_start"]
        assert item["text"] == story.read_text()[item["char_start"] : item["char_end"]]
        assert [p["key"] for p in item["context"]] == [keys[0], keys[2]]
        first, last = item["context"][0], item["context"][1]
        assert item["joined_text"] == story.read_text()[first["char_start"] : last["char_end"]], "overlaps written once"
        bare = await call(client, "fetch", item=middle, index="reading")
        assert bare["text"] == item["text"] and "context" not in bare or bare["context"] == []


async def test_fetch_a_pdf_page_gives_its_text_and_the_rendered_page(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(docs / "manual.pdf")], index="pdfs")
        hits = (await call(client, "semantic_search", query="red valve", index="pdfs", top_k=10))["hits"]
        page2 = next(h for h in hits if h.get("page") == 2)
        result = await client.call_tool("fetch", {"item": page2["uri"], "include_image": True})
        assert not result.is_error, result.content[0].text
        data = result.structured_content
        assert data["page"] == 2 and "clean the filter every week" in data["page_text"]
        assert "red valve" not in data["page_text"], "only this page's text"
        pictures = [b for b in result.content if b.type == "image"]
        assert len(pictures) == 1 and data["image"].startswith("page 2 of ")
        png = base64.b64decode(pictures[0].data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) <= 1_000_000


async def test_fetch_an_image_attaches_it_and_a_text_only_item_says_why_not(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(docs / "red.png"), str(docs / "story1.txt")], index="mix")
        hits = (await call(client, "semantic_search", query="red", index="mix", modality=["image"]))["hits"]
        result = await client.call_tool("fetch", {"item": hits[0]["uri"], "include_image": True})
        assert [b.type for b in result.content] == ["text", "image"]
        text = (await call(client, "semantic_search", query="sentence", index="mix", modality=["text"]))["hits"][0]
        plain = await client.call_tool("fetch", {"item": text["uri"], "include_image": True})
        assert [b.type for b in plain.content] == ["text"] and "no picture" in plain.structured_content["note"]
        missing = await client.call_tool("fetch", {"item": "nova://indexes/mix/items/nope-00000"})
        assert missing.is_error and "No item" in missing.content[0].text


async def test_answers_stay_within_the_token_budget_and_say_what_was_left_out(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model, answer_token_budget=1000)
    texts = [long_text(n, sentences=3) for n in range(60)]
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", texts=texts, index="budget")
        result = await client.call_tool(
            "semantic_search", {"query": "sentence says", "index": "budget", "top_k": 60, "detail": "full"}
        )
        answer = result.structured_content
        assert answer["truncated"] is True and answer["omitted"] > 0
        assert len(answer["hits"]) + answer["omitted"] == 60
        assert len(result.content[0].text) <= 1000 * 3, "about 3 characters a token, conservatively"
        compact = await call(client, "semantic_search", query="sentence says", index="budget", top_k=4)
        assert compact.get("truncated", False) is False and len(compact["hits"]) == 4


async def test_distinct_sources_gives_the_best_segment_of_each(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    stories = [str(docs / f"story{n}.txt") for n in range(3)]
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=stories, index="stories")
        plain = (await call(client, "semantic_search", query="sentence says alpha", index="stories", top_k=6))["hits"]
        assert len({h["source"] for h in plain}) < len(plain), "chunks of one story fill several places"
        one_each = (
            await call(
                client, "semantic_search", query="sentence says alpha", index="stories", top_k=6, distinct_sources=True
            )
        )["hits"]
        assert sorted(h["source"] for h in one_each) == sorted(str(Path(s).resolve()) for s in stories)
        assert [h["rank"] for h in one_each] == [1, 2, 3]


async def test_similar_to_searches_with_the_stored_vector_and_no_embedding_call(
    tmp_path: Path, tiny_model: Path, docs: Path
) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(docs)], index="all", include=["*.png", "*.txt"])
        red = (await call(client, "semantic_search", query="red", index="all", modality=["image"]))["hits"][0]
        calls = 0
        embed = core.embedder.embed

        async def counted(requests: Any) -> Any:
            nonlocal calls
            calls += 1
            return await embed(requests)

        core.embedder.embed = counted  # type: ignore[method-assign]
        like = await call(client, "semantic_search", similar_to=red["uri"], top_k=3)
        assert calls == 0 and like["index"] == "all"
        assert red["key"] not in [h["key"] for h in like["hits"]], "the item itself is left out"
        assert like["hits"][0]["modality"] == "image" and like["hits"][0]["source"].endswith("blue.png")


async def test_a_long_query_is_embedded_whole_not_cut_at_a_chunk(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    query = " ".join(long_text(n, sentences=4) for n in range(4))  # several local chunks long
    assert len(query) > 1000
    sent: list[str] = []
    embed = core.embedder.embed

    async def spy(requests: Any) -> Any:
        sent.extend(r.single_embedding_params.text.value for r in requests if r.single_embedding_params.text)
        return await embed(requests)

    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", texts=["a note"], index="long")
        core.embedder.embed = spy  # type: ignore[method-assign]
        answer = await call(client, "semantic_search", query=query, index="long")
    assert sent == [query]
    assert 0 < answer["query_chars_read"] < len(query), "the model's window is said, not hidden"


async def test_describe_index_counts_keys_and_values(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(docs / "red.png")], index="facets", metadata={"team": "a"})
        await call(client, "index_content", sources=[str(docs / "blue.png")], index="facets", metadata={"team": "b"})
        await call(
            client, "index_content", texts=["one note", "two notes"], index="facets", metadata={"team": "a", "n": 3}
        )
        described = await call(client, "describe_index", name="facets")
        facets = {f["key"]: f for f in described["facets"]}
        assert described["items_read"] == 4 and described["complete"] is True
        assert facets["team"]["count"] == 4 and facets["team"]["types"] == ["string"]
        assert facets["team"]["top_values"] == [{"value": "a", "count": 3}, {"value": "b", "count": 1}]
        assert facets["n"]["min"] == facets["n"]["max"] == 3 and facets["n"]["count"] == 2
        assert {v["value"]: v["count"] for v in facets["modality"]["top_values"]} == {"text": 2, "image": 2}
        assert facets["team"]["reserved"] is False and facets["modality"]["reserved"] is True
        assert "text" not in facets and "snippet" not in facets, "non-filterable keys are not offered as filters"
        resource = json.loads((await client.read_resource("nova://indexes/facets")).contents[0].text)
        assert resource["facets"] == described["facets"]


async def test_a_contact_sheet_is_one_numbered_picture_under_the_cap(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(6):
        make_image(folder / f"p{i}.png", "png", (40 * i, 200 - 30 * i, 90), (400, 300))
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(folder)], index="sheet")
        result = await client.call_tool(
            "semantic_search", {"query": "a picture", "index": "sheet", "top_k": 6, "include_images": "sheet"}
        )
        pictures = [b for b in result.content if b.type == "image"]
        assert len(pictures) == 1 and len(base64.b64decode(pictures[0].data)) <= 1_000_000
        assert "1, 2, 3, 4, 5, 6" in result.structured_content["note"]
        each = await client.call_tool(
            "semantic_search", {"query": "a picture", "index": "sheet", "top_k": 6, "include_images": True}
        )
        assert len([b for b in each.content if b.type == "image"]) == 5, "at most 5 pictures an answer"


async def test_keyword_modes_say_clearly_where_there_is_no_keyword_index(tmp_path: Path, moto_s3: Any) -> None:
    """S3 Vectors keeps no keyword index: the aws backend says so and names the mode that works."""
    import boto3
    from fakes.nova import FakeBedrockRuntime
    from stores_support import S3VectorsEmulator
    from support import nova_core

    from nova_mcp_server.stores.s3vectors import S3VectorsStore

    vectors = S3VectorsStore(S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1")), "kw-bucket")
    core = nova_core(tmp_path, FakeBedrockRuntime(), store=vectors)
    assert not core.search.keyword_available
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", texts=["a note"], index="kw-test")
        result = await client.call_tool("semantic_search", {"query": "note", "index": "kw-test", "mode": "keyword"})
        assert result.is_error and "keyword index" in result.content[0].text and '"vector"' in result.content[0].text
        plain = await call(client, "semantic_search", query="note", index="kw-test")
        assert plain["mode"] == "vector" and "rerank" in plain["note"]


async def test_fetch_and_compact_hits_on_the_aws_backend(tmp_path: Path, docs: Path) -> None:
    """On S3 Vectors (the emulator, pages smaller than top_k) and Nova (the fake): the same reading tools."""
    import boto3
    from fakes.nova import FakeBedrockRuntime
    from moto import mock_aws
    from stores_support import S3VectorsEmulator

    from nova_mcp_server.app import build_app
    from nova_mcp_server.aws import AwsClients
    from nova_mcp_server.settings import Settings

    story = docs / "story2.txt"
    story.write_text(" ".join(long_text(n, sentences=30) for n in range(3)))  # several Nova chunks
    with mock_aws():
        vectors = S3VectorsEmulator(boto3.client("s3vectors", region_name="us-east-1"))
        clients = AwsClients("us-east-1", overrides={"bedrock-runtime": FakeBedrockRuntime(), "s3vectors": vectors})
        settings = Settings(data_dir=tmp_path / "data", vector_bucket="team-vectors", allowed_roots=[tmp_path])
        app = build_app(settings, clients=clients)
        async with Client(build_server(app, poll_seconds=0)) as client:
            report = await call(client, "index_content", sources=[str(story)], index="aws-read")
            assert report["indexed_segments"] >= 3
            hits = (await call(client, "semantic_search", query="sentence says", index="aws-read", top_k=3))["hits"]
            assert "metadata" not in hits[0] and hits[0]["uri"].startswith("nova://indexes/aws-read/items/")
            item = await call(client, "fetch", item=hits[0]["uri"], context=1)
            assert item["text"] == story.read_text()[item["char_start"] : item["char_end"]]
            assert item["context"] and all(p["key"] != item["key"] for p in item["context"])


async def test_a_pdf_pages_neighbours_join_page_by_page(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    """Character ranges count within a page: joining neighbours from two pages keeps both pages' text."""
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(docs / "manual.pdf")], index="pages")
        keys = sorted(v.key for v in core.store.list_vectors("pages").vectors)
        item = await call(client, "fetch", item=keys[2], index="pages", context=1)  # page 2's image
        assert item["page"] == 2 and "note" not in item, "a page image has no text; the index is not old"
        joined = item["joined_text"]
        assert "red valve" in joined and "clean the filter every week" in joined


async def test_fetch_a_video_segment_gives_its_time_range_and_the_frame(tmp_path: Path, tiny_model: Path) -> None:
    from fixtures.media import make_mp4

    make_mp4(tmp_path / "clip.mp4", seconds=4.0, with_audio=False)
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(tmp_path / "clip.mp4")], index="clips")
        hit = (await call(client, "semantic_search", query="a frame", index="clips", mode="vector"))["hits"][0]
        result = await client.call_tool("fetch", {"item": hit["uri"], "include_image": True})
        assert not result.is_error, result.content[0].text
        data = result.structured_content
        assert data["modality"] == "video" and data["end_s"] >= data["start_s"] >= 0
        assert data["image"].startswith(f"the frame at {data['start_s']:g} s")
        [picture] = [b for b in result.content if b.type == "image"]
        assert base64.b64decode(picture.data)[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_frame_is_cut_from_the_open_file_not_from_the_whole_video_in_memory(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fetch's picture of a video hit reads around the frame: a long video is never read whole for one frame."""
    import os

    from nova_mcp_server import thumbnails

    video = _noisy_mp4(tmp_path / "long.mp4", seconds=60)
    size = video.stat().st_size  # noise does not compress: a few MB
    read: list[int] = []
    real_fdopen = os.fdopen

    class Counting:
        def __init__(self, f: Any) -> None:
            self._f = f

        def read(self, n: int = -1) -> bytes:
            data = self._f.read(n)
            read.append(len(data))
            return bytes(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._f, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self._f.close()

    monkeypatch.setattr(thumbnails.os, "fdopen", lambda fd, mode="r": Counting(real_fdopen(fd, mode)))
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        await call(client, "index_content", sources=[str(video)], index="long")
        early = {"start_s": {"$lt": 10}}
        hit = await call(client, "semantic_search", query="a frame", index="long", mode="vector", filter=early)
        read.clear()
        result = await client.call_tool("fetch", {"item": hit["hits"][0]["uri"], "include_image": True})
        assert not result.is_error, result.content[0].text
        assert [b for b in result.content if b.type == "image"]
    assert 0 < sum(read) < size / 2, (sum(read), size)


def _noisy_mp4(path: Path, seconds: int, fps: int = 5) -> Path:
    """A video of random pixels (key frame every second): big for its length, unlike solid colours."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.gop_size = fps
        stream.options = {"preset": "ultrafast"}
        for _ in range(seconds * fps):
            pixels = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
