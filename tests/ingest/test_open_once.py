"""Each file is opened exactly once per call, hashed and segmented from that one open file, through the MCP client.

Two proofs: an audit hook counts every open the Python side makes of each file (``open``, ``io.open``,
``os.open``, the openat walk included), and the files are moved out of their folder right after they are
hashed, so anything that reopened one by path later (PDFium, FFmpeg, Pillow, an upload) would fail it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import BLUE, GREEN, RED, make_image, make_mp4, make_pdf, make_video
from mcp import Client
from support import local_core, nova_core

from nova_mcp_server import keys
from nova_mcp_server.ingest import loading, opening
from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio

NAMES = ("notes.md", "page.html", "paper.pdf", "photo.png", "clip.mp4")
_counting: Counter[str] | None = None  # the audit hook below counts into this while it is set
_test_opens = False  # the test's own rewrites are not the server's opens


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _test_opens or _counting is None:
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        name = os.path.basename(os.fsdecode(args[0]))
        if name in NAMES:
            _counting[name] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one counts only while `_counting` is set


def make_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "notes.md").write_text("# Notes\n\nthe tide tables for the harbour")
    (folder / "page.html").write_text("<html><body><p>a lighthouse keeper's log</p></body></html>")
    make_pdf(folder / "paper.pdf", ["first page about sails", "second page about ropes"])
    make_image(folder / "photo.png", "png")
    make_video(folder / "clip.mp4", seconds=2.0, with_audio=False)
    return folder


@pytest.mark.parametrize("portable", [False, True], ids=["openat", "portable"])
async def test_each_file_is_opened_once_per_call_and_never_reopened_by_path(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, portable: bool
) -> None:
    global _counting
    monkeypatch.setattr(opening, "OPENAT", opening.OPENAT and not portable)  # the Windows-style fallback too
    folder = make_folder(tmp_path / "docs")
    away = tmp_path / "away"
    away.mkdir()

    def move_away(path: Path) -> None:  # hashed: from now on only the open descriptor can read it
        path.rename(away / path.name)

    core = local_core(tmp_path, tiny_model, allowed_roots=[folder])
    async with Client(build_server(core, poll_seconds=0)) as client:

        async def index(**extra: Any) -> tuple[dict[str, Any], Counter[str]]:
            global _counting
            _counting = Counter()
            try:
                result = await client.call_tool("index_content", {"sources": [str(folder)], "index": "once", **extra})
            finally:
                counted, _counting = _counting, None
            assert not result.is_error, result.content
            return result.structured_content or {}, counted

        dry, opens = await index(dry_run=True)
        assert dry["failed"] == [] and opens == dict.fromkeys(NAMES, 1)

        monkeypatch.setattr(loading, "AFTER_HASH", move_away)
        report, opens = await index()
        monkeypatch.setattr(loading, "AFTER_HASH", None)
        assert report["failed"] == [], report["failed"]
        assert report["indexed_sources"] == len(NAMES) and opens == dict.fromkeys(NAMES, 1)
        assert sorted(p.name for p in folder.iterdir()) == []  # every file was read after it left its folder

        for name in NAMES:  # back in place, same inode and bytes: the next call skips them, opening each once
            (away / name).rename(folder / name)
        again, opens = await index()
        assert again["skipped_unchanged"] == len(NAMES) and opens == dict.fromkeys(NAMES, 1)

        # embed_content, and fetch's picture of a hit: once per call as well
        _counting = Counter()
        try:
            contents = [{"path": str(folder / "photo.png")}, {"path": str(folder / "notes.md")}]
            embedded = await client.call_tool("embed_content", {"contents": contents})
            hits = await client.call_tool(
                "semantic_search", {"query": "a photo", "index": "once", "modality": ["image"], "top_k": 1}
            )
            [hit] = hits.structured_content["hits"]
            fetched = await client.call_tool("fetch", {"item": hit["uri"], "include_image": True})
        finally:
            counted, _counting = _counting, None
        assert not embedded.is_error and not fetched.is_error, (embedded.content, fetched.content)
        assert any(block.type == "image" for block in fetched.content)
        assert counted == {"photo.png": 2, "notes.md": 1}  # embed_content once, fetch's picture once
    _counting = None


async def test_a_rewrite_between_hashing_and_segmenting_never_commits_a_stale_hash(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    note = folder / "note.txt"
    note.write_text("apples and pears " * 200)
    (folder / "steady.txt").write_text("a steady file about bicycles")
    solo = folder / "solo.txt"
    solo.write_text("plums and cherries " * 50)
    pending = {"note.txt", "solo.txt"}  # each rewritten once, while its first call reads it

    def rewrite_same_size_same_time(path: Path) -> None:  # only the bytes tell: fstat sees nothing
        if path.name not in pending:
            return
        pending.discard(path.name)
        mtime = path.stat().st_mtime_ns
        with open(path, "r+b") as fh:
            fh.write(b"ORANGES")
        os.utime(path, ns=(mtime, mtime))

    core = local_core(tmp_path, tiny_model, allowed_roots=[folder])
    async with Client(build_server(core, poll_seconds=0)) as client:

        async def index(*paths: Path) -> Any:
            result = await client.call_tool("index_content", {"sources": [str(p) for p in paths], "index": "rewrites"})
            return result

        monkeypatch.setattr(loading, "AFTER_HASH", rewrite_same_size_same_time)
        first = await index(note, folder / "steady.txt")
        alone = await index(solo)
        monkeypatch.setattr(loading, "AFTER_HASH", None)
        assert not first.is_error, first.content
        report = first.structured_content
        assert report["indexed_sources"] == 1  # the rest of the call is kept
        [failure] = report["failed"]
        assert failure == {
            "source": str(note),
            "reason": f"{note} changed while it was being read (its bytes, size or time differ from the version "
            "that was hashed); it was not indexed. Index it again once nothing is writing it.",
        }
        # alone in its call, the call itself is the error, saying why
        assert alone.is_error and "solo.txt changed while it was being read" in alone.content[0].text
        # nothing was committed, so the next call indexes the file as it is now instead of skipping it
        second = (await index(note)).structured_content
        assert second["indexed_sources"] == 1 and second["skipped_unchanged"] == 0
        # the marker's hash names the file's bytes now, and its first segment holds their text
        sid = keys.source_id(f"file://{note.resolve()}")
        [head] = core.store.get_vectors("rewrites", [keys.vector_key(sid, 0)], return_metadata=True)
        assert head.metadata is not None
        assert head.metadata["content_hash"] == hashlib.sha256(note.read_bytes()).hexdigest()
        assert head.metadata["snippet"].startswith("ORANGESand pears")  # "apples " overwritten in place


STAGING = "nova-test-output"


@pytest.mark.parametrize("race", ["moved-away", "rewritten"])
async def test_long_media_is_probed_and_uploaded_from_its_one_open_file(
    tmp_path: Path, moto_s3: Any, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    """The async path reads the length and uploads the bytes from the open file: a file moved away right after
    hashing still goes (nothing reopens it by path), and one rewritten there fails before any job starts."""
    global _counting
    folder = tmp_path / "media"
    folder.mkdir()
    video = make_mp4(folder / "clip.mp4", seconds=40.0, colors_per_block=(RED, GREEN, BLUE, RED), size=(64, 48), fps=2)
    original = video.read_bytes()

    def move_away(path: Path) -> None:
        path.rename(tmp_path / path.name)

    def rewrite_in_place(path: Path) -> None:  # same size, same mtime: only the bytes tell
        global _test_opens
        mtime = path.stat().st_mtime_ns
        _test_opens = True
        try:
            with open(path, "r+b") as fh:
                fh.seek(len(original) // 2)
                fh.write(b"\0" * 64)
        finally:
            _test_opens = False
        os.utime(path, ns=(mtime, mtime))

    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0)
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=STAGING, allowed_roots=[folder])
    monkeypatch.setattr(loading, "AFTER_HASH", move_away if race == "moved-away" else rewrite_in_place)
    async with Client(build_server(core, poll_seconds=0)) as client:
        _counting = Counter()
        try:
            result = await client.call_tool("index_content", {"sources": [str(video)], "index": "talks"})
        finally:
            counted, _counting = _counting, None
    assert counted == {"clip.mp4": 1}
    staged = moto_s3.list_objects_v2(Bucket=STAGING, Prefix="nova-mcp/inputs/").get("Contents", [])
    if race == "moved-away":
        assert not result.is_error, result.content
        assert len(result.structured_content["jobs"]) == 1 and fake.count("start_async_invoke") == 1
        [obj] = staged
        assert moto_s3.get_object(Bucket=STAGING, Key=obj["Key"])["Body"].read() == original
    else:
        assert result.is_error and "clip.mp4 changed while it was being read" in result.content[0].text
        assert fake.count("start_async_invoke") == 0  # nothing started, nothing billed


LIMITED = """
import asyncio, json, resource, sys
from pathlib import Path
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from support import local_core, nova_core

resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
folder = Path(sys.argv[1])
core = local_core(Path(sys.argv[2]), Path(sys.argv[5]), allowed_roots=[folder])

async def main():
    from nova_mcp_server.models import ContentInput
    report = await core.indexing.index([ContentInput(path=str(folder))], index="many")
    again = await core.indexing.index([ContentInput(path=str(folder))], index="many")
    print(json.dumps({"indexed": report.indexed_sources, "failed": [f.reason for f in report.failed][:3],
                      "skipped": again.skipped_unchanged}))

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="resource.setrlimit is POSIX-only")
def test_a_thousand_files_index_under_a_256_file_limit(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1000):
        (folder / f"note-{i:04d}.txt").write_text(f"note number {i} about the weather")
    tests = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, str(folder), str(tmp_path / "srv"), str(tests), str(tests.parent), tiny_model],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"indexed": 1000, "failed": [], "skipped": 1000}
