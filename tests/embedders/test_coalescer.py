"""Coalescer: concurrent calls share model runs, each keeps its own outcome, cancellation loses nobody's work."""

from __future__ import annotations

import threading

import anyio
import pytest

from nova_mcp_server.embedders.batching import Coalescer

pytestmark = pytest.mark.anyio


class Runs:
    """run_many that records each run's jobs; the first run blocks until `release` so others queue up."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail or set()

    def __call__(self, jobs: list[str]) -> list[str | BaseException]:
        self.batches.append(list(jobs))
        self.started.set()
        self.release.wait(10)
        return [ValueError(f"bad {j}") if j in self.fail else j.upper() for j in jobs]


async def _submit_all(coalescer: Coalescer[str, str], runs: Runs, later: list[str]) -> dict[str, object]:
    results: dict[str, object] = {}

    async def one(job: str) -> None:
        try:
            results[job] = await coalescer.submit(job)
        except ValueError as exc:
            results[job] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "first")
        await anyio.to_thread.run_sync(runs.started.wait, 10)
        for job in later:
            tg.start_soon(one, job)
        for _ in range(20):  # let every later call reach the queue
            await anyio.lowlevel.checkpoint()
        runs.release.set()
    return results


async def test_calls_waiting_for_a_run_share_the_next_one() -> None:
    runs = Runs()
    coalescer: Coalescer[str, str] = Coalescer(runs, max_items=64, size=lambda j: 1)
    results = await _submit_all(coalescer, runs, ["a", "b", "c", "d"])
    assert runs.batches == [["first"], ["a", "b", "c", "d"]]
    assert results == {"first": "FIRST", "a": "A", "b": "B", "c": "C", "d": "D"}


async def test_a_shared_run_takes_at_most_max_items_oldest_first() -> None:
    runs = Runs()
    coalescer: Coalescer[str, str] = Coalescer(runs, max_items=3, size=lambda j: 2 if j == "big" else 1)
    await _submit_all(coalescer, runs, ["a", "big", "b", "c"])
    assert runs.batches[0] == ["first"]
    assert runs.batches[1] == ["a", "big"]  # "b" would make 4 > 3
    assert sorted(sum(runs.batches[2:], [])) == ["b", "c"]


async def test_one_bad_job_fails_only_itself() -> None:
    runs = Runs(fail={"b"})
    coalescer: Coalescer[str, str] = Coalescer(runs, max_items=64, size=lambda j: 1)
    results = await _submit_all(coalescer, runs, ["a", "b", "c"])
    assert results["a"] == "A" and results["c"] == "C"
    assert isinstance(results["b"], ValueError) and str(results["b"]) == "bad b"


async def test_a_cancelled_leader_still_finishes_the_run_for_the_others() -> None:
    runs = Runs()
    coalescer: Coalescer[str, str] = Coalescer(runs, max_items=64, size=lambda j: 1)
    results: dict[str, str] = {}
    leader_cancelled = False

    async def follower(job: str) -> None:
        results[job] = await coalescer.submit(job)

    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        nonlocal leader_cancelled
        with leader_scope:
            await coalescer.submit("first")
        leader_cancelled = leader_scope.cancelled_caught

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await anyio.to_thread.run_sync(runs.started.wait, 10)
        tg.start_soon(follower, "a")
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        leader_scope.cancel()  # the first run is in progress: it must finish, and "a" must still run
        runs.release.set()
    assert leader_cancelled
    assert results == {"a": "A"}
    assert runs.batches == [["first"], ["a"]]


async def test_a_call_cancelled_while_queued_is_never_run() -> None:
    runs = Runs()
    coalescer: Coalescer[str, str] = Coalescer(runs, max_items=64, size=lambda j: 1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.submit, "first")
        await anyio.to_thread.run_sync(runs.started.wait, 10)
        with anyio.CancelScope() as scope:
            tg.start_soon(lambda: _cancel_soon(scope))
            await coalescer.submit("gone")
        runs.release.set()
    assert runs.batches == [["first"]]


async def _cancel_soon(scope: anyio.CancelScope) -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()
    scope.cancel()
