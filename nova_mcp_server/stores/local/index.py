"""One open index in this process: its SQLite connections, the readers' snapshot views, and the writer.

Concurrency: any number of threads (and processes) read, one writes. A search takes a reader connection
from a small pool, opens a read transaction, and under `lock` -- held only to compare or build the view --
gets the immutable `View` that matches that transaction's `state`. It then scans the view's arrays (numpy
releases the GIL) and looks up the winning rows' keys in the *same* read transaction, so a compaction that
renumbers rows meanwhile cannot mislabel a hit. The writer has its own connection and `write_lock`; SQLite's
WAL lets it commit while reads are open, so writes never wait for scans and scans never wait for fsyncs.
Idle reader connections are pooled (as many as readers were ever in at once, up to `POOL_MAX`), and the
live-and-filter mask of a (filter, view) pair is cached (`matching`), since agents repeat filters.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from nova_mcp_server.durable import sqlite_durability
from nova_mcp_server.stores.base import IndexInfo
from nova_mcp_server.stores.filter_columns import MetadataColumns
from nova_mcp_server.stores.filters import CompiledFilter
from nova_mcp_server.stores.local.ann import Ivf
from nova_mcp_server.stores.local.vectorfile import (
    RowCache,
    VectorWriter,
    ann_path,
    columns_path,
    lists_path,
    map_rows,
    norms_path,
    remove_stale,
    vector_path,
)

DB_FILE = "index.sqlite"
POOL_IDLE = 2  # idle reader connections kept per index (each costs three file descriptors) ...
POOL_MAX = 8  # ... or as many as readers were ever in at once, up to this: opening one costs ~0.5 ms, which
# with 8 concurrent searchers and 2 kept was most of each query's GIL-holding time
MASK_CACHE = 32  # filter masks kept per index (1 MB each at 1M rows)
SAVE_COLUMNS_MIN = 20_000  # rows parsed since the column cache file was written before it is rewritten


@dataclass(frozen=True)
class View:
    """What one committed state of the index looks like to a scan; never mutated once built."""

    gen: int
    cosine: bool
    rows: int
    version: int
    matrix: np.ndarray  # (rows, dimension) float32, memory-mapped
    sqnorms: np.ndarray  # (rows,) float32
    inv_norms: np.ndarray  # (rows,) float32, 1/|x| (cosine scores); empty for euclidean
    live: np.ndarray  # (rows,) bool
    live_count: int
    ivf: Ivf | None
    tail_lists: np.ndarray  # list of each row clustered..rows-1 (int32), when `ivf`


class SharedLock:
    """Many holders of `shared()` at once, or one of `exclusive()` (which waits for the shared ones)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


SQLITE_MMAP = 1 << 30  # bytes of the database SQLite reads through a memory map, not pread + copy: a query's
# key and metadata look-ups of 10 random rows at 1M took 97 us instead of 161


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    sqlite_durability(db)
    db.execute(f"PRAGMA mmap_size={SQLITE_MMAP}")
    return db


def read_state(db: sqlite3.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT name, value FROM state").fetchall())


class Handle:
    def __init__(self, directory: Path, info: IndexInfo, ino: int) -> None:
        self.dir = directory
        self.info = info
        self.ino = ino
        self.dim = info.dimension
        self.cosine = info.metric == "cosine"
        self.tag: dict[str, Any] = {"created": info.created_at}
        self.lock = threading.Lock()  # the view and the reader pool
        self.write_lock = threading.Lock()  # one writing thread in this process
        self.columns_lock = SharedLock()
        self.view: View | None = None
        self._pool: list[sqlite3.Connection] = []
        self._reading = 0  # snapshots open now, and the most ever open at once (sizes the pool)
        self._peak = 0
        self._writer: sqlite3.Connection | None = None
        self.vectors = VectorWriter(directory, info.dimension)
        self.cleaned = False
        self.closed = False
        self.users = 0  # managed by the store's handle cache
        self.last_used = time.monotonic()
        self.columns = MetadataColumns(info.non_filterable_keys)
        self.columns_gen = -1
        self.columns_loaded = False
        self.columns_saved = 0
        self._masks: OrderedDict[tuple[int, int, int, bytes], tuple[np.ndarray, int]] = OrderedDict()
        self._masks_lock = threading.Lock()

    def gen_tag(self, gen: int) -> dict[str, Any]:
        return {**self.tag, "gen": gen}

    # -- connections ---------------------------------------------------------------------------------------

    @property
    def writer(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = connect(self.dir / DB_FILE)
        return self._writer

    def close(self, *, save: bool = True) -> None:
        if save:
            with self.columns_lock.exclusive():
                self.save_columns()
        with self.lock:
            self.closed = True
            for db in self._pool:
                db.close()
            self._pool.clear()
            self.view = None
        self.vectors.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- readers -------------------------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[tuple[sqlite3.Connection, View]]:
        """A read transaction and the view of exactly its state; lookups by row must use this connection."""
        with self.lock:
            db = self._pool.pop() if self._pool else None
            self._reading += 1
            self._peak = max(self._peak, self._reading)
        if db is None:
            db = connect(self.dir / DB_FILE)
        try:
            view = self._begin(db)
            try:
                yield db, view
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")
        except BaseException:
            with self.lock:
                self._reading -= 1
            db.close()
            raise
        with self.lock:
            self._reading -= 1
            if self.closed or len(self._pool) >= min(POOL_MAX, max(POOL_IDLE, self._peak)):
                db.close()
            else:
                self._pool.append(db)

    def _begin(self, db: sqlite3.Connection) -> View:
        for attempt in range(3):
            db.execute("BEGIN")
            try:
                st = read_state(db)
                with self.lock:
                    return self.build_view(db, st)
            except FileNotFoundError:  # a compaction removed the generation our snapshot names: retry
                db.execute("ROLLBACK")
                if attempt == 2:
                    raise
            except BaseException:
                db.execute("ROLLBACK")
                raise
        raise AssertionError("unreachable")

    def build_view(self, db: sqlite3.Connection, st: dict[str, int]) -> View:
        """The view of state `st` read in `db`'s open transaction (caller holds `lock`): the cached one when
        it matches, else built from it (same generation: only the new rows are mapped and scored)."""
        gen, rows, version = st["gen"], st["rows"], st["version"]
        base = self.view
        if base is not None and (base.gen, base.rows, base.version) == (gen, rows, version):
            return base
        same = base is not None and base.gen == gen
        if base is not None and same and rows <= base.rows:
            matrix, sqnorms, inv = base.matrix[:rows], base.sqnorms[:rows], base.inv_norms[:rows]
            ivf, tail = base.ivf, base.tail_lists[: max(0, rows - base.ivf.clustered)] if base.ivf else base.tail_lists
        else:
            matrix = map_rows(vector_path(self.dir, gen), rows, self.dim)
            old = base.rows if base is not None and same else 0
            sqnorms = base.sqnorms if base is not None and same else np.empty(0, np.float32)
            fresh = self._norms(gen, matrix, old)
            sqnorms = np.concatenate([sqnorms, fresh])
            inv = base.inv_norms if base is not None and same else np.empty(0, np.float32)
            if self.cosine:
                inv = np.concatenate([inv, 1 / np.sqrt(np.maximum(fresh, np.float32(1e-30)))])
            ivf = base.ivf if base is not None and same else Ivf.load(ann_path(self.dir, gen), self.gen_tag(gen))
            tail = np.empty(0, np.int32)
            if ivf is not None:
                tail = base.tail_lists if base is not None and same else np.empty(0, np.int32)
                tail = np.concatenate([tail, self._tail_lists(gen, ivf, matrix, ivf.clustered + len(tail))])
        live = np.ones(rows, dtype=bool)
        dead = np.fromiter((r for (r,) in db.execute("SELECT row FROM vectors WHERE dead = 1")), np.int64)
        live[dead[dead < rows]] = False  # clamp to the rows of this snapshot
        view = View(
            gen, self.cosine, rows, version, matrix, sqnorms, inv, live, int(rows - np.count_nonzero(~live)), ivf, tail
        )
        if base is None or version >= base.version:
            self.view = view
        return view

    def _norms(self, gen: int, matrix: np.ndarray, start: int) -> np.ndarray:
        """Squared norms of rows start..: from the side file as far as it goes, the rest computed."""
        cached = RowCache(norms_path(self.dir, gen), np.float32).read(len(matrix))[start:]
        rest = matrix[start + len(cached) :]
        return np.concatenate([cached, np.einsum("ij,ij->i", rest, rest)]).astype(np.float32, copy=False)

    def _tail_lists(self, gen: int, ivf: Ivf, matrix: np.ndarray, start: int) -> np.ndarray:
        cache = RowCache(lists_path(self.dir, gen), np.int32, first=ivf.clustered)
        cached = cache.read(len(matrix))[start - ivf.clustered :]
        if len(cached) and (cached.min() < 0 or cached.max() >= ivf.lists):
            cached = np.empty(0, np.int32)  # damaged: recompute (a wrong list costs recall, never a wrong row)
        return np.concatenate([cached, ivf.assign(matrix[start + len(cached) :])]).astype(np.int32, copy=False)

    # -- filter columns ------------------------------------------------------------------------------------

    def matching(self, db: sqlite3.Connection, view: View, compiled: CompiledFilter) -> tuple[np.ndarray, int]:
        """The live rows of `view` that pass the filter, as a mask, and how many there are. Cached per
        (filter, view): an agent repeats a filter across queries, and evaluating one over a million rows'
        columns costs milliseconds; any write makes a new view (a new `version`), so an entry never outlives
        the rows it was computed for."""
        if compiled.root is None:
            return view.live, view.live_count
        key = (view.gen, view.rows, view.version, orjson.dumps(compiled.source, option=orjson.OPT_SORT_KEYS))
        with self._masks_lock:
            hit = self._masks.get(key)
            if hit is not None:
                self._masks.move_to_end(key)
                return hit
        mask = self.filter_mask(db, view, compiled) & view.live
        entry = (mask, int(np.count_nonzero(mask)))
        with self._masks_lock:
            self._masks[key] = entry
            while len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
        return entry

    def filter_mask(self, db: sqlite3.Connection, view: View, compiled: CompiledFilter) -> np.ndarray:
        """The filter as a bool mask over the view's rows. The column cache is shared: filters are evaluated
        under a shared lock (in parallel), the cache is grown under the exclusive one; a view of an older
        generation than the cache gets a one-off cache of its own."""
        while True:
            with self.columns_lock.shared():
                if self.columns_gen == view.gen and self.columns.n >= view.rows:
                    mask = self.columns.mask(compiled)
                    return mask if len(mask) == view.rows else mask[: view.rows]
            with self.columns_lock.exclusive():
                if view.gen < self.columns_gen:
                    columns = MetadataColumns(self.info.non_filterable_keys)
                    self._extend_from(db, columns, view.rows)
                    return columns.mask(compiled)[: view.rows]
                self._grow_columns(db, view)

    def _grow_columns(self, db: sqlite3.Connection, view: View) -> None:
        """Bring the cache to the view's generation and rows (caller holds the exclusive columns lock)."""
        if view.gen > self.columns_gen:
            self.columns = MetadataColumns(self.info.non_filterable_keys)
            self.columns_gen, self.columns_loaded, self.columns_saved = view.gen, False, 0
        if not self.columns_loaded:
            self.columns_loaded = True
            cached = MetadataColumns.load(
                columns_path(self.dir, view.gen), self.gen_tag(view.gen), self.info.non_filterable_keys
            )
            if cached is not None and self.columns.n < cached.n <= view.rows:
                self.columns, self.columns_saved = cached, cached.n
        if self.columns.n < view.rows:
            self._extend_from(db, self.columns, view.rows)
            if self.columns.n - self.columns_saved >= max(SAVE_COLUMNS_MIN, self.columns.n // 4):
                self.save_columns()
        self.columns.freeze()

    @staticmethod
    def _extend_from(db: sqlite3.Connection, columns: MetadataColumns, rows: int) -> None:
        cur = db.execute("SELECT meta FROM vectors WHERE row >= ? AND row < ? ORDER BY row", (columns.n, rows))
        columns.extend(json.loads(m) if m else None for (m,) in cur)

    def extend_columns(self, gen: int, first: int, metadatas: Sequence[dict[str, Any] | None]) -> None:
        """After committing rows `first..` of `gen`: add them from the checked metadata in hand when the
        cache holds exactly the rows before them (a new generation's cache starts at row 0)."""
        with self.columns_lock.exclusive():
            if first == 0 and self.columns_gen < gen:
                self.columns = MetadataColumns(self.info.non_filterable_keys)
                self.columns_gen, self.columns_loaded, self.columns_saved = gen, True, 0
            if self.columns_gen == gen and self.columns.n == first:
                self.columns.extend(metadatas)
                self.columns.freeze()

    def save_columns(self) -> None:
        """Persist the column cache when it holds rows the file does not (best effort: it is a cache).
        Caller holds `columns_lock` exclusively."""
        if self.columns_gen < 0 or self.columns.n <= self.columns_saved:
            return
        try:
            self.columns.save(columns_path(self.dir, self.columns_gen), self.gen_tag(self.columns_gen))
            self.columns_saved = self.columns.n
        except OSError:
            pass

    # -- writer --------------------------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[dict[str, int]]:
        """A write transaction (caller holds `write_lock`); the first one removes stale generation files."""
        db = self.writer
        db.execute("BEGIN IMMEDIATE")
        try:
            st = read_state(db)
            if not self.cleaned:
                remove_stale(self.dir, st["gen"])
                self.cleaned = True
            yield st
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def save_state(self, st: dict[str, int]) -> None:
        st["version"] += 1
        self.writer.executemany("UPDATE state SET value = ? WHERE name = ?", [(v, k) for k, v in st.items()])

    def writer_ivf(self, gen: int) -> Ivf | None:
        view = self.view
        if view is not None and view.gen == gen:
            return view.ivf
        return Ivf.load(ann_path(self.dir, gen), self.gen_tag(gen))

    def after_append(self, gen: int, first: int, matrix: np.ndarray) -> None:
        """After a commit: the side caches for the new rows (norms; ANN list when the generation has one)."""
        RowCache(norms_path(self.dir, gen), np.float32).write(first, np.einsum("ij,ij->i", matrix, matrix))
        ivf = self.writer_ivf(gen)
        if ivf is not None:
            RowCache(lists_path(self.dir, gen), np.int32, first=ivf.clustered).write(first, ivf.assign(matrix))
