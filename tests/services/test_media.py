"""The aws backend's flow through the MCP tools, with the Nova test fake and moto S3 for staging.

The vectors go to the local store, which implements S3 Vectors query semantics (moto has no query_vectors);
the S3 Vectors store's own behaviour is covered by the store conformance suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import BLUE, GREEN, RED, make_image, make_mp4, make_pdf
from mcp import Client
from support import nova_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio

BUCKET = "nova-test-output"


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


def keys_of(core: Any, index: str) -> list[str]:
    page = core.store.list_vectors(index, max_results=1000)
    assert page.next_token is None
    return sorted(v.key for v in page.vectors)


async def test_sync_requests_follow_the_nova_schema(tmp_path: Path, fake_bedrock: FakeBedrockRuntime) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_text("solar panels convert sunlight into electricity")
    make_image(folder / "b.png", "png", RED, (32, 32))
    make_pdf(folder / "c.pdf", ["wind turbines on page one", "hydro dams on page two"])
    make_mp4(folder / "d.mp4", seconds=4.0, colors_per_block=(GREEN, BLUE))
    core = nova_core(tmp_path, fake_bedrock)
    async with Client(build_server(core, poll_seconds=0)) as client:
        report = await call(client, "index_content", sources=[str(folder)], index="energy")
        assert report["indexed_sources"] == 4 and not report["failed"] and not report["jobs"]
        hits = (await call(client, "semantic_search", query="hydro dams", index="energy", top_k=3))["hits"]
        assert hits[0]["source"].endswith("c.pdf") and hits[0]["page"] == 2 and hits[0]["modality"] == "document"
        video = (await call(client, "semantic_search", query="anything", index="energy", modality=["video"]))["hits"]
        assert video and video[0]["start_s"] == 0.0 and video[0]["end_s"] == pytest.approx(4.0, abs=0.3)

    bodies = fake_bedrock.invoke_bodies
    params = [b["singleEmbeddingParams"] for b in bodies]
    assert {b["taskType"] for b in bodies} == {"SINGLE_EMBEDDING"}
    assert {p["embeddingDimension"] for p in params} == {256}
    index_calls = [p for p in params if p["embeddingPurpose"] == "GENERIC_INDEX"]
    kinds = {next(k for k in ("text", "image", "audio", "video") if k in p) for p in index_calls}
    assert kinds == {"text", "image", "video"}
    assert any(p.get("image", {}).get("detailLevel") == "DOCUMENT_IMAGE" for p in index_calls)
    queries = [p for p in params if p["embeddingPurpose"] != "GENERIC_INDEX"]
    assert [p["embeddingPurpose"] for p in queries] == ["GENERIC_RETRIEVAL", "VIDEO_RETRIEVAL"]


def long_video(tmp_path: Path, seconds: float = 40.0) -> Path:
    folder = tmp_path / "media"
    folder.mkdir(exist_ok=True)
    return make_mp4(
        folder / "talk.mp4", seconds=seconds, colors_per_block=(RED, GREEN, BLUE, RED), size=(64, 48), fps=2
    )


async def test_long_video_goes_async_and_is_ingested_exactly_once_across_restarts(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, in_progress_polls=1)
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET, segment_seconds=10)
    async with Client(build_server(core, poll_seconds=0)) as client:
        report = await call(client, "index_content", sources=[str(video)], index="talks")
        assert report["indexed_sources"] == 0 and len(report["jobs"]) == 1
        job_id = report["jobs"][0]
        start = fake.calls[-1].kwargs
        model_input = start["modelInput"]
        assert start["clientRequestToken"] == job_id
        assert model_input["taskType"] == "SEGMENTED_EMBEDDING"
        video_params = model_input["segmentedEmbeddingParams"]["video"]
        assert video_params["segmentationConfig"] == {"durationSeconds": 10}
        assert video_params["source"]["s3Location"]["uri"].startswith(f"s3://{BUCKET}/nova-mcp/inputs/")
        assert video_params["embeddingMode"] == "AUDIO_VIDEO_COMBINED"

        first = (await call(client, "job_status", job_id=job_id))["jobs"][0]
        assert first["status"] == "running"
        done = (await call(client, "job_status", job_id=job_id))["jobs"][0]
        assert done["status"] == "completed" and done["vectors_written"] == 4 and done["error"] is None
        keys = keys_of(core, "talks")
        assert len(keys) == 4
        again = (await call(client, "job_status", job_id=job_id))["jobs"][0]
        assert again["status"] == "completed" and keys_of(core, "talks") == keys

        hits = (await call(client, "semantic_search", query="talk", index="talks", top_k=10))["hits"]
        assert sorted((h["start_s"], h["end_s"]) for h in hits) == [(0, 10), (10, 20), (20, 30), (30, 40)]
        skipped = await call(client, "index_content", sources=[str(video)], index="talks")
        assert skipped["skipped_unchanged"] == 1 and not skipped["jobs"]

    restarted = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    async with Client(build_server(restarted, poll_seconds=0)) as client:
        jobs = (await call(client, "job_status"))["jobs"]
        assert [(j["id"], j["status"]) for j in jobs] == [(job_id, "completed")]
    assert keys_of(restarted, "talks") == keys
    assert fake.count("start_async_invoke") == 1


async def test_restart_before_completion_finishes_the_job(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, in_progress_polls=3)
    first = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    report = await first.indexing.index([_path(video)], index="talks")
    job_id = report.jobs[0]
    assert (await first.jobs.status(job_id))[0].status == "running"
    first.jobstore.close()

    second = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    for _ in range(5):
        await second.jobs.poll()
    job = second.jobstore.get(job_id)
    assert job.status == "completed" and job.vectors_written == 4
    assert len(keys_of(second, "talks")) == 4
    assert fake.count("start_async_invoke") == 1


async def test_partial_failure_keeps_what_succeeded_and_a_rerun_completes(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, failed_segments={2})
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    job_id = (await core.indexing.index([_path(video)], index="talks")).jobs[0]
    job = (await core.jobs.status(job_id))[0]
    assert job.status == "partial" and job.vectors_written == 3
    assert len(job.segment_failures) == 1 and "segment 2" in job.segment_failures[0]
    assert "retry" in (job.error or "")
    assert len(keys_of(core, "talks")) == 3

    fake.failed_segments = set()
    rerun = await core.indexing.index([_path(video)], index="talks")
    assert rerun.skipped_unchanged == 0 and len(rerun.jobs) == 1
    job2 = (await core.jobs.status(rerun.jobs[0]))[0]
    assert job2.status == "completed" and job2.vectors_written == 4
    keys = keys_of(core, "talks")
    assert len(keys) == len(set(keys)) == 4
    marker = core.store.get_vectors("talks", [keys[0]], return_metadata=True)[0].metadata
    assert "partial" not in marker and marker["segment_count"] == 4


async def test_failed_first_segment_still_writes_a_partial_marker(tmp_path: Path, moto_s3: Any) -> None:
    """Segment 0 failing must not leave the source without a commit marker (it would look never indexed)."""
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, failed_segments={0})
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    job_id = (await core.indexing.index([_path(video)], index="talks")).jobs[0]
    job = (await core.jobs.status(job_id))[0]
    assert job.status == "partial" and job.vectors_written == 3
    keys = keys_of(core, "talks")
    marker = core.store.get_vectors("talks", [keys[0]], return_metadata=True)[0].metadata
    assert marker["partial"] is True and marker["segment_count"] == 3
    assert marker["start_s"] > 0, "the first stored segment is the first that succeeded, not the failed one"
    assert all("indexed_at" in v.metadata for v in core.store.list_vectors("talks", return_metadata=True).vectors)


async def test_failed_job_says_why(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, fail_job="Input video could not be decoded")
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    job_id = (await core.indexing.index([_path(video)], index="talks")).jobs[0]
    async with Client(build_server(core, poll_seconds=0)) as client:
        job = (await call(client, "job_status", job_id=job_id))["jobs"][0]
        assert job["status"] == "failed" and "could not be decoded" in job["error"]
        resource = json.loads((await client.read_resource(f"nova://jobs/{job_id}")).contents[0].text)
        assert resource["status"] == "failed"


def _path(path: Path) -> Any:
    from nova_mcp_server.models import ContentInput

    return ContentInput(path=str(path))
