"""A mixed folder (text, Markdown, PDF, images, a 2-minute video, audio) on both backends, through the tools.

Every modality must come back from a search with the locator that points into its source: page for
documents, start/end seconds for audio and video, a character range for text.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import BLUE, GREEN, RED, make_image, make_mp3, make_mp4, make_pdf
from mcp import Client
from support import FIXTURES, local_core, nova_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio

MODALITIES = ("text", "document", "image", "audio", "video")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    folder = root / "library"
    folder.mkdir()
    (folder / "notes.txt").write_text("The orchard grows apples and pears. " * 3 + "\n\nHarvest starts in autumn.")
    (folder / "guide.md").write_text("# Guide\n\nFast cars race on the track.\n\n## Safety\n\nWear a helmet.")
    make_pdf(folder / "manual.pdf", ["installation of the blue pump", "maintenance of the green valve"])
    make_image(folder / "sunset.png", "png", RED, (48, 32))
    make_image(folder / "sea.jpg", "jpeg", BLUE, (48, 32))
    make_mp4(
        folder / "tour.mp4", seconds=120.0, colors_per_block=(RED, GREEN, BLUE), block_seconds=10, size=(64, 48), fps=2
    )
    shutil.copy(FIXTURES / "speech.wav", folder / "speech.wav")  # spoken, for whisper
    make_mp3(folder / "bell.mp3", seconds=2.0, freq=880.0)
    return folder


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


def check_locator(hit: dict[str, Any]) -> None:
    """Each modality's locator; compact hits leave out the fields that do not apply."""
    hit = {name: hit.get(name) for name in ("page", "start_s", "end_s", "char_start", "char_end")} | hit
    modality = hit["modality"]
    if modality == "document":
        assert hit["page"] in (1, 2) and hit["source"].endswith("manual.pdf")
    elif modality in ("audio", "video"):
        assert hit["start_s"] is not None and hit["end_s"] > hit["start_s"]
        assert hit["end_s"] - hit["start_s"] <= 30.0
    elif modality == "text":
        assert hit["char_end"] > hit["char_start"] >= 0
    else:
        assert hit["modality"] == "image" and hit["page"] is None and hit["start_s"] is None


async def test_mixed_folder_on_nova(mixed: Path, tmp_path: Path, fake_bedrock: FakeBedrockRuntime) -> None:
    core = nova_core(tmp_path, fake_bedrock, allowed_roots=[mixed.parent])
    async with Client(build_server(core, poll_seconds=0)) as client:
        report = await call(client, "index_content", sources=[str(mixed)], index="library")
        assert report["indexed_sources"] == 8 and not report["failed"], report
        for modality in MODALITIES:
            hits = (
                await call(client, "semantic_search", query="apples pump cars", index="library", modality=[modality])
            )["hits"]
            assert hits and {h["modality"] for h in hits} == {modality}, modality
            for hit in hits:
                check_locator(hit)
        everything = (await call(client, "semantic_search", query="orchard apples", index="library", top_k=100))["hits"]
        assert {h["modality"] for h in everything} == set(MODALITIES)
        assert everything[0]["source"].endswith("notes.txt")
        windows = sorted((h["start_s"], h["end_s"]) for h in everything if h["source"].endswith("tour.mp4"))
        assert len(windows) == 12 and windows[0] == (0.0, 10.0) and windows[-1][1] == pytest.approx(120.0, abs=0.6)


async def test_mixed_folder_on_local(mixed: Path, tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model, allowed_roots=[mixed.parent])
    async with Client(build_server(core)) as client:
        report = await call(client, "index_content", sources=[str(mixed)], index="library")
        # CLIP has no ear: audio is indexed by its transcript, so a bell with no speech is refused, saying why.
        assert report["indexed_sources"] == 7, report
        [failure] = report["failed"]
        assert failure["source"].endswith("bell.mp3") and "no speech" in failure["reason"]
        spoken = (await call(client, "semantic_search", query="vector search", index="library", modality=["audio"]))[
            "hits"
        ][0]
        assert spoken["source"].endswith("speech.wav") and spoken["end_s"] > spoken["start_s"]
        assert "fox" in spoken["snippet"].lower() and "vector" in spoken["snippet"].lower()
        # how the picture looks is the vectors' job (hybrid, the local default, also ranks texts saying "red")
        red = (await call(client, "semantic_search", query="red", index="library", top_k=20, mode="vector"))["hits"]
        assert red[0]["modality"] in ("image", "video") and red[0]["score"] > 0.9
        video = [h for h in red if h["modality"] == "video"]
        assert video and all((h["start_s"] // 10) % 3 == 0 for h in video[:4]), "red blocks are 0-10 s, 30-40 s, ..."
        for modality in MODALITIES:
            hits = (await call(client, "semantic_search", query="blue pump", index="library", modality=[modality]))[
                "hits"
            ]
            assert hits and {h["modality"] for h in hits} == {modality}, modality
            for hit in hits:
                check_locator(hit)
        doc = (
            await call(
                client, "semantic_search", query="green valve maintenance", index="library", modality=["document"]
            )
        )["hits"][0]
        assert doc["page"] == 2 and "valve" in doc["snippet"]
