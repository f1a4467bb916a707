"""Background jobs: index runs handed off with `wait=false` (or past a call's time budget), and long media.

A job runs once. Its runner holds the row's lease and renews it on a heartbeat (every lease/3), so a slow
source cannot let the lease lapse under it; this process never claims a job it is running itself; each claim
counts an attempt and a job past the cap fails with its last error. Progress writes are throttled, and every
job ends completed, partial or failed. In read-only mode jobs are reported, never advanced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from nova_mcp_server.errors import InvalidInput, NovaError
from nova_mcp_server.jobstore import FINISHED, LEASE_SECONDS, AsyncJobStore
from nova_mcp_server.models import ContentInput, IndexReport, JobInfo
from nova_mcp_server.services.indexing import Indexing
from nova_mcp_server.services.media import MediaJobs
from nova_mcp_server.stores.base import check_index_name

log = logging.getLogger(__name__)
INDEX_JOB = "index"
PROGRESS_EVERY_S = 1.0  # at most one progress write (and notification) a second per job
Listener = Callable[[str], Awaitable[None]]
Spawn = Callable[..., Any]


class Jobs:
    def __init__(
        self,
        store: AsyncJobStore,
        indexing: Indexing,
        media: MediaJobs | None,
        *,
        default_index: str,
        read_only: bool = False,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.indexing = indexing
        self.media = media
        self.default_index = default_index
        self.read_only = read_only
        self.lease_seconds = lease_seconds
        self.spawn: Spawn | None = None  # the server's task group; None: run inline (CLI, tests)
        self.listeners: list[Listener] = []
        self._running: set[str] = set()  # jobs this process runs now: never claimed a second time

    # ---- reading -------------------------------------------------------------------------------------------

    async def status(self, job_id: str | None = None, *, limit: int = 20) -> list[JobInfo]:
        """One job (or the recent ones), moved forward first unless the server is read-only."""
        if job_id is None:
            if not self.read_only:
                for active in await self.store.active_ids():
                    await self.advance(active)
            return await self.store.recent(limit)
        await self.store.get(job_id)
        if not self.read_only:
            await self.advance(job_id)
        return [await self.store.get(job_id)]

    async def get(self, job_id: str) -> JobInfo:
        return await self.store.get(job_id)

    async def recent(self, limit: int = 20) -> list[JobInfo]:
        return await self.store.recent(limit)

    # ---- moving jobs -----------------------------------------------------------------------------------------

    async def advance(self, job_id: str) -> JobInfo:
        before = await self.store.get(job_id)
        if before.status in FINISHED or job_id in self._running:
            return before
        if before.kind == INDEX_JOB:
            if await self.store.claim(job_id, self.lease_seconds, status="running"):
                await self._launch(job_id)
        elif self.media is not None:
            await self.media.advance(job_id)
        after = await self.store.get(job_id)
        if _moved(before, after):
            await self.notify(job_id)
        return after

    async def poll(self) -> None:
        if self.read_only:
            return
        for job_id in await self.store.active_ids():
            try:
                await self.advance(job_id)
            except NovaError as exc:  # transient: keep the job and try again on the next tick
                await self.store.update(job_id, error=exc.text)

    async def notify(self, job_id: str) -> None:
        for listener in list(self.listeners):
            await listener(job_id)

    # ---- index jobs ----------------------------------------------------------------------------------------

    async def start_index_job(self, items: Sequence[ContentInput], *, index: str | None = None, **options: Any) -> str:
        """Index in the background as a durable job; a restart resumes it (unchanged sources are skipped)."""
        if self.read_only:
            raise InvalidInput("This server is read-only; it starts no jobs.")
        name = index or self.default_index
        check_index_name(name)
        payload: dict[str, Any] = {
            "items": [c.model_dump(exclude_none=True) for c in items],
            "index": name,
            "options": {k: v for k, v in options.items() if k != "roots"},
        }
        if options.get("roots") is not None:  # the roots the starting call was allowed, kept for a resume
            payload["roots"] = [str(r) for r in options["roots"]]
        shown = ", ".join(c.path or c.s3_uri or "inline text" for c in items[:3]) + (" ..." if len(items) > 3 else "")
        job_id = await self.store.create(
            kind=INDEX_JOB, index=name, source=shown, payload=payload, status="running", lease=self.lease_seconds
        )
        await self._launch(job_id)
        return job_id

    async def _launch(self, job_id: str) -> None:
        """Run a claimed job in the server's task group, or here and now without one (CLI, tests)."""
        self._running.add(job_id)
        if self.spawn is not None:
            self.spawn(self._run_guarded, job_id)
        else:
            await self._run_guarded(job_id)

    async def _run_guarded(self, job_id: str) -> None:
        try:
            await self.run_index_job(job_id)
        finally:
            self._running.discard(job_id)

    async def run_index_job(self, job_id: str) -> None:
        payload = await self.store.payload(job_id)
        items = [ContentInput(**c) for c in payload["items"]]
        last = 0.0

        async def progress(done: float, total: float | None, message: str) -> None:
            nonlocal last
            if time.monotonic() - last < PROGRESS_EVERY_S and done != total:
                return
            last = time.monotonic()
            await self.store.update(job_id, progress_done=int(done), progress_total=total)
            await self.notify(job_id)

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat, job_id)
            fields = await self._index(job_id, items, payload, progress)
            tg.cancel_scope.cancel()
        await self.store.update(job_id, lease_until=0, **fields)
        await self.notify(job_id)

    async def _index(
        self, job_id: str, items: list[ContentInput], payload: dict[str, Any], progress: Any
    ) -> dict[str, Any]:
        try:
            roots = [Path(r) for r in payload["roots"]] if "roots" in payload else None
            report = await self.indexing.index(
                items, index=payload["index"], progress=progress, roots=roots, **payload["options"]
            )
        except NovaError as exc:
            return {"status": "failed", "error": exc.text}
        except Exception:  # a bug must fail the job, not the server that runs it
            log.exception("index job %s crashed", job_id)
            return {"status": "failed", "error": "internal error; see the server log"}
        payload["report"] = report.model_dump(mode="json")
        return {
            "status": _index_status(report),
            "payload": payload,
            "vectors_written": report.indexed_segments,
            "error": f"{len(report.failed)} source(s) failed; see result.failed." if report.failed else None,
        }

    async def _heartbeat(self, job_id: str) -> None:
        """Renew the lease every lease/3 while the job runs, so no claimer sees it lapse."""
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            if not await self.store.renew(job_id, self.lease_seconds):
                log.warning("job %s: lease taken over by another holder", job_id)
                return


def _index_status(report: IndexReport) -> str:
    if not report.failed:
        return "completed"
    if report.indexed_sources or report.skipped_unchanged or report.jobs:
        return "partial"
    return "failed"


def _moved(before: JobInfo, after: JobInfo) -> bool:
    watched = ("status", "progress_done", "progress_total", "vectors_written", "error")
    return any(getattr(before, name) != getattr(after, name) for name in watched)
