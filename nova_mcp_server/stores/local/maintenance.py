"""Rewriting a generation: compaction (drop dead rows) and ANN (re)organisation, one operation.

The writer (holding `write_lock` and SQLite's write lock) writes the live rows to `vectors.<g+1>.f32` --
sorted by IVF list when the index is big enough for an ANN -- plus that generation's side files, syncs
them and the directory, then renumbers the SQLite rows and commits the new generation in one transaction.
Until that commit every reader keeps using generation `g`; after it, `g`'s files are removed (a reader that
still maps them keeps a valid mapping on POSIX; on Windows they go at the next writer's start). A crash at
any point leaves either `g` or `g+1` committed and the other's files as stale leftovers.

When it runs (`due`): when dead rows pass the compaction threshold, when the index first reaches
`ANN_MIN_ROWS` live rows, and when the unsorted tail has grown as large as the sorted part (so the rows
written over an index's life stay about twice its size). The centroids are retrained when the index has
grown 4x since they were trained; otherwise the lists are kept and only re-sorted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from nova_mcp_server.durable import sync_dir
from nova_mcp_server.stores.filter_columns import MetadataColumns
from nova_mcp_server.stores.local.ann import ANN_MIN_ROWS, Ivf, lists_for, sorted_layout, train
from nova_mcp_server.stores.local.index import Handle
from nova_mcp_server.stores.local.vectorfile import (
    RowCache,
    ann_path,
    lists_path,
    map_rows,
    norms_path,
    remove_stale,
    vector_path,
    write_generation,
)

TAIL_RATIO = 1.0  # re-sort when the unsorted tail reaches this fraction of the sorted rows
RETRAIN_GROWTH = 4.0


@dataclass
class Policy:
    ann: bool = True
    ann_min_rows: int = ANN_MIN_ROWS
    compact_min_dead: int = 1000
    compact_ratio: float = 0.5


def due(handle: Handle, st: dict[str, int], policy: Policy) -> bool:
    """Whether the state after a write calls for a rewrite."""
    dead, rows = st["dead"], st["rows"]
    if dead >= policy.compact_min_dead and dead > policy.compact_ratio * rows:
        return True
    if not policy.ann or rows - dead < policy.ann_min_rows:
        return False
    ivf = handle.writer_ivf(st["gen"])
    if ivf is None:
        return True
    return rows - ivf.clustered >= max(policy.ann_min_rows, TAIL_RATIO * ivf.clustered)


@contextmanager
def many_threads() -> Iterator[None]:
    """BLAS on every core for a rewrite's k-means and list assignment (large matrix products, where its
    threads pay off), then back to the one thread searches use (`search.single_threaded_blas`)."""
    with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
        yield


def rewrite(handle: Handle, policy: Policy, *, force_ann: bool = False) -> dict[str, float]:
    """Compact and (re)organise; returns what was done (rows dropped, seconds, whether trained).
    Caller holds `handle.write_lock`."""
    began = time.perf_counter()
    report: dict[str, float] = {"dropped": 0, "trained": 0, "rows": 0}
    with handle.write() as st:
        old_gen, old_rows = st["gen"], st["rows"]
        db = handle.writer
        live = np.fromiter((r for (r,) in db.execute("SELECT row FROM vectors WHERE dead = 0 ORDER BY row")), np.int64)
        old_ivf = handle.writer_ivf(old_gen)
        want_ann = policy.ann and len(live) >= policy.ann_min_rows
        sorted_already = old_ivf is not None and old_ivf.clustered == old_rows
        if st["dead"] == 0 and (not want_ann or (sorted_already and not force_ann)):
            return report
        source = map_rows(vector_path(handle.dir, old_gen), old_rows, handle.dim)
        new_gen = old_gen + 1
        ivf: Ivf | None = None
        order = live
        if want_ann:
            with many_threads():
                assigned, centroids, trained = _lists(handle, old_gen, old_ivf, source, live, old_rows)
            report["trained"] = float(trained is not None)
            within, offsets = sorted_layout(assigned, len(centroids))
            order = live[within]
            ivf = Ivf(centroids, offsets, trained if trained is not None else old_ivf.trained_rows, handle.cosine)  # type: ignore[union-attr]
        write_generation(vector_path(handle.dir, new_gen), source, order)
        sqnorms = _old_norms(handle, old_gen, source)[order]
        RowCache(norms_path(handle.dir, new_gen), np.float32).write(0, sqnorms)
        if ivf is not None:
            ivf.save(ann_path(handle.dir, new_gen), handle.gen_tag(new_gen))
        sync_dir(handle.dir)
        columns = _carried_columns(handle, db, old_gen, old_rows, order)  # before the rows are renumbered
        _renumber(db, order)
        report["dropped"] = st["dead"]
        report["rows"] = len(order)
        st.update(gen=new_gen, rows=len(order), dead=0)
        handle.save_state(st)
    del source
    # The renumbering rewrote every row into the WAL: fold it back now (PASSIVE: without waiting for readers),
    # not in the next close, which at 1M rows made a reopen take seconds.
    with contextlib.suppress(sqlite3.OperationalError):
        handle.writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    handle.vectors.close()
    remove_stale(handle.dir, new_gen)
    _install_columns(handle, columns, new_gen)
    report["seconds"] = time.perf_counter() - began
    return report


def _lists(
    handle: Handle, gen: int, old: Ivf | None, source: np.ndarray, live: np.ndarray, rows: int
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The list of each live row: kept from the old structure unless the index outgrew it (then retrained)."""
    if old is not None and len(live) < RETRAIN_GROWTH * old.trained_rows and old.lists >= lists_for(len(live)) // 2:
        per_row = np.empty(rows, np.int32)
        per_row[: old.clustered] = np.repeat(np.arange(old.lists, dtype=np.int32), np.diff(old.offsets))
        cached = RowCache(lists_path(handle.dir, gen), np.int32, first=old.clustered).read(rows)
        if len(cached) and (cached.min() < 0 or cached.max() >= old.lists):
            cached = cached[:0]
        per_row[old.clustered : old.clustered + len(cached)] = cached
        per_row[old.clustered + len(cached) :] = old.assign(source[old.clustered + len(cached) :])
        return per_row[live], old.centroids, None
    centroids = train(source, live, handle.cosine)
    fresh = Ivf(centroids, np.zeros(len(centroids) + 1, np.int64), len(live), handle.cosine)
    assigned = np.concatenate(
        [fresh.assign(source[live[i : i + 65536]]) for i in range(0, len(live), 65536)] or [np.empty(0, np.int32)]
    )
    return assigned, centroids, len(live)


def _old_norms(handle: Handle, gen: int, source: np.ndarray) -> np.ndarray:
    cached = RowCache(norms_path(handle.dir, gen), np.float32).read(len(source))
    rest = source[len(cached) :]
    return np.concatenate([cached, np.einsum("ij,ij->i", rest, rest)]).astype(np.float32, copy=False)


def _renumber(db: sqlite3.Connection, order: np.ndarray) -> None:
    """Row `order[i]` becomes row `i`; dead rows go."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS renumber (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
    db.execute("DELETE FROM renumber")
    db.executemany("INSERT INTO renumber(old, new) VALUES (?, ?)", zip(order.tolist(), range(len(order)), strict=False))
    db.execute(
        "CREATE TABLE vectors_new (row INTEGER PRIMARY KEY, key TEXT NOT NULL, meta TEXT, dead INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "INSERT INTO vectors_new(row, key, meta) SELECT r.new, v.key, v.meta FROM renumber r "
        "JOIN vectors v ON v.row = r.old ORDER BY r.new"
    )
    db.execute("DELETE FROM renumber")
    db.execute("DROP TABLE vectors")
    db.execute("ALTER TABLE vectors_new RENAME TO vectors")
    db.execute("CREATE UNIQUE INDEX vectors_live_key ON vectors(key) WHERE dead = 0")
    db.execute("CREATE INDEX vectors_dead ON vectors(dead) WHERE dead = 1")


def _carried_columns(handle: Handle, db: sqlite3.Connection, gen: int, rows: int, order: np.ndarray) -> MetadataColumns:
    """The new generation's filter cache: the old one renumbered (read from SQLite only for rows it lacks),
    so neither the rewrite nor a reader's first filtered query parses every row's metadata again."""
    with handle.columns_lock.exclusive():
        columns = handle.columns if handle.columns_gen == gen and handle.columns.n <= rows else None
        if columns is None:
            columns = MetadataColumns(handle.info.non_filterable_keys)
        cur = db.execute("SELECT meta FROM vectors WHERE row >= ? AND row < ? ORDER BY row", (columns.n, rows))
        columns.extend(json.loads(m) if m else None for (m,) in cur)
        return columns.renumbered(order)


def _install_columns(handle: Handle, columns: MetadataColumns, gen: int) -> None:
    """Use and save the new generation's cache (best effort: it is a cache)."""
    with handle.columns_lock.exclusive():
        if handle.columns_gen <= gen:
            handle.columns, handle.columns_gen = columns, gen
            handle.columns_loaded, handle.columns_saved = True, 0
            handle.save_columns()
