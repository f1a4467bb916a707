"""Background index jobs: durable, resumed after a crash, and announced to subscribers of nova://jobs/{id}."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPDeprecationWarning
from mcp.types import ResourceUpdatedNotification
from support import local_core

from nova_mcp_server.server import build_server
from nova_mcp_server.services.jobs import INDEX_JOB

pytestmark = pytest.mark.anyio


def make_folder(tmp_path: Path, files: int = 6) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(files):
        (folder / f"doc{i}.txt").write_text(f"document number {i} about red apples and green pears")
    return folder


async def wait_done(client: Client, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            job = (await client.call_tool("job_status", {"job_id": job_id})).structured_content["jobs"][0]
            if job["status"] in ("completed", "partial", "failed"):
                return job
            await anyio.sleep(0.05)


async def test_background_index_job_reports_its_result(tmp_path: Path, tiny_model: Path) -> None:
    folder = make_folder(tmp_path)
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        started = await client.call_tool("index_content", {"sources": [str(folder)], "index": "bg-docs", "wait": False})
        assert not started.is_error, started.content[0].text
        job_id = started.structured_content["jobs"][0]
        assert started.structured_content["indexed_sources"] == 0
        job = await wait_done(client, job_id)
        assert job["status"] == "completed" and job["kind"] == INDEX_JOB
        assert job["result"]["indexed_sources"] == 6 and job["progress_done"] == job["progress_total"] == 6
        assert job["vectors_written"] == 6
        hits = await client.call_tool("semantic_search", {"query": "document number 3", "index": "bg-docs"})
        assert hits.structured_content["hits"]


async def test_an_interrupted_index_job_resumes_after_restart(tmp_path: Path, tiny_model: Path) -> None:
    folder = make_folder(tmp_path)
    crashed = local_core(tmp_path, tiny_model)
    payload = {"items": [{"path": str(folder)}], "index": "resumed", "options": {}}
    job_id = crashed.jobstore.create(kind=INDEX_JOB, index="resumed", source=str(folder), payload=payload)
    crashed.jobstore.update(job_id, status="ingesting", lease_until=time.time() - 1)  # its runner died
    crashed.jobstore.close()

    restarted = local_core(tmp_path, tiny_model)
    async with Client(build_server(restarted, poll_seconds=0.05)) as client:
        job = await wait_done(client, job_id)
    assert job["status"] == "completed" and job["result"]["indexed_sources"] == 6
    assert restarted.store.get_index("resumed").vector_count == 6


async def test_a_live_lease_is_not_run_twice(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)
    job_id = core.jobstore.create(kind=INDEX_JOB, index="busy", source="x", payload={"items": [], "index": "busy"})
    assert core.jobstore.claim_ingest(job_id, 60)
    assert not core.jobstore.claim_ingest(job_id, 60)
    assert (await core.jobs.advance(job_id)).status == "ingesting"


async def test_subscribers_hear_about_job_changes_on_both_protocol_eras(tmp_path: Path, tiny_model: Path) -> None:
    folder = make_folder(tmp_path, files=2)
    core = local_core(tmp_path, tiny_model)
    server = build_server(core, poll_seconds=0)
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async with Client(server, mode="legacy", message_handler=on_message) as legacy:
        started = await legacy.call_tool("index_content", {"sources": [str(folder)], "index": "subs", "wait": False})
        job_id = started.structured_content["jobs"][0]
        uri = f"nova://jobs/{job_id}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # the legacy era is what most clients speak
            await legacy.subscribe_resource(uri)
        await wait_done(legacy, job_id)
        with anyio.fail_after(5):
            while uri not in updates:
                await anyio.sleep(0.02)

    async with Client(server) as modern:
        started = await modern.call_tool("index_content", {"texts": ["a b c"], "index": "subs", "wait": False})
        job_id = started.structured_content["jobs"][0]
        async with modern.listen(resource_subscriptions=[f"nova://jobs/{job_id}"]) as subscription:
            await core.jobs.notify(job_id)
            with anyio.fail_after(5):
                event = await subscription.__anext__()
        assert event.uri == f"nova://jobs/{job_id}"


async def test_a_lease_whose_holder_died_is_taken_over_at_once(tmp_path: Path, tiny_model: Path) -> None:
    import socket
    import subprocess
    import sys

    folder = make_folder(tmp_path, files=2)
    core = local_core(tmp_path, tiny_model)
    payload = {"items": [{"path": str(folder)}], "index": "orphan", "options": {}}
    job_id = core.jobstore.create(kind=INDEX_JOB, index="orphan", source=str(folder), payload=payload)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    core.jobstore.update(
        job_id,
        status="ingesting",
        lease_until=time.time() + 3600,
        lease_owner=f"{socket.gethostname()}:{dead.stdout.strip()}",
    )
    elsewhere = core.jobstore.create(kind=INDEX_JOB, index="orphan", source="x", payload=payload)
    core.jobstore.update(elsewhere, status="ingesting", lease_until=time.time() + 3600, lease_owner="other-host:1")

    assert (await core.jobs.advance(job_id)).status == "completed"
    assert (await core.jobs.advance(elsewhere)).status == "ingesting", "another machine's live lease is respected"
