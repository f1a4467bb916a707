"""Calls that are safe on a desktop: client roots, a time budget that hands off to a job, unknown arguments
refused, cancellation that stops the work, a deleted index that stops its writer, and no bare errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root
from support import local_core

from nova_mcp_server.server import build_server

pytestmark = pytest.mark.anyio


def folder_of(tmp_path: Path, name: str, files: int) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"note{i}.txt").write_text(f"note {i} about the {['sea', 'hills', 'city'][i % 3]} at dawn")
    return folder


def roots_callback(*uris: str) -> Any:
    async def answer(ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=u) for u in uris])  # type: ignore[arg-type]

    return answer


@pytest.mark.parametrize("mode", ["legacy", None])
async def test_client_roots_are_used_when_offered_and_never_assumed(
    tmp_path: Path, tiny_model: Path, mode: str | None
) -> None:
    shared = folder_of(tmp_path, "workspace", 2)
    core = local_core(tmp_path, tiny_model, allowed_roots=[])  # nothing configured: only the client's roots
    server = build_server(core, poll_seconds=0)
    era = {"mode": mode} if mode else {}
    async with Client(server, list_roots_callback=roots_callback(shared.as_uri(), "file:///"), **era) as client:
        result = await client.call_tool("index_content", {"sources": [str(shared)], "index": "roots"})
        assert not result.is_error, result.content[0].text
        assert result.structured_content["indexed_sources"] == 2
        outside = await client.call_tool("index_content", {"sources": [str(tmp_path / "data")], "index": "roots"})
        assert outside.is_error, "the disk root offered by the client is refused, and data/ is outside the workspace"
    async with Client(build_server(local_core(tmp_path / "b", tiny_model, allowed_roots=[])), **era) as client:
        refused = await client.call_tool("index_content", {"sources": [str(shared)], "index": "roots"})
        text = refused.content[0].text
        assert refused.is_error and "NOVA_MCP_ALLOWED_ROOTS" in text and "Claude Desktop" in text and "Kiro" in text


async def test_a_call_past_its_time_budget_returns_and_continues_as_a_job(tmp_path: Path, tiny_model: Path) -> None:
    folder = folder_of(tmp_path, "many", 12)
    core = local_core(tmp_path, tiny_model, call_time_budget_s=1e-6)
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("index_content", {"sources": [str(folder)], "index": "budget"})
        assert not result.is_error, result.content[0].text
        report = result.structured_content
        assert report["not_yet_indexed"] + report["indexed_sources"] == 12 and report["not_yet_indexed"] > 0
        job_id = report["continues_in_job"]
        assert job_id in report["jobs"]
        with anyio.fail_after(60):  # a hang guard, not a speed bound
            while (job := (await client.call_tool("job_status", {"job_id": job_id})).structured_content["jobs"][0])[
                "status"
            ] not in ("completed", "partial", "failed"):
                await anyio.sleep(0.05)
        assert job["status"] == "completed"
        assert job["result"]["indexed_sources"] + job["result"]["skipped_unchanged"] == 12
    assert len(core.store.list_vectors("budget").vectors) == 12


async def test_unknown_arguments_are_refused_with_the_names_the_tool_takes(tmp_path: Path, tiny_model: Path) -> None:
    folder = folder_of(tmp_path, "docs", 1)
    core = local_core(tmp_path, tiny_model)
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("index_content", {"paths": [str(folder)], "index": "strict"})
        text = result.content[0].text
        assert result.is_error and '"paths" (did you mean "sources"?)' in text and "It takes:" in text
        assert "texts" in text and "nothing was done" in text
        assert core.store.list_indexes() == []
        search = await client.call_tool("semantic_search", {"query": "x", "k": 3})
        assert search.is_error and '"top_k"' in search.content[0].text


async def test_cancelling_a_call_stops_its_work(tmp_path: Path, tiny_model: Path) -> None:
    folder = folder_of(tmp_path, "long", 40)
    core = local_core(tmp_path, tiny_model, call_time_budget_s=3600)
    embed = core.embedder.embed
    calls = 0
    second, release = anyio.Event(), anyio.Event()

    async def gated(requests: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            second.set()
            await release.wait()
        return await embed(requests)

    core.embedder.embed = gated  # type: ignore[method-assign]
    async with Client(build_server(core, poll_seconds=0)) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "index_content", {"sources": [str(folder)], "index": "cancel"})
            await second.wait()
            tg.cancel_scope.cancel()  # the client gives up: notifications/cancelled
        release.set()
        await client.call_tool("list_indexes", {})  # the server answers the next request: the call is gone
        at_cancel = calls
        for _ in range(20):
            await anyio.sleep(0)
        assert calls == at_cancel <= 3, "no embedding after the cancel"


async def test_deleting_the_index_stops_a_running_index_call(tmp_path: Path, tiny_model: Path) -> None:
    folder = folder_of(tmp_path, "big", 30)
    core = local_core(tmp_path, tiny_model, call_time_budget_s=3600)
    await core.catalog.create("doomed")
    embed = core.embedder.embed
    calls = 0
    first, deleted = anyio.Event(), anyio.Event()

    async def gated(requests: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            first.set()
            await deleted.wait()
        return await embed(requests)

    core.embedder.embed = gated  # type: ignore[method-assign]
    async with Client(build_server(core, poll_seconds=0)) as client:
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def run() -> None:
                results.append(await client.call_tool("index_content", {"sources": [str(folder)], "index": "doomed"}))

            tg.start_soon(run)
            await first.wait()
            await client.call_tool("delete_index", {"name": "doomed"})
            deleted.set()
        report = results[0]
    assert calls <= 1 + 2 * 2, "at most the sources already under way are embedded after the delete"
    text = report.content[0].text
    assert "was deleted while this call was writing" in text
    assert [i.name for i in core.store.list_indexes()] == [], "nothing recreated the deleted index"


async def test_an_unexpected_failure_is_a_message_not_a_bare_error(tmp_path: Path, tiny_model: Path) -> None:
    core = local_core(tmp_path, tiny_model)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    core.store.list_indexes = broken  # type: ignore[method-assign]
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("list_indexes", {})
    text = result.content[0].text
    assert result.is_error and "internal error" in text and "try the call again" in text
    assert "secret internal detail" not in text and text.strip() != "Error executing tool list_indexes"


async def test_a_bug_on_one_file_fails_that_file_only(tmp_path: Path, tiny_model: Path) -> None:
    folder = folder_of(tmp_path, "mixed", 4)
    core = local_core(tmp_path, tiny_model)
    real = core.ingest.segment_batches

    def breaks_on_note2(source: Any, info: Any, size: int) -> Any:
        if source.display.endswith("note2.txt"):
            raise RuntimeError("a segmenter bug")
        return real(source, info, size)

    core.ingest.segment_batches = breaks_on_note2  # type: ignore[method-assign]
    async with Client(build_server(core, poll_seconds=0)) as client:
        result = await client.call_tool("index_content", {"sources": [str(folder)], "index": "one-bad"})
    assert not result.is_error, result.content[0].text
    report = result.structured_content
    assert report["indexed_sources"] == 3 and [f["source"].endswith("note2.txt") for f in report["failed"]] == [True]
    reason = report["failed"][0]["reason"]
    assert "internal error" in reason and "other sources are not affected" in reason and "segmenter bug" not in reason


async def test_one_large_file_past_the_budget_stops_at_its_next_batch_and_the_job_indexes_it_whole(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is checked between a source's batches too: a single big file cannot hold the call. The
    clock the indexing service reads jumps past the deadline once the file's first batch is embedded."""
    from nova_mcp_server.models import ContentInput
    from nova_mcp_server.services import indexing

    big = tmp_path / "big.txt"
    big.write_text(
        "\n\n".join(f"paragraph {i} about the {['sea', 'hills', 'city'][i % 3]} at dawn" * 6 for i in range(400))
    )
    core = local_core(tmp_path, tiny_model)
    batches: list[int] = []
    real_embed = core.policy.embed

    async def counting(requests: Any, progress: Any = None) -> Any:
        batches.append(len(requests))
        return await real_embed(requests, progress)

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return 1e9 if batches else 0.0  # before the deadline until the first batch is embedded

    monkeypatch.setattr(core.policy, "embed", counting)
    monkeypatch.setattr(indexing, "time", Clock)
    report = await core.indexing.index([ContentInput(path=str(big))], index="big", deadline=100.0)
    assert (report.not_yet_indexed, report.indexed_sources, report.failed) == (1, 0, [])
    assert len(batches) == 1  # it stopped at the next batch instead of embedding the rest of the file
    monkeypatch.setattr(indexing, "time", __import__("time"))
    whole = await core.indexing.index([ContentInput(path=str(big))], index="big")
    assert whole.indexed_sources == 1 and whole.indexed_segments > 2 * batches[0]
    stored = core.store.list_vectors("big").vectors
    assert len(stored) == whole.indexed_segments  # nothing of the stopped attempt is left over
    again = await core.indexing.index([ContentInput(path=str(big))], index="big")
    assert again.skipped_unchanged == 1
