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
