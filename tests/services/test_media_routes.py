"""Which way long media goes on the aws backend: native formats through the async task, others in sync
windows; never a bare error that aborts the call or a job row left pending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import make_audio
from support import nova_core

from nova_mcp_server.models import ContentInput

pytestmark = pytest.mark.anyio
BUCKET = "nova-test-output"


@pytest.mark.parametrize("fmt", ["flac", "m4a"])
async def test_long_audio_nova_does_not_take_is_windowed_not_sent_async(tmp_path: Path, moto_s3: Any, fmt: str) -> None:
    audio = make_audio(tmp_path / f"talk.{fmt}", fmt, seconds=40.0)
    fake = FakeBedrockRuntime(s3=moto_s3)
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET, segment_seconds=10)
    report = await core.indexing.index(
        [ContentInput(path=str(audio)), ContentInput(text="a note beside it")], index="talks"
    )
    assert fake.count("start_async_invoke") == 0 and not report.jobs, "only native formats go async"
    assert core.jobstore.recent() == []
    assert report.indexed_sources + len(report.failed) == 2 and report.indexed_sources >= 1
    for failure in report.failed:  # if the format cannot be windowed here, it fails alone, with its reason
        assert failure.source.endswith(fmt) and "Error" not in failure.reason


async def test_separate_video_mode_writes_two_tagged_vectors_a_segment(tmp_path: Path) -> None:
    from fixtures.media import make_mp4

    video = make_mp4(tmp_path / "clip.mp4", seconds=4.0)
    core = nova_core(tmp_path, FakeBedrockRuntime(), video_embedding_mode="separate", segment_seconds=2)
    report = await core.indexing.index([ContentInput(path=str(video))], index="clips")
    assert report.indexed_sources == 1 and not report.failed, report
    stored = core.store.list_vectors("clips", return_metadata=True).vectors
    tags = sorted((v.metadata or {}).get("embedding_type") for v in stored)
    windows = {((v.metadata or {})["start_s"], (v.metadata or {})["end_s"]) for v in stored}
    assert len(stored) == 2 * len(windows) and tags == ["audio"] * len(windows) + ["video"] * len(windows)
    marker = core.store.get_vectors("clips", [min(v.key for v in stored)])[0].metadata or {}
    assert marker["segment_count"] == len(stored)
