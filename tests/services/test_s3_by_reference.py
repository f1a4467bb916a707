"""S3 sources through indexing on the aws backend: by reference, skipped unchanged, segmented when long.

moto plays S3 and the doc-based Nova fake reads the objects it is handed by ``s3Location`` through its own
client (so it refuses a missing object as Bedrock would). The server's own S3 calls are recorded from
botocore's events on its client: "no download" is what went over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.nova import TEST_BUCKET, FakeBedrockRuntime
from fixtures.media import make_image, make_mp4, make_pdf
from support import nova_core

from nova_mcp_server.models import ContentInput

pytestmark = pytest.mark.anyio
SRC = "source-bucket"


class Recorder:
    """(operation, bucket, key) of every S3 call a client made, from botocore's provide-client-params event."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, str, str]] = []
        client.meta.events.register("provide-client-params.s3", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, params.get("Bucket", ""), params.get("Key", "")))

    def on(self, bucket: str) -> list[tuple[str, str]]:
        return [(op, key) for op, b, key in self.calls if b == bucket]


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any]]:
    """The server's S3 client and Bedrock's own (the fake reads s3Location objects through it)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        server = boto3.client("s3", region_name="us-east-1")
        server.create_bucket(Bucket=SRC)
        server.create_bucket(Bucket=TEST_BUCKET)
        yield server, boto3.client("s3", region_name="us-east-1")


def put(client: Any, key: str, body: bytes) -> str:
    client.put_object(Bucket=SRC, Key=key, Body=body)
    return f"s3://{SRC}/{key}"


def sources(params: dict[str, Any]) -> dict[str, Any]:
    kind = next(k for k in ("text", "image", "audio", "video") if k in params)
    return {kind: params[kind].get("source")}


async def test_unchanged_s3_objects_are_skipped_with_no_get_object(tmp_path: Path, clients: tuple[Any, Any]) -> None:
    server, bedrock_s3 = clients
    image = put(server, "docs/red.png", make_image(tmp_path / "red.png", "png").read_bytes())
    note = put(server, "docs/note.txt", b"tidal power comes from the moon")
    put(server, "docs/deck.pdf", make_pdf(tmp_path / "deck.pdf", ["wind turbines"]).read_bytes())
    fake = FakeBedrockRuntime(s3=bedrock_s3)
    core = nova_core(tmp_path, fake, s3=server)
    recorder = Recorder(server)

    first = await core.indexing.index([ContentInput(s3_uri=f"s3://{SRC}/docs/")], index="kbase")
    assert (first.indexed_sources, first.failed) == (3, [])
    sent = [sources(b["singleEmbeddingParams"]) for b in fake.invoke_bodies]
    assert {"image": {"s3Location": {"uri": image}}} in sent and {"text": {"s3Location": {"uri": note}}} in sent
    assert [key for op, key in recorder.on(SRC) if op == "GetObject"] == ["docs/deck.pdf"]  # the PDF's pages only
    assert list((core.settings.data_dir / "downloads").iterdir()) == []  # the download is gone

    recorder.calls.clear()
    invoked = fake.count()
    again = await core.indexing.index([ContentInput(s3_uri=f"s3://{SRC}/docs/")], index="kbase")
    assert (again.skipped_unchanged, again.indexed_sources) == (3, 0)
    assert sorted(op for op, _ in recorder.on(SRC)) == ["HeadObject"] * 3 + ["ListObjectsV2"]
    assert fake.count() == invoked

    put(server, "docs/note.txt", b"tidal power comes from the moon and the sun")
    changed = await core.indexing.index([ContentInput(s3_uri=f"s3://{SRC}/docs/")], index="kbase")
    assert (changed.skipped_unchanged, changed.indexed_sources) == (2, 1)
    hits = await core.search.search(query="tidal power", index="kbase", top_k=1)
    result, _ = await core.reading.fetch(hits.hits[0].uri)
    assert result.text == "tidal power comes from the moon and the sun"  # read back from S3: Nova had read it


async def test_an_object_gone_before_nova_reads_it_fails_alone(tmp_path: Path, clients: tuple[Any, Any]) -> None:
    server, bedrock_s3 = clients
    put(server, "imgs/a.png", make_image(tmp_path / "a.png", "png").read_bytes())
    put(server, "imgs/gone.png", make_image(tmp_path / "gone.png", "png").read_bytes())

    heading: list[str] = []

    def note_head(params: dict[str, Any], **_: Any) -> None:
        heading.append(params.get("Key", ""))

    def delete_after_head(**_: Any) -> None:  # the HEAD succeeded; the object is deleted before Nova reads it
        if heading.pop() == "imgs/gone.png":
            bedrock_s3.delete_object(Bucket=SRC, Key="imgs/gone.png")

    server.meta.events.register("provide-client-params.s3.HeadObject", note_head)
    server.meta.events.register("after-call.s3.HeadObject", delete_after_head)
    core = nova_core(tmp_path, FakeBedrockRuntime(s3=bedrock_s3), s3=server)
    report = await core.indexing.index([ContentInput(s3_uri=f"s3://{SRC}/imgs/")], index="pics")
    assert report.indexed_sources == 1
    [failure] = report.failed
    assert failure.source == f"s3://{SRC}/imgs/gone.png" and "Unable to access the S3 object" in failure.reason


async def test_a_long_s3_text_goes_through_the_segmented_text_task(tmp_path: Path, clients: tuple[Any, Any]) -> None:
    server, bedrock_s3 = clients
    words = [f"wörd{n} ünïcode–{n % 7}" for n in range(600)]
    text = " ".join(words)
    uri = put(server, "books/long.txt", text.encode("utf-8"))
    fake = FakeBedrockRuntime(s3=bedrock_s3, in_progress_polls=0)
    core = nova_core(tmp_path, fake, s3=server, async_media=True, staging_bucket=TEST_BUCKET)
    recorder = Recorder(server)

    report = await core.indexing.index([ContentInput(s3_uri=uri)], index="books")
    assert (report.indexed_sources, report.failed, len(report.jobs)) == (0, [], 1)
    assert recorder.on(SRC) == [("HeadObject", "books/long.txt")]  # nothing downloaded
    start = fake.calls[-1].kwargs["modelInput"]
    assert start["taskType"] == "SEGMENTED_EMBEDDING"
    params = start["segmentedEmbeddingParams"]["text"]
    assert params["source"] == {"s3Location": {"uri": uri}}
    assert params["segmentationConfig"] == {"maxLengthChars": 2000}

    for _ in range(3):
        info = await core.jobs.advance(report.jobs[0])
    page = core.store.list_vectors("books", max_results=100, return_metadata=True)
    assert info.status == "completed" and info.vectors_written == len(page.vectors) >= len(text) // 2000
    spans = sorted((v.metadata["char_start"], v.metadata["char_end"], v.key) for v in page.vectors)
    assert spans[0][0] == 0 and max(end for _, end, _ in spans) == len(text)
    for char_start, char_end, key in spans:
        result, _ = await core.reading.fetch(key, index="books")
        assert result.text == text[char_start:char_end]  # characters, not bytes: the text is not ASCII
    assert all(op == "GetObject" for op, _ in recorder.on(SRC)[1:])

    recorder.calls.clear()
    again = await core.indexing.index([ContentInput(s3_uri=uri)], index="books")
    assert (again.skipped_unchanged, again.jobs) == (1, [])
    assert recorder.on(SRC) == [("HeadObject", "books/long.txt")]


async def test_a_native_s3_video_goes_async_by_reference(tmp_path: Path, clients: tuple[Any, Any]) -> None:
    server, bedrock_s3 = clients
    uri = put(server, "clips/talk.mp4", make_mp4(tmp_path / "talk.mp4", seconds=2.0).read_bytes())
    fake = FakeBedrockRuntime(s3=bedrock_s3, media_seconds=2.0, in_progress_polls=0)
    core = nova_core(tmp_path, fake, s3=server, async_media=True, staging_bucket=TEST_BUCKET)
    recorder = Recorder(server)
    report = await core.indexing.index([ContentInput(s3_uri=uri)], index="clips")
    assert len(report.jobs) == 1 and report.failed == []
    video = fake.calls[-1].kwargs["modelInput"]["segmentedEmbeddingParams"]["video"]
    assert video["source"] == {"s3Location": {"uri": uri}}  # the object itself: nothing staged, nothing read
    assert recorder.on(SRC) == [("HeadObject", "clips/talk.mp4")]
    assert [k for op, b, k in recorder.calls if op == "PutObject"] == []


async def test_without_a_staging_bucket_an_s3_video_is_downloaded_and_the_copy_removed(
    tmp_path: Path, clients: tuple[Any, Any]
) -> None:
    server, bedrock_s3 = clients
    put(server, "clips/short.mp4", make_mp4(tmp_path / "short.mp4", seconds=2.0).read_bytes())
    put(server, "clips/broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # an mp4 header, no movie
    fake = FakeBedrockRuntime(s3=bedrock_s3)
    core = nova_core(tmp_path, fake, s3=server)
    recorder = Recorder(server)
    report = await core.indexing.index([ContentInput(s3_uri=f"s3://{SRC}/clips/")], index="clips")
    assert report.indexed_sources == 1 and [f.source for f in report.failed] == [f"s3://{SRC}/clips/broken.mp4"]
    assert sorted(k for op, k in recorder.on(SRC) if op == "GetObject") == ["clips/broken.mp4", "clips/short.mp4"]
    [body] = [b for b in fake.invoke_bodies if "video" in b["singleEmbeddingParams"]]
    assert "bytes" in body["singleEmbeddingParams"]["video"]["source"]  # windowed here, sent inline
    assert list((core.settings.data_dir / "downloads").iterdir()) == []  # after success and after the failure


async def test_a_key_no_s3location_can_name_is_downloaded_not_failed(tmp_path: Path, clients: tuple[Any, Any]) -> None:
    """S3 keys may hold any UTF-8 (a newline too); Nova's s3Location uri does not take every one: such an
    object is read here and sent inline, instead of failing as an internal error."""
    server, bedrock_s3 = clients
    text_uri = put(server, "odd/line\nbreak.txt", b"tidal power comes from the moon")
    image_uri = put(server, "odd/red\n.png", make_image(tmp_path / "red.png", "png").read_bytes())
    plain = put(server, "odd/plain.txt", b"wind turbines on the hill")
    fake = FakeBedrockRuntime(s3=bedrock_s3)
    core = nova_core(tmp_path, fake, s3=server)

    report = await core.indexing.index([ContentInput(s3_uri=f"s3://{SRC}/odd/")], index="odd-keys")
    assert (report.indexed_sources, report.failed) == (3, [])
    sent = [sources(b["singleEmbeddingParams"]) for b in fake.invoke_bodies]
    assert {"text": {"s3Location": {"uri": plain}}} in sent  # a nameable key still goes by reference
    assert not any(text_uri in str(s) or image_uri in str(s) for s in sent)
    hits = await core.search.search(query="tidal power", index="odd-keys", top_k=3, mode="vector")
    assert text_uri in [h.source for h in hits.hits]
    assert list((core.settings.data_dir / "downloads").iterdir()) == []


async def test_a_long_text_under_such_a_key_is_chunked_here_not_sent_async(
    tmp_path: Path, clients: tuple[Any, Any]
) -> None:
    server, bedrock_s3 = clients
    uri = put(server, "odd/long\nbook.txt", " ".join(f"word{n} about tides" for n in range(900)).encode())
    fake = FakeBedrockRuntime(s3=bedrock_s3, in_progress_polls=0)
    core = nova_core(tmp_path, fake, s3=server, async_media=True, staging_bucket=TEST_BUCKET)
    report = await core.indexing.index([ContentInput(s3_uri=uri)], index="odd-long")
    assert (report.indexed_sources, report.failed, report.jobs) == (1, [], [])
    assert report.indexed_segments > 1
    assert list((core.settings.data_dir / "downloads").iterdir()) == []
