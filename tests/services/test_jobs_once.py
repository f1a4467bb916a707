"""Jobs run once and always end: lease heartbeat, no self-claims, rows only for started work, read-only.

Counted by Bedrock calls and `put_vectors`, not by key sets: deterministic keys would hide a double run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from fakes.nova import FakeBedrockRuntime
from fixtures.media import BLUE, GREEN, RED, make_mp4
from support import nova_core

from nova_mcp_server.errors import NovaError
from nova_mcp_server.models import ContentInput
from nova_mcp_server.stores.local import LocalVectorStore

pytestmark = pytest.mark.anyio
BUCKET = "nova-test-output"


class CountingStore(LocalVectorStore):
    """The real local store, counting put_vectors calls and records."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0
        self.records = 0

    def put_vectors(self, index: str, vectors: Any) -> None:
        self.puts += 1
        self.records += len(vectors)
        super().put_vectors(index, vectors)


async def test_a_job_runs_once_while_its_lease_would_lapse_under_a_slow_source(tmp_path: Path) -> None:
    """A slow first call (a model download, a huge file) must not let the poller start the job again."""
    fake = FakeBedrockRuntime()
    store = CountingStore(tmp_path / "counted")
    core = nova_core(tmp_path, fake, lease_seconds=0.3, store=store)
    entered, gate, renewed = anyio.Event(), anyio.Event(), anyio.Event()
    embed = core.embedder.embed
    renew = core.jobs.store.renew
    renewals = 0

    async def slow_embed(requests: Any) -> Any:
        entered.set()
        await gate.wait()
        return await embed(requests)

    async def counted_renew(job_id: str, lease: float) -> bool:
        nonlocal renewals
        renewals += 1
        if renewals >= 2:
            renewed.set()
        return await renew(job_id, lease)

    core.embedder.embed = slow_embed  # type: ignore[method-assign]
    core.jobs.store.renew = counted_renew  # type: ignore[method-assign]
    texts = [ContentInput(text=f"note {i} about the weather in spring") for i in range(3)]
    async with anyio.create_task_group() as tg:
        core.jobs.spawn = tg.start_soon
        job_id = await core.jobs.start_index_job(texts, index="once")
        await entered.wait()
        # The lease runs out under the running job, as a stalled heartbeat or a slow host would let it.
        core.jobstore.update(job_id, lease_until=time.time() - 1)
        for _ in range(3):  # the poller and job_status both try to move the job
            await core.jobs.poll()
            await core.jobs.status(job_id)
        await renewed.wait()  # the runner's heartbeat renews its own lease
        assert core.jobstore.get(job_id).status == "running"
        gate.set()
    job = core.jobstore.get(job_id)
    assert job.status == "completed" and job.attempts == 1
    assert fake.count("invoke_model") == 3, "each segment embedded once"
    assert store.records == 3 and store.puts == 1


async def test_a_failed_async_start_leaves_no_job_row(tmp_path: Path, moto_s3: Any) -> None:
    """Without a row, no poller can start a second billed Bedrock job after the user retries."""
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0)
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    core.policy.embedder.start_segmented = _refusing_start  # type: ignore[attr-defined]
    report = await core.indexing.index([ContentInput(path=str(video))], index="talks")
    assert report.failed and "refused" in report.failed[0].reason and not report.jobs
    assert core.jobstore.recent() == []


async def test_an_async_job_whose_index_was_deleted_fails_with_that_reason(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0, in_progress_polls=1)
    core = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    job_id = (await core.indexing.index([ContentInput(path=str(video))], index="talks")).jobs[0]
    await core.catalog.delete("talks")
    await core.jobs.poll()  # still in progress at Bedrock
    await core.jobs.poll()  # done: its output has nowhere to go
    job = core.jobstore.get(job_id)
    assert job.status == "failed" and job.attempts == 1, "failed at once, not retried until the cap"
    assert "the target index is gone" in (job.error or "") and "'talks'" in (job.error or "")


async def test_read_only_reports_jobs_without_advancing_them(tmp_path: Path, moto_s3: Any) -> None:
    video = long_video(tmp_path)
    fake = FakeBedrockRuntime(s3=moto_s3, media_seconds=40.0)
    writer = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET)
    job_id = (await writer.indexing.index([ContentInput(path=str(video))], index="talks")).jobs[0]
    reader = nova_core(tmp_path, fake, s3=moto_s3, async_media=True, staging_bucket=BUCKET, read_only=True)
    polls = fake.count("get_async_invoke")
    await reader.jobs.poll()
    [job] = await reader.jobs.status(job_id)
    assert job.status == "running" and fake.count("get_async_invoke") == polls
    with pytest.raises(NovaError, match="read-only"):
        await reader.jobs.start_index_job([ContentInput(text="x")], index="talks")
    [done] = await writer.jobs.status(job_id)
    assert done.status == "completed"


async def test_the_job_table_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """A CLI holding the job table's write lock must not freeze every MCP session on this loop."""
    import sqlite3

    core = nova_core(tmp_path, FakeBedrockRuntime())
    job_id = await core.jobs.start_index_job([ContentInput(text="one note")], index="free")
    holder = sqlite3.connect(tmp_path / "data" / "jobs.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    loop_ran = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(core.jobs.status, job_id)  # waits on the lock, in a worker thread

            async def other_session() -> None:
                loop_ran.set()

            tg.start_soon(other_session)
            with anyio.move_on_after(20):
                await loop_ran.wait()
            assert loop_ran.is_set(), "the event loop was blocked by the job table"
            holder.execute("COMMIT")
    finally:
        holder.close()


async def _refusing_start(*args: Any, **kwargs: Any) -> str:
    from nova_mcp_server.errors import AccessDenied

    raise AccessDenied("StartAsyncInvoke was refused: not authorized.")


def long_video(tmp_path: Path) -> Path:
    return make_mp4(tmp_path / "talk.mp4", seconds=40.0, colors_per_block=(RED, GREEN, BLUE, RED), size=(64, 48), fps=2)
