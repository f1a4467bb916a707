"""Durable job table (SQLite in the data dir).

A job outlives the process that started it. A row is written only once its work has really started (an
index run about to begin, a Bedrock job whose start was accepted), already leased to its runner. Each row
moves forward through running -> ingesting -> completed | partial | failed, every move one transaction, so
a restart finds each job in a state it can resume from. Running a job needs its lease: a runner renews it
on a heartbeat, a second claimer (another process, a poller, a `job_status` call) gets it only once it ran
out or its holder died, and never while this very process runs the job. Each claim counts an attempt; past
MAX_ATTEMPTS the job fails with its last error instead of retrying for ever.

The methods here are blocking (SQLite with a busy timeout): services call them through `AsyncJobStore`,
off the event loop, so a CLI holding the write lock cannot freeze the MCP sessions.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from nova_mcp_server.durable import pid_alive
from nova_mcp_server.errors import NotFound
from nova_mcp_server.models import JobInfo

LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    index_name TEXT NOT NULL,
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER,
    vectors_written INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    segment_failures TEXT NOT NULL DEFAULT '[]',
    lease_until REAL NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, updated_at);
"""

ACTIVE = ("pending", "running", "ingesting")
FINISHED = ("completed", "partial", "failed")


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            if "lease_owner" not in columns:  # a job table from before leases named their holder
                db.execute("ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''")

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def create(
        self,
        *,
        kind: str,
        index: str,
        source: str,
        payload: dict[str, Any],
        status: str = "running",
        job_id: str | None = None,
        lease: float = 0.0,
    ) -> str:
        """Write a job whose work has started; with `lease`, it is already held by this process (attempt 1)."""
        job_id = job_id or new_job_id()
        now = time.time()
        held = (now + lease, OWNER, 1) if lease else (0.0, "", 0)
        self._connect().execute(
            "INSERT INTO jobs (id, kind, status, index_name, source, payload, created_at, updated_at,"
            " lease_until, lease_owner, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, status, index, source, json.dumps(payload), now, now, *held),
        )
        return job_id

    def get(self, job_id: str) -> JobInfo:
        row = self._connect().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"No job '{job_id}'.", "Call job_status without an id to list recent jobs.")
        return _info(row)

    def payload(self, job_id: str) -> dict[str, Any]:
        row = self._connect().execute("SELECT payload FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"No job '{job_id}'.")
        return json.loads(row["payload"])

    def recent(self, limit: int = 20) -> list[JobInfo]:
        rows = self._connect().execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [_info(r) for r in rows]

    def active_ids(self) -> list[str]:
        marks = ",".join("?" * len(ACTIVE))
        rows = self._connect().execute(f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY created_at", ACTIVE)
        return [r["id"] for r in rows]

    def update(self, job_id: str, **fields: Any) -> None:
        if "segment_failures" in fields:
            fields["segment_failures"] = json.dumps(fields["segment_failures"])
        if "payload" in fields:
            fields["payload"] = json.dumps(fields["payload"])
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._connect().execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

    def claim(
        self, job_id: str, lease: float = LEASE_SECONDS, *, status: str = "ingesting", max_attempts: int = MAX_ATTEMPTS
    ) -> bool:
        """Take the right to run a job; False if it is finished, someone holds a live lease, or attempts ran out.

        The caller must not claim a job it is running itself (the services keep that set); a job whose
        attempts ran out is failed here, in the same transaction, with its last error kept.
        """
        now = time.time()
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT status, lease_until, lease_owner, attempts, error FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or row["status"] in FINISHED:
                db.execute("COMMIT")
                return False
            if row["lease_until"] > now and _holder_alive(row["lease_owner"]):
                db.execute("COMMIT")
                return False
            if row["attempts"] >= max_attempts:
                last = row["error"] or "no error was recorded"
                db.execute(
                    "UPDATE jobs SET status = 'failed', lease_until = 0, error = ?, updated_at = ? WHERE id = ?",
                    (f"gave up after {row['attempts']} attempts; the last error: {last}", now, job_id),
                )
                db.execute("COMMIT")
                return False
            db.execute(
                "UPDATE jobs SET status = ?, lease_until = ?, lease_owner = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                (status, now + lease, OWNER, now, job_id),
            )
            db.execute("COMMIT")
            return True
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def claim_ingest(self, job_id: str, owner_lease: float = LEASE_SECONDS) -> bool:
        """Claim a finished Bedrock job for ingesting its output."""
        return self.claim(job_id, owner_lease, status="ingesting")

    def renew(self, job_id: str, lease: float = LEASE_SECONDS) -> bool:
        """Extend this process's lease (the runner's heartbeat); False if another holder took the job over."""
        now = time.time()
        cur = self._connect().execute(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status NOT IN (?, ?, ?)",
            (now + lease, job_id, OWNER, *FINISHED),
        )
        return cur.rowcount == 1

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


OWNER = f"{socket.gethostname()}:{os.getpid()}"


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def _holder_alive(owner: str) -> bool:
    """Whether a lease's holder may still be working: another host, or a live process on this one.

    A server killed mid-ingest leaves a live-looking lease; its restart on the same machine sees the holder's
    process is gone and takes the job over at once instead of waiting for the lease to run out.
    """
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return True  # this process holds it: a second claim from here must not run the job twice
    return pid_alive(int(pid))  # without os.kill(pid, 0), which on Windows would send Ctrl+C


def _info(row: sqlite3.Row) -> JobInfo:
    return JobInfo(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        index=row["index_name"],
        source=row["source"],
        progress_done=row["progress_done"],
        progress_total=row["progress_total"],
        vectors_written=row["vectors_written"],
        error=row["error"],
        attempts=row["attempts"],
        segment_failures=json.loads(row["segment_failures"]),
        result=json.loads(row["payload"]).get("report"),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class AsyncJobStore:
    """The job table for async code: each call runs in a worker thread, never on the event loop."""

    def __init__(self, store: JobStore) -> None:
        self.sync = store

    async def create(self, **fields: Any) -> str:
        return await anyio.to_thread.run_sync(lambda: self.sync.create(**fields))

    async def get(self, job_id: str) -> JobInfo:
        return await anyio.to_thread.run_sync(self.sync.get, job_id)

    async def payload(self, job_id: str) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self.sync.payload, job_id)

    async def recent(self, limit: int = 20) -> list[JobInfo]:
        return await anyio.to_thread.run_sync(self.sync.recent, limit)

    async def active_ids(self) -> list[str]:
        return await anyio.to_thread.run_sync(self.sync.active_ids)

    async def update(self, job_id: str, **fields: Any) -> None:
        await anyio.to_thread.run_sync(lambda: self.sync.update(job_id, **fields))

    async def claim(self, job_id: str, lease: float, *, status: str) -> bool:
        return await anyio.to_thread.run_sync(lambda: self.sync.claim(job_id, lease, status=status))

    async def renew(self, job_id: str, lease: float) -> bool:
        return await anyio.to_thread.run_sync(self.sync.renew, job_id, lease)
