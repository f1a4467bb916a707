"""The one crash-safe commit protocol, for every path that writes a source's vectors.

A source's vectors go in this order: every segment but 0, then the keys a shorter new version leaves
stale (and any an interrupted longer write left behind), then segment 0 carrying the content hash and the
segment count: the commit marker. Until the marker lands, the next run sees the old (or no) hash and writes
the source again to the same deterministic keys, so a crash at any point is resumed without duplicates.

Records are written in `put_vectors` batches of up to MAX_PUT shared by the sources of one call, and a
written record is dropped at once, so memory stays bounded by a batch however large the call.
Enumeration never uses a filtered query (approximate on S3 Vectors): keys are deterministic, so a source's
keys past a count are found with `get_vectors` windows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from nova_mcp_server import keys
from nova_mcp_server.errors import NovaError
from nova_mcp_server.services.threads import off_loop
from nova_mcp_server.stores import enumerate as enumerate_keys
from nova_mcp_server.stores.base import MAX_GET, MAX_PUT, VectorRecord, VectorStore

EnsureIndex = Callable[[str], Awaitable[object]]  # creates the index (or checks the existing one)
AliveCheck = Callable[[str], None]  # raises IndexDeleted when the index was deleted meanwhile


class IndexDeleted(NovaError):
    """The target index was deleted while a call was writing into it."""


class IndexTarget:
    """The index one call writes to: created on its first write, so a call that fails creates nothing."""

    def __init__(
        self,
        name: str,
        *,
        exists: bool,
        ensure: EnsureIndex,
        alive: AliveCheck,
        non_filterable: Sequence[str] = tuple(keys.NON_FILTERABLE_KEYS),
    ) -> None:
        self.name = name
        self.exists = exists
        self.non_filterable = list(non_filterable)  # what the index declared (older ones lack the full text)
        self.existed_before = exists  # a new index holds no leftovers of interrupted writes
        self._ensure = ensure
        self._alive = alive

    async def ensure(self) -> None:
        self.check_alive()
        if not self.exists:
            await self._ensure(self.name)
            self.exists = True

    def check_alive(self) -> None:
        """Raise IndexDeleted once `delete_index` removed this index after the call started."""
        self._alive(self.name)


@dataclass(eq=False)
class SourceCommit:
    """One source's writes in flight: counts, its held marker record, and its first failure."""

    sid: str
    content_hash: str
    old_count: int
    partial: bool = False
    count: int = 0  # segments produced so far (highest ordinal + 1)
    written: int = 0
    stale: int = 0
    head: VectorRecord | None = None
    pending: int = 0  # records queued, not yet written
    finished: bool = False  # every record was handed over
    committed: bool = False
    error: NovaError | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class Writer:
    """Writes the sources of one call in commit order, batching `put_vectors` across them."""

    def __init__(self, store: VectorStore, target: IndexTarget) -> None:
        self.store = store
        self.target = target
        self._queue: list[tuple[VectorRecord, SourceCommit]] = []
        self._finishing: list[SourceCommit] = []
        self._lock = anyio.Lock()

    def begin(self, sid: str, content_hash: str, old_count: int, *, partial: bool = False) -> SourceCommit:
        return SourceCommit(sid=sid, content_hash=content_hash, old_count=old_count, partial=partial)

    async def add(self, commit: SourceCommit, records: Sequence[VectorRecord]) -> None:
        """Queue records of `commit`; segment 0 is held back as the marker. Writes full batches at once."""
        if commit.error is not None:
            raise commit.error  # a shared batch holding this source's records failed: stop embedding it
        head_key = keys.vector_key(commit.sid, 0)
        for record in records:
            commit.count = max(commit.count, keys.ordinal_of(record.key) + 1)
            if record.key == head_key:
                commit.head = record
            else:
                commit.pending += 1
                self._queue.append((record, commit))
        if len(self._queue) >= MAX_PUT:
            await self._flush(everything=False)

    async def finish(self, commit: SourceCommit) -> None:
        """No more records come for `commit`: its marker goes once its other records are written."""
        commit.finished = True
        self._finishing.append(commit)
        await self._flush(everything=False)

    async def fail(self, commit: SourceCommit, error: NovaError) -> None:
        """Give up on `commit`: its queued records are dropped and no marker is written."""
        commit.error = commit.error or error
        self._queue = [(r, c) for r, c in self._queue if c is not commit]
        commit.done.set()

    async def close(self) -> None:
        """Write everything still queued and every marker that is due."""
        await self._flush(everything=True)
        for commit in self._finishing:
            commit.done.set()
        self._finishing = []

    async def commit(self, commit: SourceCommit, records: Sequence[VectorRecord]) -> SourceCommit:
        """One whole source in one go (the async media path)."""
        await self.add(commit, records)
        await self.finish(commit)
        await self.close()
        return commit

    async def _flush(self, *, everything: bool) -> None:
        if self._lock.locked() and not everything:
            return  # the writer at work loops until no full batch is left, these records included
        async with self._lock:
            while True:
                due = [c for c in self._finishing if c.pending == 0]
                if due:
                    self._finishing = [c for c in self._finishing if c.pending > 0]
                    await self._release(due)
                if len(self._queue) >= MAX_PUT or (everything and self._queue):
                    await self._put_batch()
                elif not due:
                    return

    async def _release(self, due: list[SourceCommit]) -> None:
        """Delete the stale keys of sources whose other records are written, then queue their markers."""
        for commit in due:
            if commit.error is not None:
                commit.done.set()
                continue
            if commit.head is None:  # nothing to mark: the source produced no segment 0
                commit.done.set()
                continue
            try:
                await self.target.ensure()
                doomed = [keys.vector_key(commit.sid, n) for n in range(commit.count, commit.old_count)]
                if self.target.existed_before:
                    beyond = max(commit.count, commit.old_count)
                    doomed += await keys_from(self.store, self.target.name, commit.sid, beyond)
                await delete_keys(self.store, self.target.name, doomed)
                commit.stale = len(doomed)
            except NovaError as exc:
                commit.error = exc
                commit.done.set()
                continue
            meta = dict(commit.head.metadata or {})
            meta.update(content_hash=commit.content_hash, segment_count=commit.count)
            if commit.partial:
                meta["partial"] = True
            head = commit.head.model_copy(update={"metadata": meta})
            commit.head = None
            self._queue.append((head, commit))

    async def _put_batch(self) -> None:
        batch, self._queue = self._queue[:MAX_PUT], self._queue[MAX_PUT:]
        live = [(record, c) for record, c in batch if c.error is None]
        if not live:
            return
        try:
            await self.target.ensure()
            await off_loop(self.store.put_vectors, self.target.name, [record for record, _ in live])
        except NovaError as exc:
            for _, c in live:
                c.error = c.error or exc
                c.done.set()
            return
        for record, c in live:
            c.written += 1
            if keys.ordinal_of(record.key) == 0:
                c.committed = True
                c.done.set()
            else:
                c.pending -= 1


async def delete_keys(store: VectorStore, index: str, doomed: Sequence[str]) -> None:
    """Each key deleted once, in API-sized batches (stores.enumerate holds the rule), off the event loop."""
    await off_loop(enumerate_keys.delete_keys, store, index, doomed)


async def keys_from(store: VectorStore, index: str, sid: str, start: int) -> list[str]:
    """A source's existing keys at ordinals >= `start`, by deterministic key (never a filtered query).

    Writes go in ordinal order, so what an interrupted write left is a run of keys: one window of MAX_GET
    absent ordinals ends it (stores.enumerate.existing_keys does the looking).
    """
    return await off_loop(
        enumerate_keys.existing_keys,
        store,
        index,
        lambda n: keys.vector_key(sid, n),
        start=start,
        stop_after_misses=MAX_GET,
    )


async def markers(store: VectorStore, index: str, sids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The commit markers (segment 0 metadata) of sources, read MAX_GET at a time."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(sids), MAX_GET):
        heads = {keys.vector_key(sid, 0): sid for sid in sids[start : start + MAX_GET]}
        found = await off_loop(store.get_vectors, index, list(heads), return_metadata=True)
        out.update({heads[r.key]: (r.metadata or {}) for r in found if r.key in heads})
    return out
