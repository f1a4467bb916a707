"""The local families: which one runs, how much text each reads, how texts and images are batched.

Everything loads tiny models in each family's real file layout through fastembed's own code; no network.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.tiny_clip import build_tiny_clip
from fixtures.tiny_jina_clip import build_tiny_jina_clip
from PIL import Image

from nova_mcp_server.embedders import batching
from nova_mcp_server.embedders.batching import decode_image, prefetched, token_batches
from nova_mcp_server.embedders.families import DEFAULT_FAMILY, choose_family, family_for_folder
from nova_mcp_server.embedders.local import LocalEmbedder, TextFit
from nova_mcp_server.errors import InvalidInput
from nova_mcp_server.schema import (
    EmbeddingPurpose,
    ImageInput,
    MediaSource,
    SingleEmbeddingParams,
    SingleEmbeddingRequest,
    TextInput,
)
from nova_mcp_server.settings import Settings

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def tiny_jina(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_jina_clip(tmp_path_factory.mktemp("jina"))


def text(value: str) -> SingleEmbeddingRequest:
    return SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_RETRIEVAL, text=TextInput(value=value)
        )
    )


def image(rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> SingleEmbeddingRequest:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, format="PNG")
    return SingleEmbeddingRequest(
        single_embedding_params=SingleEmbeddingParams(
            embedding_purpose=EmbeddingPurpose.GENERIC_INDEX,
            image=ImageInput(format="png", source=MediaSource.from_bytes(buffer.getvalue())),
        )
    )


async def embed(embedder: LocalEmbedder, requests: list[SingleEmbeddingRequest]) -> np.ndarray:
    return np.array([items[0].embedding for items in await embedder.embed(requests)])


# ---- which family runs ---------------------------------------------------------------------------------------


def test_the_default_family_is_jina_clip_and_clip_stays_available(tmp_path: Path) -> None:
    assert DEFAULT_FAMILY == "jinaai/jina-clip-v1"
    settings = Settings(data_dir=tmp_path, backend="local")
    assert settings.local_model is None
    assert LocalEmbedder.from_settings(settings).info.model == "jinaai/jina-clip-v1"
    small = LocalEmbedder.from_settings(Settings(data_dir=tmp_path, local_model="Qdrant/clip-ViT-B-32"))
    assert (small.info.model, small.info.default_dimension) == ("Qdrant/clip-ViT-B-32", 512)


def test_existing_clip_indexes_keep_their_family_unless_another_is_asked_for() -> None:
    assert choose_family(None, []) == "jinaai/jina-clip-v1"
    assert choose_family(None, ["Qdrant/clip-ViT-B-32", "qdrant/clip-vit-b-32"]) == "Qdrant/clip-ViT-B-32"
    assert choose_family(None, ["amazon.nova-2-multimodal-embeddings-v1:0"]) == "jinaai/jina-clip-v1"
    # indexes of both families: the default; each index still refuses the other family's vectors
    assert choose_family(None, ["Qdrant/clip-ViT-B-32", "jinaai/jina-clip-v1"]) == "jinaai/jina-clip-v1"
    assert choose_family("jinaai/jina-clip-v1", ["Qdrant/clip-ViT-B-32"]) == "jinaai/jina-clip-v1"
    with pytest.raises(InvalidInput, match="Unknown local model family 'acme/x'"):
        choose_family("acme/x", [])


def test_a_model_folder_names_its_family_by_layout_or_config(tiny_clip: Path, tiny_jina: Path, tmp_path: Path) -> None:
    assert family_for_folder(tiny_clip).name == "Qdrant/clip-ViT-B-32"
    assert family_for_folder(tiny_jina).name == "jinaai/jina-clip-v1"
    assert family_for_folder(tmp_path / "missing").name == DEFAULT_FAMILY
    (tmp_path / "nova-mcp.json").write_text(json.dumps({"family": "Qdrant/clip-ViT-B-32"}))
    assert family_for_folder(tmp_path).name == "Qdrant/clip-ViT-B-32"
    (tmp_path / "nova-mcp.json").write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(InvalidInput, match="nova-mcp.json is not valid"):
        family_for_folder(tmp_path)


# ---- how much text each family reads ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_jina_reads_a_whole_paragraph_that_clip_cuts(tiny_clip: Path, tiny_jina: Path) -> None:
    """100 words then the word that matters: jina (510-token window) reads it, CLIP (75) stops before it."""
    paragraph = " ".join(["cat"] * 100 + ["red"] * 20)
    for folder, reads_the_end in ((tiny_jina, True), (tiny_clip, False)):
        embedder = LocalEmbedder(model_path=folder)
        vectors = await embed(embedder, [text(paragraph), text("red"), text("cat")])
        items = await embedder.embed([text(paragraph)])
        if reads_the_end:
            assert vectors[0] @ vectors[1] > 0.1 and items[0][0].truncated_char_length is None
        else:
            assert vectors[0] @ vectors[1] == pytest.approx(0.0, abs=1e-6)
            assert vectors[0] @ vectors[2] > 0.999
            assert items[0][0].truncated_char_length == len(" ".join(["cat"] * 75))


@pytest.mark.anyio
async def test_measure_texts_counts_tokens_against_the_window(tiny_jina: Path) -> None:
    embedder = LocalEmbedder(model_path=tiny_jina)
    short, long = "a red cat, sleeping", " ".join(["red"] * 600)
    fits = await embedder.measure_texts([short, long])
    assert fits[0] == TextFit(tokens=5, max_tokens=510, truncated=False, kept_chars=len(short))
    assert fits[1] == TextFit(tokens=600, max_tokens=510, truncated=True, kept_chars=len(" ".join(["red"] * 510)))
    # what measure_texts predicts is what embed does and reports
    item = (await embedder.embed([text(long)]))[0][0]
    assert item.truncated_char_length == fits[1].kept_chars


@pytest.mark.anyio
async def test_the_family_cap_bounds_the_window_below_the_tokenizers(tmp_path: Path) -> None:
    """jina-clip's tokenizer allows 8,192 tokens; one request is capped at the family's 2,048."""
    folder = build_tiny_jina_clip(tmp_path / "wide", max_tokens=8192)
    fit = (await LocalEmbedder(model_path=folder).measure_texts([" ".join(["red"] * 3000)]))[0]
    assert (fit.max_tokens, fit.tokens, fit.truncated) == (2046, 3000, True)


# ---- batching -------------------------------------------------------------------------------------------------


def test_token_batches_cover_every_text_once_within_the_budget() -> None:
    lengths = [5, 300, 12, 12, 2000, 40, 7, 300, 1, 90] * 7
    batches = token_batches(lengths, max_tokens=1000, max_batch=8)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in batches:
        padded = max(lengths[i] for i in batch) * len(batch)
        assert padded <= 1000 or len(batch) == 1
        assert len(batch) <= 8
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first: little padding
    assert token_batches([]) == []


def test_prefetched_keeps_order_and_raises_the_preparers_error() -> None:
    assert list(prefetched([1, 2, 3], lambda x: x * 10)) == [10, 20, 30]

    def boom(x: int) -> int:
        if x == 2:
            raise InvalidInput("bad batch 2")
        return x

    with pytest.raises(InvalidInput, match="bad batch 2"):
        list(prefetched([1, 2, 3], boom))


@pytest.mark.anyio
@pytest.mark.parametrize("family", ["clip", "jina"])
async def test_big_mixed_batches_keep_every_result_in_place(
    family: str, tiny_clip: Path, tiny_jina: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Texts of many lengths (regrouped by length) and more images than one decode chunk, interleaved."""
    monkeypatch.setattr(batching, "MAX_BATCH_TOKENS", 40)  # force many small text batches
    embedder = LocalEmbedder(model_path=tiny_clip if family == "clip" else tiny_jina)
    names = list(COLOURS)
    requests, expected = [], []
    for n in range(45):
        name = names[n % len(names)]
        if n % 3:
            requests.append(image(COLOURS[name]))
        else:
            requests.append(text(" ".join([name] * (1 + n % 11))))
        expected.append(name)
    got = await embed(embedder, requests)
    words = await embed(embedder, [text(name) for name in names])
    for row, name in zip(got, expected, strict=True):
        assert names[int(np.argmax(words @ row))] == name
    one_by_one = [await embed(embedder, [request]) for request in requests[:6]]
    np.testing.assert_allclose(got[:6], np.vstack(one_by_one), atol=1e-6)


def test_big_images_are_reduced_on_decode_small_ones_are_not() -> None:
    def png(size: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, (10, 200, 30)).save(buffer, format="PNG")
        return buffer.getvalue()

    big = decode_image(0, png((3000, 1400)))
    assert big.size == (1000, 467) and big.mode == "RGB"  # reduced by 3: the short side stays >= 448
    assert decode_image(0, png((640, 480))).size == (640, 480)
    assert big.getpixel((10, 10)) == (10, 200, 30)


@pytest.mark.anyio
async def test_an_index_built_by_one_family_refuses_the_other(tmp_path: Path, tiny_clip: Path, tiny_jina: Path) -> None:
    """Through the MCP tools: a CLIP index keeps working for CLIP and refuses jina's vectors (and the reverse)."""
    from mcp import Client
    from support import local_core

    from nova_mcp_server.server import build_server

    async with Client(build_server(local_core(tmp_path, tiny_clip), poll_seconds=0)) as client:
        made = await client.call_tool("index_content", {"texts": ["red apples"], "index": "old"})
        assert not made.is_error, made.content[0].text
    async with Client(build_server(local_core(tmp_path, tiny_jina), poll_seconds=0)) as client:
        for tool, args in (
            ("semantic_search", {"query": "apples", "index": "old"}),
            ("index_content", {"texts": ["green pears"], "index": "old"}),
        ):
            result = await client.call_tool(tool, args)
            assert result.is_error, tool
            assert "built with local/tiny-clip-test at dimension 16" in result.content[0].text
            assert "local/tiny-jina-clip-test at dimension 24" in result.content[0].text
        made = await client.call_tool("index_content", {"texts": ["green pears"], "index": "new"})
        assert not made.is_error, made.content[0].text
    async with Client(build_server(local_core(tmp_path, tiny_clip), poll_seconds=0)) as client:  # CLIP again
        found = await client.call_tool("semantic_search", {"query": "red apples", "index": "old"})
        assert not found.is_error, found.content[0].text
        assert "red apples" in json.dumps(found.structured_content["hits"][0])
        refused = await client.call_tool("semantic_search", {"query": "pears", "index": "new"})
        assert refused.is_error and "built with local/tiny-jina-clip-test" in refused.content[0].text
